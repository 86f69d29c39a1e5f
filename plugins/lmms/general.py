"""General ability inside a run: lmms-eval tasks scored on the model the run holds in memory.

The runner calls :func:`check` before anything is trained (lmms-eval installed, every task name
known) and :func:`evaluate` after each stage listed in ``eval.general_stages``. The scores are
lmms-eval's own (``lmms_eval.evaluator.simple_evaluate`` with the :class:`CvitBenchLMM` wrapper),
so they equal what ``python -m lmms_eval --model cvit_bench`` reports for the same stage.

Nothing is downloaded: the Hugging Face hub and datasets are switched to offline mode before
lmms-eval is imported, so a task must read local files (``dataset_path`` pointing at a local
copy, or a ``json``/``parquet``/``imagefolder`` loader with local ``data_files``/``data_dir``).
"""

from __future__ import annotations

import difflib
import math
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cvit_bench.harness.errors import UsageError

from . import INSTALL_STEPS, MODEL_NAME

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

_task_managers: dict[tuple[tuple[str, ...], bool], Any] = {}


def require_lmms_eval() -> None:
    """Import lmms-eval (offline), or say exactly how to install it."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import lmms_eval.evaluator  # noqa: F401
        import lmms_eval.tasks  # noqa: F401
        from lmms_eval.models import MODEL_REGISTRY_V2  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"eval.general_tasks needs lmms-eval, which is not usable here ({exc}). "
            f"Install the extra: {INSTALL_STEPS}"
        ) from None


def task_manager(include_path: Sequence[str], names: Sequence[str]) -> Any:
    """lmms-eval's task index over its own tasks and ``include_path``.

    When every name is found in ``include_path`` alone, lmms-eval's ~2000 built-in task files
    are not indexed (that takes seconds); the tasks are the same either way.
    """
    from lmms_eval.tasks import TaskManager

    paths = tuple(str(p) for p in include_path)
    for path in paths:
        if not os.path.isdir(path):
            raise UsageError(f"eval.general_include_path: {path} is not a directory")
    if paths:
        local = _task_managers.get((paths, False))
        if local is None:
            local = TaskManager("WARNING", include_path=list(paths), include_defaults=False)
            _task_managers[(paths, False)] = local
        if all(name in local.all_tasks for name in names):
            return local
    full = _task_managers.get((paths, True))
    if full is None:
        full = TaskManager("WARNING", include_path=list(paths) or None)
        _task_managers[(paths, True)] = full
    return full


def check(tasks: Sequence[str], include_path: Sequence[str]) -> None:
    """Before training: lmms-eval is importable and knows every task name."""
    require_lmms_eval()
    manager = task_manager(include_path, tasks)
    known = set(manager.all_tasks)
    for name in tasks:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            where = f" or in {', '.join(include_path)}" if include_path else ""
            raise UsageError(
                f"eval.general_tasks: lmms-eval has no task {name!r} among its own tasks"
                f"{where}.{hint} (lmms-eval's --include_path is eval.general_include_path)"
            )
        kind = _output_type(manager, name)
        if kind is not None and kind != "generate_until":
            raise UsageError(
                f"eval.general_tasks: lmms-eval task {name!r} is a {kind} task; cvit-bench "
                "models answer generate_until tasks only (they are scored on generated text)"
            )


def _output_type(manager: Any, name: str) -> str | None:
    """A single task's ``output_type`` from its YAML file (None for groups and tags, which
    are checked when lmms-eval loads them)."""
    from lmms_eval import utils

    entry = manager.task_index.get(name) or {}
    if entry.get("type") != "task" or not isinstance(entry.get("yaml_path"), str):
        return None
    config = utils.load_yaml_config(entry["yaml_path"], mode="simple")
    return str(config.get("output_type", "generate_until"))


def evaluate(
    ctx: Any,
    engine: Any,
    tasks: Sequence[str],
    include_path: Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Score the lmms-eval ``tasks`` on the model in memory; one row per (task, metric).

    Rows: ``task``, ``metric``, ``filter``, ``value`` (as lmms-eval reports it), ``stderr``,
    ``primary`` (the task's first metric), ``higher_is_better`` and ``n`` (documents scored).
    Every rank of a distributed run calls this together: lmms-eval runs whole on each rank and
    the engine shards the generation over the ranks, as it does for the accuracy matrix.
    """
    require_lmms_eval()
    from lmms_eval.evaluator import simple_evaluate

    from .model import CvitBenchLMM

    manager = task_manager(include_path, tasks)
    lm = CvitBenchLMM.in_memory(ctx, engine)
    with _one_process_view(), _kept_random_state():
        results = simple_evaluate(
            model=lm,
            model_args=f"stage={ctx.stage}",
            tasks=list(tasks),
            task_manager=manager,
            limit=limit,
            batch_size=ctx.config.eval.batch_size,
            log_samples=False,
            bootstrap_iters=1000,
            verbosity="WARNING",
            # no accelerate state: lmms-eval sees one process and needs no collective
            distributed_executor_backend="torchrun",
        )
    return result_rows(results or {})


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """lmms-eval's ``results`` dict as rows (numeric metrics only)."""
    rows = []
    higher = results.get("higher_is_better", {})
    counts = results.get("n-samples", {})
    for task, metrics in results.get("results", {}).items():
        first = True
        for key, value in metrics.items():
            name, _, filter_name = key.partition(",")
            if name == "alias" or "_stderr" in name or not _is_number(value):
                continue
            stderr = metrics.get(f"{name}_stderr,{filter_name}")
            n = counts.get(task, {}).get("effective")
            rows.append(
                {
                    "task": task,
                    "metric": name,
                    "filter": filter_name or "none",
                    "value": float(value),
                    "stderr": float(stderr) if _is_number(stderr) else None,
                    "primary": first,
                    "higher_is_better": higher.get(task, {}).get(name),
                    "n": int(n) if isinstance(n, int) else None,
                }
            )
            first = False
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@contextmanager
def _one_process_view() -> Iterator[None]:
    """lmms-eval reads the launcher's RANK and WORLD_SIZE to split documents over processes;
    inside a run every rank sees every document (the engine splits the generation itself)."""
    keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _kept_random_state() -> Iterator[None]:
    """lmms-eval seeds Python, NumPy and torch; the run's random streams are put back after."""
    import numpy as np
    import torch

    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


__all__ = ["MODEL_NAME", "check", "evaluate", "require_lmms_eval", "result_rows"]
