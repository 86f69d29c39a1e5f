"""Conformance checks a plugin runs in its own test suite.

Each ``check_*`` function raises ``AssertionError`` with a message that says what is wrong::

    from cvit_bench.testing import check_method, check_benchmark

    def test_my_method_conforms():
        check_method(MyMethod)             # attributes, config help, a full fake run, resume

    def test_my_benchmark_conforms():
        check_benchmark(MyBenchmark, MyBenchmarkConfig(data_root=...))
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from pathlib import Path
from typing import Any

from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.protocols import Benchmark, Method, ModelAdapter, RunContext
from cvit_bench.harness.registry import NAME_RE
from cvit_bench.harness.types import MethodRequirements, Prediction, Sample, TaskScore

from .fakes import FakeBenchmark, FakeModel
from .manager import plugin_manager


def check_config_class(cls: type, owner: str) -> None:
    """The config class is a dataclass (or ``NoneType`` for no options) whose every field has
    a default and help text, and which can be built with no arguments."""
    if cls is type(None):
        return
    assert dataclasses.is_dataclass(cls), f"{owner}.config_class must be a dataclass, got {cls!r}"
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), (
            f"{owner}.config_class field {f.name!r} has no help text: declare it with "
            "cvit_bench.harness.config_field(default, help='...')"
        )
        assert (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        ), (  # type: ignore[misc]
            f"{owner}.config_class field {f.name!r} has no default"
        )
    cls()


def check_method(
    method_cls: type,
    method_config: Any = None,
    run_fake: bool = True,
    model: type | None = None,
    model_args: dict[str, Any] | None = None,
) -> None:
    """Static checks, then (``run_fake``) a full run on the fake benchmark and model, a run
    interrupted after stage 2 and resumed, and a comparison of the two matrices.

    With ``model`` (a model adapter class, such as ``TinyQwen2VL``, built with ``model_args``)
    the three runs use that model instead of the fake one, on a smaller fake benchmark (3
    text-only tasks of 6 questions, 2 optimizer steps of 4 samples per task): the method's whole
    protocol on a real torch model, which must offer every feature the method's
    ``requirements.model_features`` names. Methods that need a real torch model pass
    ``run_fake=False``, or pass such a ``model``.
    """
    owner = getattr(method_cls, "__name__", str(method_cls))
    assert isinstance(getattr(method_cls, "name", None), str) and NAME_RE.match(method_cls.name), (
        f"{owner}.name must be a valid registry name"
    )
    check_config_class(method_cls.config_class, owner)
    assert isinstance(method_cls.requirements, MethodRequirements), (
        f"{owner}.requirements must be a MethodRequirements"
    )
    assert method_cls.schedule in ("sequential", "joint", "none"), f"{owner}.schedule is invalid"
    instance = method_cls(
        method_config
        if method_config is not None
        else (None if method_cls.config_class is type(None) else method_cls.config_class())
    )
    assert isinstance(instance, Method), f"{owner} does not satisfy the Method protocol"
    if not run_fake:
        return
    from cvit_bench.harness.results import RunResults

    with tempfile.TemporaryDirectory() as tmp:
        real = (model, model_args or {}, Path(tmp) / "cache") if model is not None else None
        full = _fake_run(method_cls, Path(tmp) / "full", method_config, real=real)
        partial_dir = Path(tmp) / "resumed"
        try:
            _fake_run(method_cls, partial_dir, method_config, stop_after_stage=2, real=real)
        except _Stop:
            pass
        resumed = _fake_run(method_cls, partial_dir, method_config, real=real)
        a = RunResults(full).matrix()
        b = RunResults(resumed).matrix()
        assert _same(a, b), f"{owner}: a resumed run gives a different matrix: {a} vs {b}"


class _Stop(Exception):
    pass


def _fake_run(
    method_cls: type,
    out: Path,
    method_config: Any,
    stop_after_stage: int | None = None,
    real: tuple[type, dict[str, Any], Path] | None = None,
) -> Path:
    from cvit_bench.harness.runner import Runner

    cls = method_cls
    if stop_after_stage is not None:

        class Interrupted(method_cls):  # type: ignore[misc, valid-type]
            """Dies at the start of the stage after ``stop_after_stage``, like a killed run."""

            def before_task(self, ctx: RunContext, task: Any) -> None:
                if ctx.stage > stop_after_stage:
                    raise _Stop()
                super().before_task(ctx, task)

        cls = Interrupted
    model_cls = real[0] if real else FakeModel
    manager = plugin_manager(
        methods={method_cls.name: cls},
        benchmarks={"fake-bench": FakeBenchmark},
        models={model_cls.name: model_cls},
    )
    args = dataclasses.asdict(method_config) if dataclasses.is_dataclass(method_config) else {}
    config = RunConfig(
        method=method_cls.name, bench="fake-bench", model=model_cls.name, method_args=args
    )
    if real:
        config = dataclasses.replace(
            config,
            model_args=dict(real[1]),
            bench_args={"tasks": 3, "questions": 6},
            train={"max_steps": 2, "batch_size": 4},  # type: ignore[arg-type]
            eval={"batch_size": 6, "max_new_tokens": 3},  # type: ignore[arg-type]
            cache_dir=str(real[2]),
        )
    Runner(config, out, manager=manager, progress=False).run()
    return out


def _same(a: Any, b: Any) -> bool:
    import math

    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def check_benchmark(
    bench_cls: type, config: Any = None, ctx: RunContext | None = None, max_samples: int = 50
) -> None:
    """Static checks, then the scoring contract on the benchmark's own data: gold answers
    score at least as well as wrong ones, scores are on 0-100, predictions are matched by id
    (a shuffled file scores the same), and a duplicated id is refused."""
    owner = getattr(bench_cls, "__name__", str(bench_cls))
    assert isinstance(getattr(bench_cls, "name", None), str) and NAME_RE.match(bench_cls.name), (
        f"{owner}.name must be a valid registry name"
    )
    assert isinstance(getattr(bench_cls, "version", None), str) and bench_cls.version, (
        f"{owner}.version must be a non-empty string"
    )
    check_config_class(bench_cls.config_class, owner)
    bench = bench_cls(config if config is not None else bench_cls.config_class())
    assert isinstance(bench, Benchmark), f"{owner} does not satisfy the Benchmark protocol"
    if ctx is None:
        tmp = Path(tempfile.mkdtemp())
        ctx = RunContext(
            config=RunConfig(bench=bench_cls.name),
            run_dir=tmp / "run",
            cache_dir=tmp / "cache",
            benchmark=bench,
            model=FakeModel(),
        )
    bench.prepare(ctx)
    tasks = bench.tasks()
    assert tasks, f"{owner}.tasks() is empty"
    names = [t.name for t in tasks]
    assert len(set(names)) == len(names), f"{owner} has duplicate task names: {names}"
    identity = bench.identity()
    assert identity.get("name") and identity.get("version"), (
        f"{owner}.identity() must hold at least name and version"
    )
    for task in tasks:
        train = list(bench.train_samples(task.name))
        refs = list(bench.eval_samples(task.name))[:max_samples]
        assert train and refs, f"{owner}: task {task.name!r} has no training or no eval samples"
        assert all(isinstance(s, Sample) for s in train + refs), (
            f"{owner}: task {task.name!r} yields something that is not a Sample"
        )
        ids = [r.id for r in refs]
        assert len(set(ids)) == len(ids), f"{owner}: task {task.name!r} repeats eval ids"
        gold = [Prediction(r.id, r.answer or "") for r in refs]
        wrong = [Prediction(r.id, "\u2603 not an answer \u2603") for r in refs]
        s_gold = bench.score(task.name, gold, refs)
        s_wrong = bench.score(task.name, wrong, refs)
        for s in (s_gold, s_wrong):
            assert isinstance(s, TaskScore), f"{owner}.score must return a TaskScore"
            assert s.primary in s.metrics, (
                f"{owner}: primary metric {s.primary!r} missing from metrics of {task.name!r}"
            )
            assert s.not_scored or 0.0 <= s.value <= 100.0, (
                f"{owner}: {task.name!r} scores {s.value}, outside 0-100"
            )
        if not s_gold.not_scored:
            assert s_gold.value >= s_wrong.value, (
                f"{owner}: on {task.name!r} gold answers score {s_gold.value}, below wrong "
                f"answers ({s_wrong.value})"
            )
        shuffled = list(gold)
        random.Random(0).shuffle(shuffled)
        s_shuffled = bench.score(task.name, shuffled, refs)
        assert _same(s_shuffled.value, s_gold.value), (
            f"{owner}: on {task.name!r} a reordered prediction list scores {s_shuffled.value}, "
            f"not {s_gold.value}: predictions must be matched by id, not by row"
        )
        try:
            bench.score(task.name, gold + gold[:1], refs)
        except Exception:  # any clear error will do
            pass
        else:
            raise AssertionError(
                f"{owner}: on {task.name!r} a duplicated prediction id is accepted silently"
            )


def check_model(model_cls: type, config: Any = None) -> None:
    """Static checks of a model adapter (building it is the adapter's own test's business:
    it may need weights on disk)."""
    owner = getattr(model_cls, "__name__", str(model_cls))
    assert isinstance(getattr(model_cls, "name", None), str) and NAME_RE.match(model_cls.name), (
        f"{owner}.name must be a valid registry name"
    )
    check_config_class(model_cls.config_class, owner)
    instance = model_cls(config if config is not None else model_cls.config_class())
    assert isinstance(instance, ModelAdapter), f"{owner} does not satisfy the ModelAdapter protocol"
