"""Process-group set-up and gathering for the engine.

A process started by the ``deepspeed`` launcher or ``torchrun`` finds ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` in its environment. A process started directly (the plain
``cvit-bench run``) sets them itself for a world of one, on a free local port, so that
``deepspeed.initialize`` is the one code path everywhere.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import CvitError

STALE_LOCK_S = 900.0
"""A build lock older than this is left over from a killed build (a build takes 1-3 minutes)."""


def extensions_dir() -> Path:
    """Where DeepSpeed's compiled CPU operator lives: ``$TORCH_EXTENSIONS_DIR`` when set, else
    one folder per Python environment, so that environments sharing a home folder do not
    rebuild each other's operator (each build of another torch replaces the last)."""
    given = os.environ.get("TORCH_EXTENSIONS_DIR")
    if given:
        return Path(given)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha1(sys.prefix.encode()).hexdigest()[:10]
    return cache / "torch_extensions" / f"cvit-bench-{key}"


def prepare_extensions_dir() -> Path:
    """Point torch's extension builder at :func:`extensions_dir` and refuse to wait forever on
    a lock a killed build left behind (torch would poll it without end, silently)."""
    directory = extensions_dir()
    os.environ["TORCH_EXTENSIONS_DIR"] = str(directory)
    now = time.time()
    for lock in directory.glob("*/lock"):
        try:
            age = now - lock.stat().st_mtime
        except OSError:
            continue
        if age > STALE_LOCK_S:
            raise CvitError(
                f"{lock} is a build lock left {age / 60:.0f} minutes ago by a DeepSpeed operator "
                "build that did not finish (a killed process?); torch would wait on it forever. "
                "If no other process is building it now, delete that file and run again."
            )
    return directory


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launched_world_size() -> int:
    """The world size the launcher announced (1 when started directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def ensure_distributed() -> tuple[int, int]:
    """Initialise the default process group once; return ``(rank, world_size)``."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if "RANK" not in os.environ or "MASTER_PORT" not in os.environ:
            os.environ.update(
                {
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(free_port()),
                    "RANK": "0",
                    "WORLD_SIZE": "1",
                    "LOCAL_RANK": "0",
                }
            )
        prepare_extensions_dir()
        import deepspeed

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    return dist.get_rank(), dist.get_world_size()


def local_device() -> Any:
    """This process's accelerator (``cuda:LOCAL_RANK``) when there is one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)``: from the process group when there is one, else ``(0, 1)``
    unless a launcher started several processes (then the group is set up)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if launched_world_size() > 1:
        return ensure_distributed()
    return 0, 1


def all_gather_objects(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out
