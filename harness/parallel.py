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

:class:`GradientWorkers` keeps forked copies for the length of a training loop: every step,
each computes the gradients of some of the step's parts (micro-batches) over parameters held in
shared memory, and this process adds them to its own in part order, so the sum is the one a
single process would have made.

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


def cpu_processes(limit: int) -> int:
    """How many processes, each on this process's torch thread count, the usable CPUs hold
    (``CVIT_BENCH_WORKERS`` caps them): at least 1, at most ``limit``."""
    import torch

    return max(1, min(default_workers() // max(1, torch.get_num_threads()), limit))


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


def shared_memory_fits(nbytes: int) -> bool:
    """Whether ``nbytes`` more fit in the shared-memory file system with room to spare (a
    full one kills the process writing to it). True where there is none to ask."""
    import shutil

    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return True
    return nbytes * 2 < free


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
        _send_error(pipe, exc, traceback.format_exc())


def _send_error(pipe: Any, exc: BaseException, trace: str) -> None:
    """Report a worker's failure to its parent: the exception and its trace, or the trace alone
    for an exception that cannot be pickled."""
    try:
        pipe.send(("error", (exc, trace)))
    except Exception:
        pipe.send(("error", (None, trace)))


class GradientWorkers:
    """Forked processes that compute the gradients of some of every step's parts.

    ``params`` move to shared memory, so a worker always computes with the weights the last
    optimizer step left. Part ``k`` of a step goes to process ``k % n``: this process keeps part
    0 and every n-th, worker ``w`` (1 to n - 1) the parts with ``k % n == w``. In a worker,
    ``compute(job)`` must leave that part's gradient in the parameters' ``.grad`` (they are
    cleared before each part) and return the part's loss as a float; the worker copies the
    gradient into part ``k``'s own shared buffer (a worker with several parts goes on to the
    next while this process still reads the last) and :meth:`add_into` adds it to this
    process's gradients. Called for every part in order, with this process's own parts computed
    in between, it accumulates exactly what one process computing every part would.

    ``what`` names the work in errors, ``way_out`` says how to do without workers. A worker's
    :class:`~cvit_bench.harness.errors.CvitError` (a missing image, say) is raised here as it
    is; any other failure, or a worker's death, becomes a ``CvitError`` saying which worker and
    ``way_out``. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        n: int,
        parts: int,
        params: Sequence[Any],
        compute: Callable[[Any], float],
        what: str,
        way_out: str,
    ) -> None:
        import multiprocessing

        import torch

        if not can_fork():
            raise CvitError(
                f"{what} in several processes needs the 'fork' start method, which this "
                f"platform lacks; {way_out}"
            )
        self.params = list(params)
        self.n = n
        self.what = what
        self.way_out = way_out
        for param in self.params:
            param.data.share_memory_()
        self.sizes = [p.numel() for p in self.params]
        total = sum(self.sizes)
        self.buffers = {
            k: torch.zeros(total, dtype=self.params[0].dtype).share_memory_()
            for k in range(parts)
            if k % n
        }
        context = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # else a worker would write the buffered text again
            stream.flush()
        threads = torch.get_num_threads()
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        try:
            for w in range(1, n):
                parent_end, child_end = context.Pipe()
                proc = context.Process(
                    target=_gradient_worker,
                    args=(child_end, self.buffers, self.params, compute, threads),
                    name=f"cvit-bench-gradients-{w}",
                    daemon=True,
                )
                proc.start()
                child_end.close()
                self.pipes.append(parent_end)
                self.procs.append(proc)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def fits(n: int, parts: int, params: Sequence[Any]) -> bool:
        """Whether ``n`` processes over ``parts`` parts fit in shared memory: the parameters and
        a gradient buffer for every part a worker computes."""
        size = sum(p.numel() * p.element_size() for p in params)
        return shared_memory_fits(size * (1 + sum(1 for k in range(parts) if k % n)))

    def __enter__(self) -> GradientWorkers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def owner(self, k: int) -> int:
        """The process computing part ``k``: 0 for this one, else the worker's number."""
        return k % self.n

    def send(self, jobs: Sequence[Any]) -> None:
        """Start a step: ``jobs[k]`` is part ``k``'s job; the workers' parts start now."""
        for w, pipe in enumerate(self.pipes, start=1):
            pipe.send([(k, job) for k, job in enumerate(jobs) if k % self.n == w])

    def add_into(self, k: int) -> float:
        """Wait for part ``k`` (a worker's), add its gradient to the parameters' and return its
        loss."""
        w = k % self.n
        try:
            reply = self.pipes[w - 1].recv()
        except (EOFError, OSError) as exc:
            self.procs[w - 1].join(timeout=5)
            code = self.procs[w - 1].exitcode
            raise CvitError(
                f"{self.what} worker process {w} died (exit code {code}); was it killed, or out "
                f"of memory? {self.way_out}"
            ) from exc
        if reply[0] == "error":
            error, trace = reply[1]
            if isinstance(error, CvitError):
                raise error
            raise CvitError(f"{self.what} worker process {w} failed:\n{trace}{self.way_out}")
        _, got, loss, has_grad = reply
        if got != k:
            raise CvitError(f"{self.what} worker process {w} sent part {got}, not part {k}")
        offset = 0
        buffer = self.buffers[k]
        for param, size, has in zip(self.params, self.sizes, has_grad):
            if has:
                grad = buffer[offset : offset + size].view_as(param)
                if param.grad is None:
                    param.grad = grad.clone()
                else:
                    param.grad.add_(grad)
            offset += size
        return loss

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self.pipes:
            pipe.close()
        self.pipes, self.procs = [], []


def _gradient_worker(
    pipe: Any,
    buffers: dict[int, Any],
    params: list[Any],
    compute: Callable[[Any], float],
    threads: int,
) -> None:
    import traceback

    import torch

    ignore_sigint()  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(threads)
    sizes = [p.numel() for p in params]
    while True:
        try:
            jobs = pipe.recv()
        except (EOFError, OSError):
            return
        if jobs is None:
            return
        for k, job in jobs:
            try:
                for param in params:
                    param.grad = None
                loss = compute(job)
                has_grad = []
                offset = 0
                for param, size in zip(params, sizes):
                    has_grad.append(param.grad is not None)
                    if param.grad is not None:
                        buffers[k][offset : offset + size].copy_(param.grad.reshape(-1))
                    offset += size
                pipe.send(("part", k, float(loss), has_grad))
            except BaseException as exc:
                _send_error(pipe, exc, traceback.format_exc())
                return
