"""Independent jobs over the machine's cores, for data generation.

Drawing synthetic images is pure Python and PIL, one core per process; a machine with two cores
draws a benchmark in about half the time with two processes. Workers are forked where the
platform can (as torch's ``DataLoader`` workers are): a spawned worker re-runs the top level of
the script that called it, so a researcher's script without an ``if __name__ == "__main__":``
guard would run again in every worker. The jobs use PIL and numpy only, never torch's thread
pool or a process group the parent may hold. Elsewhere workers are spawned.

``CVIT_BENCH_WORKERS`` caps the number of processes (``1``: everything in this process), for a
machine whose cores are busy with something else.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .errors import CvitError, UsageError

T = TypeVar("T")

ENV = "CVIT_BENCH_WORKERS"


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """``$CVIT_BENCH_WORKERS`` when set, else the usable CPUs."""
    given = os.environ.get(ENV, "").strip()
    if not given:
        return usable_cpus()
    try:
        workers = int(given)
    except ValueError:
        workers = 0
    if workers < 1:
        raise UsageError(f"{ENV} must be a whole number of processes, at least 1; got {given!r}")
    return workers


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent handles it (cancels what has not
    # started, waits for what has, cleans up); a worker must not die mid-file instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def map_jobs(fn: Callable[[Any], T], jobs: Sequence[Any], workers: int | None = None) -> list[T]:
    """``[fn(job) for job in jobs]``, run in up to ``workers`` processes (default:
    :func:`default_workers`). ``fn`` must be a module-level function and the jobs picklable.
    With one worker or one job everything runs in this process. A job's exception is raised
    here once the jobs already running have finished; jobs not yet started are cancelled."""
    jobs = list(jobs)
    count = min(workers if workers is not None else default_workers(), len(jobs))
    if count <= 1:
        return [fn(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(count, mp_context=context, initializer=_ignore_sigint) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except BrokenProcessPool as exc:
            raise CvitError(
                f"a worker process drawing data died ({exc}); was it killed, or out of "
                f"memory? {ENV}=1 draws everything in this process"
            ) from exc
        except BaseException:
            for future in futures:
                future.cancel()
            raise
