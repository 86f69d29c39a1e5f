"""A synth-coin task trained normally is learned from the image: right after training, the
model scores far above both its majority answer and its own answers to blank images."""

from __future__ import annotations

from typing import Any

import pytest

from cvit_bench.harness.config import RunConfig, build_dataclass
from cvit_bench.harness.runner import Runner
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
from cvit_bench.testing import plugin_manager


class VizWizOnly(SynthCoin):
    """synth-coin cut down to one task (a colour, or "unanswerable" when no shape is drawn)."""

    def tasks(self) -> list[Any]:
        return [t for t in super().tasks() if t.name == "VizWiz"]


@pytest.mark.slow
def test_a_trained_task_scores_far_above_blank_images_and_its_majority_answer(tmp_path):
    manager = plugin_manager(
        methods={"seqlora": SeqLoRA},
        benchmarks={"synth-coin": VizWizOnly},
        models={"tiny-llava": TinyLlava},
    )
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
