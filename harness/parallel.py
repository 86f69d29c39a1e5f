"""Work spread over the machine's cores: data generation and CPU evaluation.

:func:`map_jobs` runs independent jobs in a pool. Drawing synthetic images is pure Python and
PIL, one core per process; a machine with two cores draws a benchmark in about half the time
with two processes. Workers are forked where the platform can (as torch's ``DataLoader``
workers are): a spawned worker re-runs the top level of the script that called it, so a
researcher's script without an ``if __name__ == "__main__":`` guard would run again in every
worker. Those jobs use PIL and numpy only, never torch's thread pool or a process group the
parent may hold. Elsewhere workers are spawned.

:func:`forked_map` forks copies of this process as it is now, for work over state that cannot
be pickled cheaply (a model between two training stages): each copy computes its share with
torch, on the thread count this process set, and only sends results back; it never touches a
process group. Without ``fork`` everything runs in this process.

``CVIT_BENCH_WORKERS`` caps the number of processes (``1``: everything in this process), for a
machine whose cores are busy with something else.
"""

from __future__ import annotations

import os
import signal
import sys
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


def ignore_sigint() -> None:
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
    with ProcessPoolExecutor(count, mp_context=context, initializer=ignore_sigint) as pool:
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


def can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def forked_map(fn: Callable[[int], T], n: int, workers: int, what: str) -> list[T]:
    """``[fn(k) for k in range(n)]``, item ``k`` computed by process ``k % workers``: this
    process (``k % workers == 0``) and ``workers - 1`` forked copies of it, made when this is
    called, so ``fn`` may be a closure over anything this process holds (a model as it is now)
    and each worker computes exactly what this process would have. The results must be
    picklable. A worker only computes and reports back: what ``fn`` changes in a worker's memory
    is lost with it. ``what`` names the work in errors. Without ``fork`` (or with one worker)
    everything runs here."""
    workers = max(1, min(workers, n))
    if workers == 1 or not can_fork():
        return [fn(k) for k in range(n)]
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for stream in (sys.stdout, sys.stderr):  # else a worker would write the buffered text again
        stream.flush()
    pipes, procs = [], []
    try:
        for w in range(1, workers):
            parent_end, child_end = context.Pipe(duplex=False)
            proc = context.Process(
                target=_forked_worker, args=(child_end, fn, range(w, n, workers)), daemon=True
            )
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(proc)
        results: dict[int, T] = {k: fn(k) for k in range(0, n, workers)}
        for pipe, proc in zip(pipes, procs):
            try:
                status, payload = pipe.recv()
            except (EOFError, OSError):
                proc.join()
                raise CvitError(
                    f"a worker process for {what} died (exit code {proc.exitcode}); was it "
                    f"killed, or out of memory? {ENV}=1 runs everything in this process"
                ) from None
            if status == "error":
                error, trace = payload
                if isinstance(error, CvitError):  # a missing image, say: the error as it is
                    raise error
                raise CvitError(f"a worker process for {what} failed:\n{trace}")
            results.update(payload)
        return [results[k] for k in range(n)]
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in pipes:
            pipe.close()


def _forked_worker(pipe: Any, fn: Callable[[int], Any], items: range) -> None:
    import traceback

    ignore_sigint()
    try:
        pipe.send(("ok", {k: fn(k) for k in items}))
    except BaseException as exc:
        trace = traceback.format_exc()
        try:
            pipe.send(("error", (exc, trace)))
        except Exception:  # an exception that cannot be pickled: its text
            pipe.send(("error", (None, trace)))
