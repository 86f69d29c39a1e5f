"""The plugin contract: every hook cvit-bench calls, with when and how.

A plugin is a module (or object) published under the entry-point group ``cvit_bench``::

    [project.entry-points.cvit_bench]
    mymethod = "cvit_bench_mymethod.plugin"

and implements any of the hooks below with ``@cvit_bench.harness.hookimpl``. Hooks come in two
kinds:

* **Registration hooks** (``register_methods``, ``register_benchmarks``, ``register_models``)
  are called once, when the plugin manager starts, with a :class:`~cvit_bench.harness.registry.Registrar`.
  They add names to the registries. They must be cheap: ``cvit-bench list`` calls them without
  importing torch, so register ``"module:Class"`` strings rather than importing heavy modules.
* **Run events** (``run_started``, ``task_trained``, ``task_evaluated``, ``stage_finished``,
  ``run_finished``) are called by the protocol runner for loggers and trackers. They observe:
  their arguments are read-only snapshots (plain dicts and dataclasses), their return values
  are ignored, and an exception raised by one is reported as a warning naming the plugin, never
  fatal to the run. They never implement a method: methods are classes behind the
  :class:`~cvit_bench.harness.protocols.Method` protocol.

Every hook is called once per implementing plugin, in no guaranteed order between plugins.

Versioning: this contract has the version :data:`cvit_bench.harness.API_VERSION`. Hooks and
arguments are only ever added. A hook or argument that must go first emits a
``DeprecationWarning`` for at least one minor release (pluggy's ``warn_on_impl``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .registry import Registrar

PROJECT_NAME = "cvit_bench"
"""The pluggy project name, which is also the entry-point group plugins are published under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_methods(registrar: Registrar) -> None:
    """Register continual methods.

    Called once per plugin when the plugin manager starts.

    Args:
        registrar: call ``registrar.add(name, target, description=..., aliases=())`` for each
            method. ``target`` is the method class or a lazy ``"module:Class"`` string that is
            imported only when a run asks for that name. The class must satisfy
            :class:`~cvit_bench.harness.protocols.Method`.

    Returns:
        Nothing; the return value is ignored.

    Added in API 1.0.
    """


@hookspec
def register_benchmarks(registrar: Registrar) -> None:
    """Register benchmarks.

    Called once per plugin when the plugin manager starts.

    Args:
        registrar: as for :func:`register_methods`; the target satisfies
            :class:`~cvit_bench.harness.protocols.Benchmark`.

    Returns:
        Nothing; the return value is ignored.

    Added in API 1.0.
    """


@hookspec
def register_models(registrar: Registrar) -> None:
    """Register model families (model adapters).

    Called once per plugin when the plugin manager starts.

    Args:
        registrar: as for :func:`register_methods`; the target satisfies
            :class:`~cvit_bench.harness.protocols.ModelAdapter`.

    Returns:
        Nothing; the return value is ignored.

    Added in API 1.0.
    """


@hookspec
def run_started(run: dict[str, Any]) -> None:
    """A run starts or resumes.

    Args:
        run: ``{"run_dir", "config", "tasks", "resumed_from_stage", "provenance"}``: the run
            directory (str), the resolved config (dict), the task names in training order,
            the first stage this process will execute (0 for a fresh run) and the provenance
            recorded in the result files.

    Added in API 1.0.
    """


@hookspec
def task_trained(run: dict[str, Any], stage: int, task: str, stats: dict[str, Any]) -> None:
    """Training on a task finished (before the stage's evaluation).

    Args:
        run: as in :func:`run_started`.
        stage: the stage number, 1-based (stage 0 is the zero-shot evaluation).
        task: the task just trained (``"joint"`` for a joint run).
        stats: ``{"steps", "samples", "loss", "wall_s", "trainable_params", ...}``.

    Added in API 1.0.
    """


@hookspec
def task_evaluated(
    run: dict[str, Any], stage: int, task: str, metrics: dict[str, float], primary: str
) -> None:
    """One cell of the accuracy matrix was scored.

    Args:
        run: as in :func:`run_started`.
        stage: the stage the model was evaluated after (0 = zero-shot).
        task: the evaluated task.
        metrics: every metric of the task's scorer (0-100).
        primary: the name of the metric that enters the accuracy matrix.

    Added in API 1.0.
    """


@hookspec
def stage_finished(run: dict[str, Any], stage: int, wall_s: float) -> None:
    """A stage's results and checkpoint were written; a crash after this point keeps it.

    Args:
        run: as in :func:`run_started`.
        stage: the finished stage.
        wall_s: the stage's wall time in seconds.

    Added in API 1.0.
    """


@hookspec
def run_finished(run: dict[str, Any], summary: dict[str, float]) -> None:
    """Every stage is done and the summary metrics are written.

    Args:
        run: as in :func:`run_started`.
        summary: the continual metrics by name (``MFT``, ``MFN``, ``MAA``, ``BWT``, ...).

    Added in API 1.0.
    """
