"""Same configuration, same seed, same machine: two runs give identical results."""

from __future__ import annotations

import pyarrow.ipc
import pytest

from cvit_bench.harness.config import RunConfig, build_dataclass
from cvit_bench.harness.runner import Runner

CONFIG = {
    "method": "seqlora",
    "bench": "synth-coin",
    "model": "tiny-llava",
    "bench_args": {"train_per_task": 16, "eval_per_task": 8},
    "model_args": {"pretrain_steps": 0},
    "train": {"max_steps": 3, "batch_size": 4, "lr": 5e-3},
    "eval": {"batch_size": 32, "max_new_tokens": 4, "eval_on": "seen"},
}


def table(path):
    with pyarrow.ipc.open_file(str(path)) as reader:
        return reader.read_all().to_pylist()


@pytest.mark.slow
def test_two_runs_with_the_same_seed_are_identical(tmp_path):
    runs = []
    for name in ("first", "second"):
        config = build_dataclass(
            RunConfig, {**CONFIG, "cache_dir": str(tmp_path / f"cache-{name}")}, "config"
        )
        runs.append(Runner(config, tmp_path / name, progress=False).run())
    first, second = runs
    assert first.complete and second.complete
    assert table(first.run_dir / "matrix.arrow") == table(second.run_dir / "matrix.arrow")
    assert [r["loss"] for r in first.stages_table()] == [r["loss"] for r in second.stages_table()]
    for stage in first.stages:
        for task in first.tasks[: max(stage, 1)] if stage else first.tasks:
            assert first.predictions(stage, task) == second.predictions(stage, task)
