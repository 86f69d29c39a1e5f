"""The two synth-coin tasks a tiny model finds hardest, run the way the default run runs them:
the default tiny-llava base (its full captioning pretraining), seqlora with every default,
Grounding then OCR-VQA in sequence. Right after its stage each task scores at least 20 points
above both its majority answer and the same model's answers on blank images: a box is read
off the named shape's place, a title off the cover and a genre off its colour, not guessed.

This is the default run's recipe, so it takes the default pretraining's time (about two to
three minutes on two cores) on top of two stages of training."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from cvit_bench.harness.config import resolve_run_config
from cvit_bench.harness.results import RunResults
from cvit_bench.harness.runner import Runner
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.benchmarks.synth_coin.tasks import GENRES, TITLES
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
from cvit_bench.testing import plugin_manager

HARD = ("Grounding", "OCRVQA")


class HardTasks(SynthCoin):
    """synth-coin with only its two hardest tasks, in the default run's order."""

    def tasks(self) -> list[Any]:
        return [t for t in super().tasks() if t.name in HARD]


@pytest.mark.slow
def test_the_hardest_tasks_are_learned_from_the_image_with_the_default_recipe(tmp_path):
    manager = plugin_manager(
        methods={"seqlora": SeqLoRA},
        benchmarks={"synth-coin": HardTasks},
        models={"tiny-llava": TinyLlava},
    )
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
