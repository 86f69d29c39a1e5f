"""Process-group set-up and gathering for the engine.

A process started by the ``deepspeed`` launcher or ``torchrun`` finds ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` in its environment. A process started directly (the plain
``cvit-bench run``) sets them itself for a world of one, on a free local port, so that
``deepspeed.initialize`` is the one code path everywhere.
"""

from __future__ import annotations

import os
import socket
from typing import Any


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
        import deepspeed

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    return dist.get_rank(), dist.get_world_size()


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
