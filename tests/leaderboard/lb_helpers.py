"""Helpers of the leaderboard tests: run directories, made by the real protocol runner on the torch-free
fake benchmark and model (milliseconds each)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cvit_bench.harness.config import EvalConfig, RunConfig
from cvit_bench.harness.results import read_table, write_table
from cvit_bench.harness.runner import Runner
from cvit_bench.harness.types import MethodRequirements
from cvit_bench.leaderboard.publish import publish
from cvit_bench.testing import FakeBenchmark, FakeModel, FakeSequential, plugin_manager

HOSTILE = "<script>alert(1)</script>"
HOSTILE_TAG = "<img src=x onerror=alert(2)>"
HOSTILE_PREDICTION = "<img src=x onerror=alert(3)>"
HOSTILE_PROMPT = "</script><script>alert(4)</script>"


class FakeReplay(FakeSequential):
    """Keeps the first two training samples of every task and trains on them again later."""

    name: ClassVar[str] = "fake-replay"
    requirements: ClassVar[MethodRequirements] = MethodRequirements(stores_samples=True)

    def setup(self, ctx: Any) -> None:
        super().setup(ctx)
        self.buffer: list[Any] = []

    def training_samples(self, ctx: Any, task: Any, samples: Any) -> Any:
        return list(samples) + list(self.buffer)

    def after_task(self, ctx: Any, task: Any, samples: Any) -> None:
        self.buffer.extend([s for s in samples if s.task == task.name][:2])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": list(self.buffer)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer = list(state.get("buffer", []))

    def costs(self) -> dict[str, Any]:
        return {"stored_samples": len(getattr(self, "buffer", []))}


class FakeOracle(FakeSequential):
    """Sequential fine-tuning that declares it needs the task identity at inference."""

    name: ClassVar[str] = "fake-oracle"
    requirements: ClassVar[MethodRequirements] = MethodRequirements(
        task_identity_at_inference=True, inference="picks the task's adapter"
    )


class FakeJoint(FakeSequential):
    """Trains once on every task together: the multitask reference point."""

    name: ClassVar[str] = "fake-joint"
    schedule: ClassVar[str] = "joint"


class FakeBenchmarkV2(FakeBenchmark):
    """The fake benchmark after a change of its data or scoring: a new version."""

    version: ClassVar[str] = "2"


METHODS = {c.name: c for c in (FakeSequential, FakeReplay, FakeOracle, FakeJoint)}


def manager(bench_version: str = "1") -> Any:
    bench = FakeBenchmark if bench_version == "1" else FakeBenchmarkV2
    return plugin_manager(
        methods=METHODS, benchmarks={"fake-bench": bench}, models={"fake-model": FakeModel}
    )


class _Stop(Exception):
    pass


def make_run(
    out: Path,
    method: str = "fake-seq",
    seed: int = 0,
    tags: tuple[str, ...] = (),
    eval_on: str = "all",
    order: list[str] | None = None,
    bench_version: str = "1",
    stop_after: int | None = None,
    clean: bool = True,
    capacity: int | None = None,
    questions: int | None = None,
) -> Path:
    """Run the protocol into ``out``; ``clean`` records a clean git tree in the provenance
    (the tests must not depend on the state of the checkout they run from)."""
    mgr = manager(bench_version)
    if stop_after is not None:
        base = METHODS[method]

        class Interrupted(base):  # type: ignore[misc, valid-type]
            def before_task(self, ctx: Any, task: Any) -> None:
                if ctx.stage > stop_after:
                    raise _Stop()
                super().before_task(ctx, task)

        Interrupted.name = method
        mgr = plugin_manager(
            methods={**METHODS, method: Interrupted},
            benchmarks={"fake-bench": FakeBenchmark if bench_version == "1" else FakeBenchmarkV2},
            models={"fake-model": FakeModel},
        )
    config = RunConfig(
        method=method,
        bench="fake-bench",
        model="fake-model",
        seed=seed,
        tags=list(tags),
        order=order,
        eval=EvalConfig(eval_on=eval_on),
        model_args={"capacity": capacity} if capacity else {},
        bench_args={"questions": questions} if questions else {},
    )
    try:
        Runner(config, out, manager=mgr, progress=False).run()
    except _Stop:
        pass
    set_git(out, dirty=not clean)
    return out


def rewrite_provenance(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the provenance of a run's matrix, stages and summary files (the
    board reads it from the matrix; rewriting every predictions file too would only be slow)."""
    for path in sorted(Path(run_dir).glob("*.arrow")):
        kind = path.stem
        table, provenance = read_table(path, kind)
        change(provenance)
        write_table(path, kind, table.to_pylist(), provenance)


def set_git(run_dir: Path, dirty: bool | None, commit: str | None = "a" * 40) -> None:
    def change(p: dict[str, Any]) -> None:
        p["git"] = {"commit": commit, "dirty": dirty}

    rewrite_provenance(run_dir, change)


def rename_method(run_dir: Path, name: str) -> None:
    """Give the run's method another name everywhere a result file records it."""
    info_path = Path(run_dir) / "run.json"
    info = json.loads(info_path.read_text())
    info["config"]["method"] = name
    info_path.write_text(json.dumps(info))

    def change(p: dict[str, Any]) -> None:
        p["method"]["name"] = name

    rewrite_provenance(run_dir, change)


def poison_predictions(run_dir: Path, stage: int = 1, task: str = "task1") -> None:
    """Put markup into the first prompt of a task (every stage) and the first prediction of
    one stage, as a model or a dataset might."""
    from cvit_bench.harness.results import prediction_path

    for path in sorted((Path(run_dir) / "predictions").glob(f"stage_*/{task}.arrow")):
        table, provenance = read_table(path, "predictions")
        rows = table.to_pylist()
        rows[0]["prompt"] = HOSTILE_PROMPT
        if path == prediction_path(run_dir, stage, task):
            rows[0]["prediction"] = HOSTILE_PREDICTION
        write_table(path, "predictions", rows, provenance)


@dataclass
class Tree:
    """A results tree: published runs plus scratch runs, and what is in it."""

    results: Path
    scratch: Path
    published: dict[str, Path]
    scratch_runs: dict[str, Path]


def build_tree(root: Path) -> Tree:
    raw = root / "raw"
    results = root / "results"
    scratch = root / "scratch"
    published: dict[str, Path] = {}
    specs = {
        "seq-s0": dict(method="fake-seq", seed=0, tags=("baseline",)),
        "seq-s1": dict(method="fake-seq", seed=1, tags=("baseline",)),
        "seq-s2": dict(method="fake-seq", seed=2, tags=("baseline",)),
        "replay-s0": dict(method="fake-replay", seed=0, tags=("replay", HOSTILE_TAG)),
        "oracle-s0": dict(method="fake-oracle", seed=0, capacity=48),
        "hostile-s0": dict(method="fake-seq", seed=5, capacity=30),
    }
    for key, spec in specs.items():
        run_dir = make_run(raw / key, **spec)  # type: ignore[arg-type]
        if key == "hostile-s0":
            rename_method(run_dir, HOSTILE)
            poison_predictions(run_dir)
        published[key] = publish(run_dir, results, manager=manager())
    scratch_runs = {
        "dirty": make_run(scratch / "dirty", method="fake-replay", seed=3, clean=False),
        "incomplete": make_run(scratch / "incomplete", method="fake-seq", seed=7, stop_after=2),
    }
    shutil.rmtree(raw)
    return Tree(results, scratch, published, scratch_runs)
