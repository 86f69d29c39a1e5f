"""Every real benchmark, from a fixture in its published layout, through a whole run with
tiny-llava and seqlora: reading, prompting, training, batched generation and scoring meet."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.runner import Runner

FIXTURES = {
    "coin": "coin_root",
    "coin-asd": "coin_root",
    "ucit": "ucit_root",
    "mllm-dcl": "dcl_root",
    "mllm-acl": "acl_root",
}


@pytest.mark.slow
@pytest.mark.parametrize("bench", sorted(FIXTURES))
def test_benchmark_runs_end_to_end_with_tiny_llava(bench: str, tmp_path: Path, request):
    root = request.getfixturevalue(FIXTURES[bench])
    config = RunConfig(
        method="seqlora",
        bench=bench,
        model="tiny-llava",
        data_root=str(root),
        cache_dir=str(tmp_path / "cache"),
        model_args={"pretrain_steps": 0, "image_size": 16, "patch_size": 8},
        train={"max_steps": 1, "batch_size": 2, "lr": 1e-3},
        eval={"batch_size": 8, "max_new_tokens": 4, "eval_on": "seen", "zero_shot": False},
    )
    results = Runner(config, tmp_path / "run", progress=False).run()
    assert results.complete
    rows, _ = results.matrix()
    tasks = results.tasks
    assert len(rows) == len(tasks)
    for stage in range(1, len(tasks) + 1):
        for j, task in enumerate(tasks[:stage]):
            value = rows[stage - 1][j]
            reason = results.not_scored.get((stage, task))
            # every seen cell is scored on 0-100, or says why it could not be scored offline
            assert (0.0 <= value <= 100.0) or (math.isnan(value) and reason), (stage, task)
        preds = results.predictions(stage, tasks[0])
        assert preds and all(p["prediction"] is not None for p in preds)
    assert results.provenance["benchmark_identity"]["name"] == bench
