"""A synth-coin task trained normally is learned from the image: right after training, the
model scores far above both its majority answer and its own answers to blank images."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from cvit_bench.harness.config import RunConfig, build_dataclass, resolve_run_config
from cvit_bench.harness.results import RunResults
from cvit_bench.harness.runner import Runner
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.benchmarks.synth_coin.tasks import GENRES, TITLES
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
from cvit_bench.testing import plugin_manager


def seqlora_on(*tasks: str) -> Any:
    """A plugin manager with seqlora, tiny-llava and synth-coin cut down to ``tasks`` (kept in
    the benchmark's order)."""

    class Subset(SynthCoin):
        def tasks(self) -> list[Any]:
            return [t for t in super().tasks() if t.name in tasks]

    return plugin_manager(
        methods={"seqlora": SeqLoRA},
        benchmarks={"synth-coin": Subset},
        models={"tiny-llava": TinyLlava},
    )


@pytest.mark.slow
def test_a_trained_task_scores_far_above_blank_images_and_its_majority_answer(tmp_path):
    # VizWiz: a colour, or "unanswerable" when no shape is drawn
    manager = seqlora_on("VizWiz")
    data = {
        "method": "seqlora",
        "bench": "synth-coin",
        "model": "tiny-llava",
        "cache_dir": str(tmp_path / "cache"),
        "bench_args": {"train_per_task": 400, "eval_per_task": 100},
        # a shorter captioning pretraining than the default, enough to see colours
        "model_args": {"pretrain_steps": 200, "pretrain_samples": 1000},
        "train": {"max_steps": 60, "batch_size": 16, "lr": 3e-3, "projector_lr": 3e-3},
        "eval": {"batch_size": 100, "zero_shot": False},
    }
    config = build_dataclass(RunConfig, data, "config")
    results = Runner(config, tmp_path / "run", manager=manager, progress=False).run()
    (control,) = results.controls()
    assert control["score"] >= control["blank_image"] + 20, control
    assert control["score"] >= control["majority"] + 20, control


HARD = ("Grounding", "OCRVQA")
"""The two tasks a tiny model finds hardest. The test below runs them the way the default run
does: the default tiny-llava base (its full captioning pretraining, two to three minutes on two
cores), seqlora with every default, Grounding then OCR-VQA in sequence. Each must be read off
the image: a box off the named shape's place, a title off the cover, a genre off its colour."""


@pytest.mark.slow
def test_the_hardest_tasks_are_learned_from_the_image_with_the_default_recipe(tmp_path):
    manager = seqlora_on(*HARD)
    config = resolve_run_config(
        flags={"method": "seqlora", "bench": "synth-coin", "model": "tiny-llava"},
        overrides=[f"cache_dir={tmp_path / 'cache'}", "eval.zero_shot=false"],
        manager=manager,
    )
    assert config.train.epochs == 2.0 and config.train.lr == 2e-3  # the default run's recipe
    Runner(config, tmp_path / "run", manager=manager, progress=False).run()
    results = RunResults(tmp_path / "run")
    controls = {row["task"]: row for row in results.controls()}
    assert sorted(controls) == sorted(HARD)
    for row in controls.values():
        assert row["score"] >= row["blank_image"] + 20, row
        assert row["score"] >= row["majority"] + 20, row
    # OCR-VQA asks two questions of a cover: each is answered in its own kind (a genre to
    # "what genre?", never a title) and better than that kind's chance
    by_kind: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in results.predictions(2, "OCRVQA"):
        by_kind["genre" if "genre" in row["prompt"] else "title"].append(row)
    for kind, answers, chance in (("title", TITLES, 12.5), ("genre", GENRES, 25.0)):
        rows = by_kind[kind]
        in_kind = sum(row["prediction"] in answers for row in rows) / len(rows)
        score = sum(row["score"] for row in rows) / len(rows)
        assert in_kind >= 0.9, (kind, in_kind)
        assert score >= chance + 10, (kind, score)
