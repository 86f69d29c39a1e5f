"""``cvit-bench publish RUN_DIR --to RESULTS_DIR``: validate a finished run and copy it into a
results tree that the board is built from.

A run is accepted when

* its result files read back and its accuracy matrix is complete (every stage and cell its
  protocol evaluates, status ``finished``);
* it was made from a clean source tree (the recorded git dirty flag is ``false``);
* its benchmark identity is the one the installed benchmark plugin gives today for the same
  options (so its version and scoring mode are canonical, not a stale or edited copy);
* it follows the canonical protocol: the published task order, every task evaluated after every
  stage, and the zero-shot stage.

The copy leaves out ``checkpoints/`` (what resuming needs, not a result) and holds a
``publish.json`` recording what was checked. Runs without it are *scratch* runs: the board
shows them only when built with ``--include-scratch``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import CvitError, RunDirError, UsageError
from cvit_bench.harness.io import atomic_write_json
from cvit_bench.harness.results import RunResults, prediction_path

from .collect import (
    PUBLISH_FILE,
    completeness_problems,
    expected_cells,
    git_state,
    protocol_problems,
    slugify,
)

LEFT_OUT = ("checkpoints",)


def check_run(run_dir: str | os.PathLike[str], manager: Any = None) -> tuple[RunResults, list[str]]:
    """Read the run and list every reason it cannot be published (empty: publishable)."""
    results = RunResults(run_dir)  # raises ResultFileError for unreadable files
    problems = completeness_problems(results)
    for stage, task in expected_cells(results):
        if (stage, task) in results.cells and not prediction_path(
            results.run_dir, stage, task
        ).exists():
            problems.append(f"the predictions of stage {stage} / {task} are missing")
            break
    if not (results.run_dir / "stages.arrow").exists():
        problems.append("stages.arrow (the run's costs) is missing")
    state, commit = git_state(results.provenance)
    if state == "dirty":
        problems.append(
            f"the run was made from a source tree with uncommitted changes (commit {commit[:12]}); "
            "commit them and run again"
        )
    elif state == "unknown":
        problems.append(
            "the run records no git commit and dirty flag, so the code that made it cannot be "
            "identified; run from a git checkout of cvit-bench"
        )
    bench_problems, published_order = _benchmark_problems(results, manager)
    problems.extend(bench_problems)
    problems.extend(protocol_problems(results, published_order))
    return results, problems


def _benchmark_problems(results: RunResults, manager: Any) -> tuple[list[str], list[str] | None]:
    from cvit_bench.harness.config import build_dataclass

    config = results.info.get("config") or {}
    name = config.get("bench")
    recorded = results.provenance.get("benchmark_identity") or {}
    if not name:
        return ["run.json names no benchmark"], None
    if manager is None:
        from cvit_bench.harness.plugins import get_plugin_manager

        manager = get_plugin_manager()
    try:
        bench_cls = manager.benchmark(name)
        bench = bench_cls(
            build_dataclass(bench_cls.config_class, config.get("bench_args"), "bench_args")
        )
        current = bench.identity()
    except CvitError as exc:
        return [f"cannot check the benchmark identity against the installed plugin: {exc}"], None
    problems = []
    if str(recorded.get("version")) != str(current.get("version")):
        problems.append(
            f"benchmark {name!r} version {recorded.get('version')!r} is not the canonical "
            f"version {current.get('version')!r} of the installed plugin"
        )
    elif _normal(recorded) != _normal(current):
        problems.append(
            f"benchmark identity {json.dumps(recorded, sort_keys=True, default=str)} differs from "
            f"the installed plugin's {json.dumps(current, sort_keys=True, default=str)}"
        )
    try:
        published_order = [t.name for t in bench.tasks()]
    except Exception:  # a benchmark that needs its data to list tasks: fall back to the config
        published_order = None
    return problems, published_order


def _normal(identity: dict[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, default=str)


def destination(results: RunResults, results_dir: Path) -> Path:
    config = results.info.get("config") or {}
    identity = str(results.info.get("config_identity") or "")[:8]
    name = slugify(
        f"{config.get('method')}-{config.get('model')}-seed{config.get('seed')}-{identity}", 80
    )
    return results_dir / slugify(str(config.get("bench") or "benchmark")) / name


def publish(
    run_dir: str | os.PathLike[str],
    results_dir: str | os.PathLike[str],
    manager: Any = None,
) -> Path:
    """Validate ``run_dir`` and copy it into ``results_dir``; returns the new directory.

    Raises ``RunDirError`` listing every problem when the run cannot be published, or when the
    destination already exists.
    """
    run_dir = Path(run_dir)
    results_dir = Path(results_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    results, problems = check_run(run_dir, manager)
    if problems:
        raise RunDirError(
            f"{run_dir} cannot be published:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    dest = destination(results, results_dir)
    if dest.exists():
        raise RunDirError(
            f"{dest} already exists: this run (or another with the same configuration identity) "
            "was published before; remove that directory first to replace it"
        )
    if dest.resolve().is_relative_to(run_dir.resolve()):
        raise UsageError(f"--to {results_dir} lies inside the run directory {run_dir}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.publishing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(
            run_dir,
            tmp,
            ignore=shutil.ignore_patterns(*LEFT_OUT, ".*.tmp", "*.tmp", PUBLISH_FILE),
        )
        state, commit = git_state(results.provenance)
        from cvit_bench.harness import __version__

        atomic_write_json(
            tmp / PUBLISH_FILE,
            {
                "published": datetime.now(UTC).isoformat(timespec="seconds"),
                "published_with": f"cvit-bench {__version__}",
                "source": str(run_dir),
                "config_identity": results.info.get("config_identity"),
                "benchmark_identity": results.provenance.get("benchmark_identity"),
                "git_commit": commit,
                "checks": [
                    "complete matrix",
                    "clean source tree",
                    "canonical benchmark identity",
                    "canonical protocol",
                ],
            },
        )
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
