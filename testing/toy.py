"""A two-task toy benchmark and a run-context builder for engine, model and method tests.

``ToyBenchmark`` draws one coloured square per image; task ``colour`` asks its colour, task
``place`` asks which half of the image holds it. Both are learnable from the image in a few
dozen steps by ``tiny-llava``, which is what tests of trained behaviour (batched generation,
merging, distributed equivalence) need. Nothing here imports torch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvit_bench.harness.config import RunConfig, build_dataclass
from cvit_bench.harness.protocols import RunContext
from cvit_bench.harness.types import Prediction, Sample, TaskInfo, TaskScore

TOY_COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
}
TOY_PLACES = ("left", "right")


class ToyBenchmark:
    name = "toy"
    version = "1"
    config_class = type(None)
    reference_model = "tiny-llava"

    def __init__(
        self,
        config: Any = None,
        n_train: int = 64,
        n_eval: int = 24,
        image_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.n_train, self.n_eval, self.image_size, self.seed = n_train, n_eval, image_size, seed
        self._data: dict[tuple[str, str], list[Sample]] = {}

    def prepare(self, ctx: Any) -> None:
        from PIL import Image, ImageDraw

        root = Path(ctx.cache_dir) / f"toy-v2-{self.seed}-{self.image_size}"
        root.mkdir(parents=True, exist_ok=True)
        rng = random.Random(self.seed)
        size = self.image_size
        for task in ("colour", "place"):
            for split, n in (("train", self.n_train), ("eval", self.n_eval)):
                items = []
                for i in range(n):
                    colour = rng.choice(list(TOY_COLOURS))
                    place = rng.choice(TOY_PLACES)
                    # colour squares are large (the colour is in most patches); place squares
                    # fit in one half
                    side = size // 2 - 1 if task == "place" else size - 4
                    side = rng.randint(side - 2, side)
                    if task == "place":
                        x0 = rng.randint(0, size // 2 - side) + (
                            size // 2 if place == "right" else 0
                        )
                    else:
                        x0 = rng.randint(0, size - side)
                    y0 = rng.randint(0, size - side)
                    path = root / f"{task}-{split}-{i}.png"
                    if not path.exists():
                        img = Image.new("RGB", (size, size), (255, 255, 255))
                        ImageDraw.Draw(img).rectangle(
                            (x0, y0, x0 + side, y0 + side), fill=TOY_COLOURS[colour]
                        )
                        img.save(path)
                    if task == "colour":
                        prompt = "What colour is the square? Answer with one word."
                        answer = colour
                    else:
                        prompt = "Is the square on the left or on the right?"
                        answer = place
                    items.append(
                        Sample(
                            id=f"{task}-{split}-{i}",
                            task=task,
                            prompt=prompt,
                            answer=answer,
                            image=str(path),
                        )
                    )
                self._data[(task, split)] = items

    def tasks(self) -> list[TaskInfo]:
        return [TaskInfo("colour", max_new_tokens=4), TaskInfo("place", max_new_tokens=4)]

    def train_samples(self, task: str) -> Sequence[Sample]:
        return self._data[(task, "train")]

    def eval_samples(self, task: str) -> Sequence[Sample]:
        return self._data[(task, "eval")]

    def score(
        self, task: str, predictions: Sequence[Prediction], references: Sequence[Sample]
    ) -> TaskScore:
        answers = {p.id: p.text.strip().lower() for p in predictions}
        per = {r.id: 100.0 * (answers.get(r.id) == (r.answer or "").lower()) for r in references}
        acc = sum(per.values()) / max(1, len(per))
        return TaskScore(primary="accuracy", metrics={"accuracy": acc}, n=len(per), per_sample=per)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


def make_context(
    root: str | Path,
    benchmark: Any,
    model: Any,
    method: Any = None,
    overrides: dict[str, Any] | None = None,
    stage: int = 0,
) -> RunContext:
    """A ``RunContext`` with the config built from ``overrides`` (``{"train": {...}}``)."""
    root = Path(root)
    config = build_dataclass(RunConfig, overrides or {}, "config")
    ctx = RunContext(
        config=config,
        run_dir=root / "run",
        cache_dir=root / "cache",
        benchmark=benchmark,
        model=model,
        method=method,
        stage=stage,
    )
    ctx.tasks = list(benchmark.tasks())
    return ctx
