"""The ``synth-coin`` benchmark: COIN's eight task types drawn procedurally, read and scored
exactly as COIN is (it subclasses :class:`~cvit_bench.plugins.benchmarks.coin.benchmark.Coin`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cvit_bench.harness.config import config_field
from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Prediction, TaskInfo

from ..coin.benchmark import Coin
from ..common.check import DataFile, check_benchmark
from ..common.real import RealBenchmarkConfig, TaskSpec
from .generate import GENERATOR_VERSION, SynthSettings, generate, read_manifest
from .tasks import TASKS

if TYPE_CHECKING:
    from cvit_bench.harness.protocols import RunContext

SYNTH_SPECS: tuple[TaskSpec, ...] = tuple(
    TaskSpec(
        TaskInfo(
            name=t.name,
            primary_metric="accuracy",
            max_new_tokens=t.max_new_tokens,
            description=t.description,
        ),
        t.scorer,
        t.name,
    )
    for t in TASKS
)
CACHE_ENV = "CVIT_BENCH_CACHE"
_DEFAULTS = SynthSettings()


@dataclass
class SynthCoinConfig(RealBenchmarkConfig):
    """Options of ``synth-coin``. ``data_root`` names a folder written by
    ``cvit-bench data synth``; without one the data is generated into the cache."""

    seed: int = config_field(
        _DEFAULTS.seed,
        help="seed of the generated images and questions (independent of "
        "the run's seed, so runs with different seeds see the same data)",
    )
    train_per_task: int = config_field(
        _DEFAULTS.train_per_task,
        help="training items generated per task (twice as many for ScienceQA and OCRVQA, "
        "three times for Grounding: the tasks a tiny model is slowest to learn)",
    )
    eval_per_task: int = config_field(_DEFAULTS.eval_per_task, help="test items generated per task")
    image_size: int = config_field(
        _DEFAULTS.image_size,
        help="width and height of the generated images in pixels (shapes and glyphs scale with it)",
    )
    scienceqa_parser: str = config_field(
        "coin",
        choices=("coin", "sefe"),
        help="ScienceQA letter parser: CoIN's (first one-letter word) or SEFE/HiDe-LLaVA's "
        "('The answer is X.')",
    )


def default_cache_dir() -> Path:
    """``$CVIT_BENCH_CACHE``, else ``~/.cache/cvit-bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cvit-bench")


