"""Bring one stage of a finished (or partly finished) run directory back into memory.

The model is rebuilt exactly as the runner builds it (same configuration, same plugins), the
method is set up, and the stage's checkpoint (adapters and method state) is loaded, so that
generating through the returned engine answers as the run did after that stage, with the
method's inference routing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import RunDirError, UsageError


@dataclass
class LoadedStage:
    """A run's model after ``stage``: ``ctx`` (with ``ctx.method`` set) and its ``engine``."""

    ctx: Any
    engine: Any
    stage: int


def finished_stages(run_dir: str | Path) -> tuple[dict[str, Any], list[int]]:
    """``run.json`` of ``run_dir`` and its finished stages; a clear error when it is not a run."""
    info_path = Path(run_dir) / "run.json"
    if not info_path.exists():
        raise RunDirError(f"{run_dir}: not a cvit-bench run directory (no run.json)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{info_path} is corrupt: {exc}") from None
    return info, sorted(int(s) for s in info.get("finished_stages", []))


def load_stage(run_dir: str | Path, stage: int | None = None, manager: Any = None) -> LoadedStage:
    """The model of ``run_dir`` after ``stage`` (default: the last finished stage)."""
    from cvit_bench.harness.config import RunConfig, build_dataclass
    from cvit_bench.harness.protocols import RunContext
    from cvit_bench.harness.runner import Runner, default_cache_dir, seed_everything, stage_seed

    run_dir = Path(run_dir)
    info, done = finished_stages(run_dir)
    if not done:
        raise RunDirError(f"{run_dir}: no stage has finished yet")
    if stage is None:
        stage = done[-1]
    if stage not in done:
        raise UsageError(f"{run_dir}: stage {stage} is not a finished stage; finished: {done}")
    config = build_dataclass(RunConfig, info.get("config", {}), f"{run_dir}/run.json config")
    runner = Runner(config, run_dir, manager=manager, progress=False)
    checkpoint = run_dir / "checkpoints" / f"stage_{stage}"
    if stage >= 1 and not checkpoint.is_dir():
        raise RunDirError(f"{run_dir}: stage {stage} has no checkpoint ({checkpoint} is missing)")
    tasks = runner.task_order()
    model = runner.model_cls(runner.model_config)
    ctx = RunContext(
        config=runner.config,
        run_dir=run_dir,
        cache_dir=default_cache_dir(runner.config),
        benchmark=runner.benchmark,
        model=model,
        tasks=tasks,
        stage=0,
    )
    seed_everything(stage_seed(runner.config.seed, 0))
    runner.benchmark.prepare(ctx)
    model.build(ctx)
    method = runner.method_cls(runner.method_config)
    ctx.method = method
    method.setup(ctx)
    ctx.stage = stage
    if stage >= 1:
        method.load_checkpoint(ctx, checkpoint)
    return LoadedStage(ctx=ctx, engine=model.create_engine(ctx), stage=stage)
