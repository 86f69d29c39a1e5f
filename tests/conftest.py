from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep torch (where a test imports it) to the machine's two cores and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# A small real run (synth-coin, tiny-llava, seqlora), made once per test session through the
# installed plugins, so that a `cvit-bench` subprocess can load it too. Stage 2's answers are
# non-empty and differ from stage 0's; by the last stage the model answers with EOS at once.
TINY_RUN = {
    "method": "seqlora",
    "bench": "synth-coin",
    "model": "tiny-llava",
    "bench_args": {"train_per_task": 8, "eval_per_task": 3},
    "model_args": {"pretrain_steps": 0},
    "train": {"max_steps": 2, "batch_size": 4, "lr": 5e-4},
    "eval": {"batch_size": 32, "max_new_tokens": 6, "eval_on": "seen"},
}


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a finished ``TINY_RUN`` (eight stages, a few seconds)."""
    import torch

    from cvit_bench.harness.config import RunConfig, build_dataclass
    from cvit_bench.harness.runner import Runner

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("tiny-run")
    config = build_dataclass(RunConfig, {**TINY_RUN, "cache_dir": str(root / "cache")}, "config")
    Runner(config, root / "run", progress=False).run()
    return root / "run"
