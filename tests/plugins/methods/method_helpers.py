"""Shared set-up for the method tests: tiny-llava on the toy benchmark, and runs through the
real runner (uninterrupted, and stopped after a stage then resumed) on a shrunken synth-coin."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest


def tiny_context(root: Path, method: Any, train: dict[str, Any] | None = None, **bench: Any):
    """tiny-llava (random base, no pretraining) with ``method`` set up on the toy benchmark."""
    import torch

    from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
    from cvit_bench.testing.toy import ToyBenchmark, make_context

    torch.set_num_threads(2)
    benchmark = ToyBenchmark(n_train=bench.get("n_train", 8), n_eval=bench.get("n_eval", 4))
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    overrides = {"train": {"batch_size": 4, "lr": 1e-2, "max_steps": 2, **(train or {})}}
    ctx = make_context(root, benchmark, model, method, overrides)
    benchmark.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    return ctx


def train_stage(ctx: Any, stage: int) -> dict[str, Any]:
    """One stage of the sequential protocol as the runner does it (without evaluation)."""
    ctx.stage = stage
    task = ctx.tasks[stage - 1]
    method, engine = ctx.method, ctx.extras.setdefault("engine", ctx.model.create_engine(ctx))
    method.before_task(ctx, task)
    samples = list(method.training_samples(ctx, task, ctx.benchmark.train_samples(task.name)))
    stats = engine.train(ctx, task, samples)
    method.after_task(ctx, task, samples)
    return stats


class Stop(Exception):
    pass


# The smallest synth-coin run that still trains every stage: 8 tasks, 8 training and 4 test
# items per task, 2 steps of 4 samples per task, a random (not pretrained) tiny-llava.
SMALL_RUN = {
    "bench_args": {"train_per_task": 8, "eval_per_task": 4},
    "model_args": {"pretrain_steps": 0},
    "train": {"max_steps": 2, "batch_size": 4, "lr": 5e-3},
    "eval": {"batch_size": 32, "max_new_tokens": 4},
}


def run_protocol(
    method_cls: type, out: Path, cache: Path, method_args: dict[str, Any], stop_after: int | None
) -> Path:
    """The real runner on the small synth-coin run; ``stop_after`` kills it (an exception at
    the start of the next stage, like a killed process) after that stage was committed."""
    from cvit_bench.harness.config import RunConfig, build_dataclass
    from cvit_bench.harness.runner import Runner
    from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
    from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
    from cvit_bench.testing import plugin_manager

    cls = method_cls
    if stop_after is not None:

        class Interrupted(method_cls):  # type: ignore[misc, valid-type]
            def before_task(self, ctx: Any, task: Any) -> None:
                if ctx.stage > stop_after:
                    raise Stop()
                super().before_task(ctx, task)

        cls = Interrupted
    manager = plugin_manager(
        methods={method_cls.name: cls},
        benchmarks={"synth-coin": SynthCoin},
        models={"tiny-llava": TinyLlava},
    )
    data = {
        **SMALL_RUN,
        "method": method_cls.name,
        "method_args": method_args,
        "cache_dir": str(cache),
    }
    config = build_dataclass(RunConfig, data, "config")
    Runner(config, out, manager=manager, progress=False).run()
    return out


def check_resume(tmp_path: Path, method_cls: type, method_args: dict[str, Any] | None = None):
    """A run stopped after stage 3 and resumed gives the same final matrix as a run that was
    never stopped; returns the full run's results."""
    import torch

    from cvit_bench.harness.results import RunResults

    torch.set_num_threads(2)
    args = dict(method_args or {})
    cache = tmp_path / "cache"
    full = run_protocol(method_cls, tmp_path / "full", cache, args, None)
    with pytest.raises(Stop):
        run_protocol(method_cls, tmp_path / "resumed", cache, args, 3)
    resumed = run_protocol(method_cls, tmp_path / "resumed", cache, args, None)
    a, b = RunResults(full), RunResults(resumed)
    assert a.complete and b.complete
    assert same(a.matrix(), b.matrix()), f"{method_cls.name}: resumed matrix differs"
    last = len(a.tasks)
    for task in a.tasks:  # the final model answers every question identically
        assert [p["prediction"] for p in a.predictions(last, task)] == [
            p["prediction"] for p in b.predictions(last, task)
        ]
    costs = [r["method_costs"] for r in a.stages_table()]
    assert costs == [r["method_costs"] for r in b.stages_table()]
    return a


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def config_defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def toy_run(
    method_cls: type,
    tmp_path: Path,
    name: str,
    method_args: dict[str, Any],
    stop_after: int | None = None,
    model_cls: type | None = None,
) -> Any:
    """A whole run of ``method_cls`` on the toy benchmark with a random tiny model (tiny-llava
    unless ``model_cls`` says otherwise), through the real runner; with ``stop_after`` it dies
    (KeyboardInterrupt) at the start of the next stage."""
    from cvit_bench.harness.config import RunConfig
    from cvit_bench.harness.runner import Runner
    from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
    from cvit_bench.testing import plugin_manager
    from cvit_bench.testing.toy import ToyBenchmark

    cls = method_cls
    if stop_after is not None:

        class Interrupted(method_cls):  # type: ignore[misc, valid-type]
            def before_task(self, ctx, task):
                if ctx.stage > stop_after:
                    raise KeyboardInterrupt
                super().before_task(ctx, task)

        cls = Interrupted
    model_cls = model_cls or TinyLlava
    manager = plugin_manager(
        methods={method_cls.name: cls},
        benchmarks={"toy": ToyBenchmark},
        models={model_cls.name: model_cls},
    )
    config = RunConfig(
        method=method_cls.name,
        bench="toy",
        model=model_cls.name,
        method_args=method_args,
        model_args={"pretrain_steps": 0},
        train={"max_steps": 4, "batch_size": 8, "lr": 2e-2},
        eval={"batch_size": 8},
        cache_dir=str(tmp_path / "cache"),
    )
    return Runner(config, tmp_path / name, manager=manager, progress=False).run()
