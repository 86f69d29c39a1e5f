"""Train tiny-llava + seqlora on the toy benchmark through the DeepSpeed engine; write results.

Run directly (one process) or under ``torchrun`` / ``deepspeed`` (several); rank 0 writes
``--out`` as JSON: per-step losses, the trained LoRA weights' checksums, the frozen weights'
checksum before and after, and the predictions on the last task trained. ``--stages 2`` trains
the toy benchmark's two tasks in sequence, as the runner does.

For the tests of forked training processes: ``weights_sha`` is a hash of every trained
weight's bytes, ``processes`` the processes each stage trained in; ``--pids FILE`` appends the
pid of every process that runs a training forward pass, ``--slow-parent`` makes this process's
forward passes slow (so a worker finishes its micro-batches first), and ``--fail raise|die|data``
makes a worker's forward pass fail (this process's runs), writing the error instead of results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--zero", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--eval-batch", type=int, default=4)
    parser.add_argument("--projector-lr", type=float, default=None)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--stages", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--pids", default=None)
    parser.add_argument("--slow-parent", action="store_true")
    parser.add_argument("--fail", choices=("raise", "die", "data"), default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from cvit_bench.plugins.methods.seqlora.method import SeqLoRA, SeqLoRAConfig
    from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
    from cvit_bench.testing.toy import ToyBenchmark, make_context

    bench = ToyBenchmark(n_train=32, n_eval=10)
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    method = SeqLoRA(SeqLoRAConfig(rank=4, alpha=8, dropout=args.dropout))
    train = {
        "max_steps": args.steps,
        "batch_size": args.batch,
        "grad_accum": args.accum,
        "lr": 1e-3,
        "zero_stage": args.zero,
        "projector_lr": args.projector_lr,
        "gradient_checkpointing": args.gradient_checkpointing,
    }
    ctx = make_context(
        args.root, bench, model, method, {"train": train, "eval": {"batch_size": args.eval_batch}}
    )
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    engine = model.create_engine(ctx)
    if args.pids or args.slow_parent or args.fail:
        watch(model, args)

    def frozen() -> float:
        return sum(
            float(p.detach().double().sum())
            for n, p in model.model.named_parameters()
            if "lora_" not in n and "multi_modal_projector" not in n
        )

    frozen_before = frozen()
    losses, processes = [], []
    for stage in range(1, args.stages + 1):
        ctx.stage = stage
        task = ctx.tasks[(stage - 1) % len(ctx.tasks)]
        method.before_task(ctx, task)
        samples = list(method.training_samples(ctx, task, bench.train_samples(task.name)))
        if args.fail:
            from cvit_bench.harness.errors import CvitError

            try:
                engine.train(ctx, task, samples)
            except CvitError as exc:
                result = {"error": str(exc), "type": type(exc).__name__}
            else:
                result = {"error": None}
            result["children"] = len(multiprocessing.active_children())
            Path(args.out).write_text(json.dumps(result))
            return
        stats = engine.train(ctx, task, samples)
        method.after_task(ctx, task, samples)
        losses += stats["losses"]
        processes.append(stats["processes"])
    preds = engine.predict(ctx, task, bench.eval_samples(task.name))
    import torch.distributed as dist

    weights = {
        n: float(p.detach().double().sum())
        for n, p in model.model.named_parameters()
        if "lora_" in n or p.requires_grad
    }
    digest = hashlib.sha256()
    for name, param in sorted(model.model.named_parameters()):
        if "lora_" in name or param.requires_grad:
            digest.update(name.encode() + param.detach().numpy().tobytes())
    if dist.get_rank() == 0:
        with open(args.out, "w") as handle:
            json.dump(
                {
                    "losses": losses,
                    "weights": weights,
                    "weights_sha": digest.hexdigest(),
                    "processes": processes,
                    "frozen_before": frozen_before,
                    "frozen_after": frozen(),
                    "world": stats["world_size"],
                    "global_batch": stats["global_batch"],
                    "predictions": [[p.id, p.text] for p in preds],
                },
                handle,
            )


def watch(model, args) -> None:
    """Wrap the model adapter's forward pass as ``--pids``, ``--slow-parent`` and ``--fail``
    ask; only training passes (the model in train mode) are touched."""
    parent = os.getpid()
    forward = type(model).forward

    def watched(self, module, batch, *rest, **kwargs):
        if self.model.training:
            if args.pids:
                with open(args.pids, "a") as handle:
                    handle.write(f"{os.getpid()}\n")
            if os.getpid() == parent and args.slow_parent:
                time.sleep(0.3)
            if os.getpid() != parent and args.fail == "die":
                os._exit(7)
            if os.getpid() != parent and args.fail == "raise":
                raise RuntimeError("the worker's forward pass broke")
            if os.getpid() != parent and args.fail == "data":
                from cvit_bench.harness.errors import DataError

                raise DataError("image missing: /data/train/0001.png (sample 1 of task a)")
        return forward(self, module, batch, *rest, **kwargs)

    type(model).forward = watched


if __name__ == "__main__":
    main(sys.argv[1:])
