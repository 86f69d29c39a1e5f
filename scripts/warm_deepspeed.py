"""Build DeepSpeed's CPU operator once, in one process, before anything else starts engines.

The first ``deepspeed.initialize`` on a machine compiles a shared-memory operator (about 40 s)
into the folder ``cvit_bench.harness.engine.distributed.extensions_dir`` names (one per Python
environment unless ``TORCH_EXTENSIONS_DIR`` is set). A process killed during that compile
leaves a lock behind that hangs the next one, so CI runs this first and the tests find the
operator ready.
"""

from __future__ import annotations

import os
import socket
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        os.environ.setdefault(name, value)
    from cvit_bench.harness.engine.distributed import prepare_extensions_dir

    print(f"DeepSpeed operators in {prepare_extensions_dir()}")
    started = time.perf_counter()
    import deepspeed
    import torch

    model = torch.nn.Linear(4, 4)
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "torch_adam": True}},
    }
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=config
    )
    loss = engine(torch.ones(1, 4)).sum()
    engine.backward(loss)
    engine.step()
    print(f"DeepSpeed {deepspeed.__version__} ready in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
