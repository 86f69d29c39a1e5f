"""Training throughput of the DeepSpeed engine against a plain PyTorch + peft loop.

Same model (tiny-llava at its default size), same LoRA (seqlora's defaults), same batches in
the same order (tiny-llava's default: micro-batches of 4, two per optimizer step), same
optimizer (torch AdamW), schedule, clipping and precision (fp32 on a CPU). The overhead is
measured in one process on both sides (``CVIT_BENCH_WORKERS=1`` for the engine); a fourth row,
``zero0_forked``, is the engine as a run uses it, computing the second micro-batch of every
step in a forked copy where a core is free. Rounds alternate the four on one built model
(images decoded beforehand) so that a machine whose load changes affects all alike; the median
of the rounds is reported. Timing covers the training steps (batching included), not DeepSpeed's initialisation.
Two clocks: wall time, and the process's CPU time (user + system, all threads), which tells
a loop that did more work from a machine that ran slower for a while. The model trains with
``--threads`` torch threads (tiny-llava's default is one).

    python scripts/bench_engine.py                 # 7 rounds of 60 steps of 4 x 2
    python scripts/bench_engine.py --compile-time   # DeepSpeed's one-time op build, fresh cache
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(root: Path, batch: int, accum: int, steps: int, zero: int, threads: int = 1):
    from cvit_bench.harness.config import build_dataclass
    from cvit_bench.harness.plugins import get_plugin_manager
    from cvit_bench.plugins.methods.seqlora.method import SeqLoRA, SeqLoRAConfig
    from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
    from cvit_bench.testing.toy import make_context

    bench_cls = get_plugin_manager().benchmark("synth-coin")
    bench = bench_cls(build_dataclass(bench_cls.config_class, {}, "bench"))
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0, threads=threads))
    method = SeqLoRA(SeqLoRAConfig())
    train = {
        "max_steps": steps,
        "batch_size": batch,
        "grad_accum": accum,
        "lr": 1e-3,
        "zero_stage": zero,
    }
    ctx = make_context(root, bench, model, method, {"train": train})
    ctx.cache_dir = Path(os.environ.get("CVIT_BENCH_CACHE", Path.home() / ".cache/cvit-bench"))
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    ctx.stage = 1
    return ctx


def plain_loop(ctx, samples) -> tuple[float, float]:
    """The reference: a hand-written loop doing what the engine does, minus DeepSpeed."""
    import math

    import torch
    from transformers import get_scheduler

    from cvit_bench.harness.engine.deepspeed_engine import data_order

    cfg = ctx.config.train
    model = ctx.model.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.max_steps
    scheduler = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=math.ceil(cfg.warmup_ratio * steps),
        num_training_steps=steps,
    )
    global_batch = cfg.batch_size * cfg.grad_accum
    order = data_order(len(samples), steps, global_batch, ctx.config.seed, ctx.stage)
    model.train()
    start, start_cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        batch_ids = order[step * global_batch : (step + 1) * global_batch]
        optimizer.zero_grad(set_to_none=True)
        for micro in range(cfg.grad_accum):
            idx = batch_ids[micro * cfg.batch_size : (micro + 1) * cfg.batch_size]
            batch = ctx.model.collate_train([samples[i] for i in idx], cfg.max_length)
            loss = ctx.model.forward(model, batch, "cpu", torch.float32).loss
            (loss / cfg.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    model.eval()
    return steps * global_batch / wall, steps * global_batch / cpu


def compile_time() -> float:
    """Seconds the first ``deepspeed.initialize`` takes with an empty extension cache."""
    code = (
        "import time, torch\n"
        "from cvit_bench.harness.engine.distributed import ensure_distributed\n"
        "t = time.perf_counter(); ensure_distributed()\n"
        "import deepspeed\n"
        "m = torch.nn.Linear(4, 4)\n"
        "deepspeed.initialize(model=m, model_parameters=m.parameters(), config={\n"
        " 'train_micro_batch_size_per_gpu': 1, 'optimizer': {'type': 'AdamW', 'params': {\n"
        " 'lr': 1e-3, 'torch_adam': True}}})\n"
        "print(time.perf_counter() - t)\n"
    )
    times = []
    for fresh in (True, False):
        with tempfile.TemporaryDirectory() as ext:
            env = dict(os.environ)
            if fresh:
                env["TORCH_EXTENSIONS_DIR"] = ext
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            ).stdout
            times.append(float(out.strip().splitlines()[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=4, help="micro-batch size")
    parser.add_argument("--accum", type=int, default=2, help="micro-batches per optimizer step")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (tiny-llava's default: 1)"
    )
    parser.add_argument("--compile-time", action="store_true")
    args = parser.parse_args()
    if args.compile_time:
        fresh, cached = compile_time()
        print(json.dumps({"first_init_fresh_cache_s": fresh, "first_init_cached_s": cached}))
        return
    from cvit_bench.harness.engine import DeepSpeedEngine
    from cvit_bench.harness.parallel import ENV

    names = ("plain", "zero0", "zero2", "zero0_forked")
    results: dict[str, list[float]] = {k: [] for k in names}
    # per CPU-second of this process: not for the forked row, whose copy's time is elsewhere
    per_cpu_s: dict[str, list[float]] = {k: [] for k in names[:3]}
    with tempfile.TemporaryDirectory() as tmp:
        # one model for every round: speed does not depend on the LoRA's values, and the
        # images are decoded once, before any timing
        ctx = build(Path(tmp), args.batch, args.accum, args.steps, 0, args.threads)
        samples = ctx.benchmark.train_samples(ctx.tasks[0].name)
        for sample in samples:
            ctx.model.pixel_values(sample.image)
        for _ in range(args.rounds):
            for name in names:
                ctx.config.train.zero_stage = 2 if name == "zero2" else 0
                os.environ[ENV] = "" if name == "zero0_forked" else "1"
                if name == "plain":
                    wall_rate, cpu_rate = plain_loop(ctx, samples)
                else:
                    stats = DeepSpeedEngine(ctx.model).train(ctx, ctx.tasks[0], samples)
                    wall_rate = stats["samples_per_s"]
                    cpu_rate = stats["samples"] / stats["train_cpu_s"]
                results[name].append(wall_rate)
                if name in per_cpu_s:
                    per_cpu_s[name].append(cpu_rate)
    med = {k: statistics.median(v) for k, v in results.items()}
    med_cpu = {k: statistics.median(v) for k, v in per_cpu_s.items()}
    report = {
        "batch": args.batch,
        "accum": args.accum,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": args.threads,
        "samples_per_s_median": med,
        "samples_per_s_all": results,
        "engine_overhead_pct": {k: 100 * (med["plain"] / med[k] - 1) for k in ("zero0", "zero2")},
        "forked_speedup_over_plain": med["zero0_forked"] / med["plain"],
        "samples_per_cpu_s_median": med_cpu,
        "samples_per_cpu_s_all": per_cpu_s,
        "engine_overhead_cpu_pct": {
            k: 100 * (med_cpu["plain"] / med_cpu[k] - 1) for k in ("zero0", "zero2")
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
