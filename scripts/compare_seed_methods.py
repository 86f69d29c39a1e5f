"""Compare the seed papers' methods with the baselines on synth-coin with tiny-llava.

    python scripts/compare_seed_methods.py                       # 3 seeds, default data sizes
    python scripts/compare_seed_methods.py --train-per-task 200 --eval-per-task 60 --max-steps 40

Runs ``hide``, ``sefe``, ``mrlora``, ``seqlora`` and ``joint`` one after another (never in
parallel) for each seed, each in its own run directory under ``--out`` (re-running resumes
and skips finished runs), then prints a markdown table of MFT, MFN, MAA and BWT as
mean ± standard deviation over the seeds, and for the routing methods how often the final
model sent a test sample to its own task's expert.

The published ranks and router settings are made for LLaVA-7B; for the tiny model every
method gets comparable adapters (the ranks below), the run's learning rate, and the router
a rate and step budget a one-million-parameter model learns from. They are printed with the
table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

METHODS = ("seqlora", "sefe", "hide", "mrlora", "joint", "hide-all-layers")
# rows that run a registered method with other options: label -> method
VARIANTS = {"hide-all-layers": "hide"}
METRICS = ("MFT", "MFN", "MAA", "BWT")

TINY_METHOD_ARGS: dict[str, dict[str, Any]] = {
    "seqlora": {"rank": 16, "alpha": 32},
    "joint": {"rank": 16, "alpha": 32},
    "sefe": {"rank": 16, "alpha": 32},
    # 8 tasks x rank 6 = 48 in total, HiDe-LLaVA's budget; the same scaling (alpha / rank = 2)
    "hide": {"rank": 48, "alpha": 96},
    "mrlora": {
        "rank": 16,
        "alpha": 32,
        "replay_per_task": 20,
        "router_rank": 16,
        "router_alpha": 32,
        "router_lr": 2e-3,
        "router_max_steps": 60,
        "describe_experts": False,
    },
    # diagnostic: every decoder layer task-specific (routed), no task-general fusion
    "hide-all-layers": {"rank": 48, "alpha": 96, "specific_layers": [0, 1]},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS[:5]), choices=METHODS)
    p.add_argument("--out", default="runs/compare-seed-methods")
    p.add_argument("--train-per-task", type=int, default=None, help="synth-coin training items")
    p.add_argument("--eval-per-task", type=int, default=None, help="synth-coin test items")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps per task")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate of every method")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-on", choices=("all", "seen"), default="seen")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--cache-dir", default=None)
    return p.parse_args(argv)


def run_config(args: argparse.Namespace, method: str, seed: int) -> Any:
    from cvit_bench.harness.config import RunConfig

    bench_args: dict[str, Any] = {}
    if args.train_per_task:
        bench_args["train_per_task"] = args.train_per_task
    if args.eval_per_task:
        bench_args["eval_per_task"] = args.eval_per_task
    # one pass per task, on the shorter captioning pretraining the tables in
    # docs/seed-methods.md were measured on
    train: dict[str, Any] = {"lr": args.lr, "batch_size": args.batch_size, "epochs": 1.0}
    if args.max_steps:
        # joint trains once on every task: give it the whole sequence's budget
        train["max_steps"] = args.max_steps * (8 if method == "joint" else 1)
    return RunConfig(
        method=VARIANTS.get(method, method),
        bench="synth-coin",
        model="tiny-llava",
        seed=seed,
        method_args=dict(TINY_METHOD_ARGS[method]),
        bench_args=bench_args,
        train=train,
        model_args={"pretrain_steps": 400, "pretrain_samples": 2000},
        eval={"batch_size": 32, "eval_on": args.eval_on},
        cache_dir=args.cache_dir,
        tags=["compare-seed-methods"],
    )


def routing_accuracy(run_dir: Path) -> float | None:
    """Share of test samples the final model routed to their own task's expert."""
    from cvit_bench.harness.results import read_table

    table, _ = read_table(run_dir / "stages.arrow", "stages")
    last = max(table.to_pylist(), key=lambda row: row["stage"])
    routing = json.loads(last["method_costs"] or "{}").get("routing")
    if not routing:
        return None
    total = sum(routing.values())
    right = sum(n for key, n in routing.items() if key.split("->")[0] == key.split("->")[1])
    return 100.0 * right / total


def fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {spread:.1f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from cvit_bench.harness.runner import Runner

    out = Path(args.out)
    summary: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:  # seed by seed, so an interrupted comparison has whole seeds
        for method in args.methods:
            run_dir = out / method / f"seed{seed}"
            start = time.perf_counter()
            results = Runner(run_config(args, method, seed), run_dir, progress=False).run()
            metrics = results.metrics()
            row = summary.setdefault(method, {m: [] for m in (*METRICS, "routing", "wall_min")})
            for m in METRICS:
                row[m].append(float(metrics.get(m, math.nan)))
            row["routing"].append(routing_accuracy(run_dir))
            row["wall_min"].append((time.perf_counter() - start) / 60)
            print(
                f"{method} seed {seed}: "
                + ", ".join(f"{m} {metrics.get(m, math.nan):.1f}" for m in METRICS),
                file=sys.stderr,
                flush=True,
            )
    print("| method | MFT | MFN | MAA | BWT | routed to own expert (%) |")
    print("|---|---|---|---|---|---|")
    for method, row in summary.items():
        cells = [fmt(row[m]) for m in METRICS]
        routing = fmt(row["routing"]) if any(v is not None for v in row["routing"]) else "-"
        print(f"| {method} | " + " | ".join(cells) + f" | {routing} |")
    print()
    print(
        f"synth-coin, tiny-llava, seeds {args.seeds}, mean ± standard deviation over seeds; "
        f"lr {args.lr}, batch {args.batch_size}, "
        f"max_steps/task {args.max_steps or 'one epoch'}, "
        f"train/eval per task {args.train_per_task or 'default'}/"
        f"{args.eval_per_task or 'default'}, eval on {args.eval_on}."
    )
    print("method options: " + json.dumps({m: TINY_METHOD_ARGS[m] for m in args.methods}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