class SynthCoin(Coin):
    """synth-coin: eight procedurally drawn tasks in COIN's order, layout and scoring rules.

    ScienceQA (a letter), TextVQA (read a digit), ImageNet (name a shape), GQA (colour of the
    shape on a side), VizWiz (a colour or ``unanswerable``), Grounding (a box string), VQAv2
    (count or colour) and OCR-VQA (a cover's title or genre). Small enough for a tiny model on
    a CPU; see ``tasks.py`` for what each task draws.
    """

    name: ClassVar[str] = "synth-coin"
    version: ClassVar[str] = f"1.0-g{GENERATOR_VERSION}"
    config_class: ClassVar[type] = SynthCoinConfig
    reference_model: ClassVar[str | None] = "tiny-llava"
    SPECS: ClassVar[tuple[TaskSpec, ...]] = SYNTH_SPECS
    needs_data_root: ClassVar[bool] = False
    # Two passes over each task's training items: 250 steps of 8 on 1,000 items, 500 on the
    # 2,000 of ScienceQA and OCR-VQA, 750 on Grounding's 3,000 (``TaskSpec.train_scale``).
    # From tiny-llava's pretrained base, one pass left Grounding at 26.0 against its majority
    # answer's 11.5.
    run_defaults: ClassVar[dict[str, Any]] = {"train": {"epochs": 2.0}}

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.generated: dict[str, Any] | None = None

    @property
    def settings(self) -> SynthSettings:
        c = self.config
        return SynthSettings(
            seed=c.seed,
            train_per_task=c.train_per_task,
            eval_per_task=c.eval_per_task,
            image_size=c.image_size,
        )

    def resolve_data_root(self, ctx: RunContext | None = None) -> Path | None:
        """The benchmark option ``data_root``, else the run's ``data_root``. Unlike the real
        benchmarks, ``$CVIT_BENCH_DATA_ROOT`` is not read: it names real data."""
        for candidate in (
            self.config.data_root,
            getattr(getattr(ctx, "config", None), "data_root", None),
        ):
            if candidate:
                return Path(candidate).expanduser().absolute()
        return None

    def cache_root(self, ctx: RunContext | None = None) -> Path:
        """Where generated data lives: ``<cache>/synth-coin/<settings digest>``."""
        base = Path(ctx.cache_dir) if ctx is not None else default_cache_dir()
        return base / "synth-coin" / self.settings.digest()

    def prepare(self, ctx: RunContext | None = None) -> None:
        """Use the given data root, or generate the data into the cache once; then check it."""
        root = self.resolve_data_root(ctx)
        if root is None:
            root = self.cache_root(ctx)
            if read_manifest(root) != self.settings.manifest():
                if root.exists() and any(root.iterdir()):
                    raise DataError(
                        f"{root} holds something other than synth-coin data for "
                        "these settings: remove it and run again"
                    )
                generate(root, self.settings)
        elif not root.is_dir():
            raise DataError(
                f"synth-coin data root {root} does not exist: write one with "
                f"`cvit-bench data synth --out {root}`, or leave data_root unset to "
                "generate into the cache"
            )
        self.generated = read_manifest(root)
        self.set_data_root(root)
        report = check_benchmark(self, root, fast=True)
        if not report.ok:
            raise DataError(report.format())

    def data_files(self, root: Path) -> list[DataFile]:
        """COIN's files, without COIN's published entry counts."""
        files = super().data_files(root)
        for data_file in files:
            data_file.published_count = None
        return files

    def identity(self) -> dict[str, Any]:
        """COIN's identity fields plus the generator settings the data was made with (read
        from the data's ``synth-coin.json`` when there is one)."""
        identity = super().identity()
        generated = self.generated or self.settings.manifest()
        for key in ("generator_version", "seed", "train_per_task", "eval_per_task", "image_size"):
            identity[f"data_{key}"] = generated.get(key)
        for key in ("seed", "train_per_task", "eval_per_task", "image_size"):
            identity.pop(key, None)
        return identity

    # -- baselines ------------------------------------------------------------------------------
    def baselines(self, task: str) -> dict[str, Any]:
        """Scores that need no image, on the task's evaluation samples (0-100).

        * ``majority``: every question answered with the task's most frequent training answer
          (``majority_answer``);
        * ``best_constant``: the best single answer for every question (an upper bound for
          any model that ignores the image and the question);
        * ``question_only``: each question answered with the most frequent training answer
          to the same prompt (the global majority for prompts never seen in training): what
          the text alone can give;
        * ``chance``: the mean score of the answers seen in training, i.e. the expected score
          of guessing uniformly among them.
        """
        train = self.train_samples(task)
        references = self.eval_samples(task)
        counts = Counter(s.answer for s in train)
        vocabulary = sorted(counts, key=str)
        scores = {answer: self._score_all(task, answer, references) for answer in vocabulary}
        majority_answer = max(vocabulary, key=lambda a: (counts[a], -vocabulary.index(a)))
        best = max(vocabulary, key=lambda a: scores[a])
        by_prompt: dict[str, Counter] = {}
        for sample in train:
            by_prompt.setdefault(sample.prompt, Counter())[sample.answer] += 1
        guesses = [
            by_prompt[r.prompt].most_common(1)[0][0] if r.prompt in by_prompt else majority_answer
            for r in references
        ]
        question_only = self.score(
            task,
            [Prediction(id=r.id, text=g or "") for r, g in zip(references, guesses)],
            references,
        ).value
        return {
            "majority": scores[majority_answer],
            "majority_answer": majority_answer,
            "best_constant": scores[best],
            "best_constant_answer": best,
            "question_only": question_only,
            "chance": sum(scores.values()) / len(scores),
            "answers": len(vocabulary),
        }

    def _score_all(self, task: str, answer: str | None, references: Any) -> float:
        predictions = [Prediction(id=r.id, text=answer or "") for r in references]
        return self.score(task, predictions, references).value
