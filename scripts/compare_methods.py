"""Compare the continual methods on synth-coin with tiny-llava: one command, re-runnable.

    python scripts/compare_methods.py                 # every method, seeds 0 1 2
    python scripts/compare_methods.py --methods seqlora replay --seeds 0

Each (method, seed) is a plain ``cvit-bench run`` (the real CLI and runner) into
``<out>/<method>-seed<seed>``; a finished run is not redone (re-running resumes or skips), and
the runs go one after another. The table gives MFT, MFN, MAA and BWT as the mean and the
sample standard deviation over the seeds, recomputed from each run's accuracy matrix.

The shared settings (``SETTINGS``) shrink the default synth-coin run so that all of it fits a
two-core CPU: fewer training and test items per task, a fixed number of optimizer steps per
task and a learning rate at which the tiny model's LoRA learns in that many steps, and
evaluation of the tasks seen so far only (all that MFT, MFN, MAA and BWT read). Every
method gets the same budget; method options are each method's defaults unless listed in
``METHOD_SETTINGS``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = ["seqlora", "replay", "ewc", "lwf", "moelora", "olora", "l2p"]
METRICS = ["MFT", "MFN", "MAA", "BWT"]

SETTINGS = [
    "bench.train_per_task=200",
    "bench.eval_per_task=40",
    "train.max_steps=15",
    "train.batch_size=8",
    "train.lr=2e-3",
    "eval.batch_size=40",
    "eval.zero_shot=false",
    "eval.eval_on=seen",
    # the shorter captioning pretraining the tables in docs/methods.md were measured on
    "model.pretrain_steps=400",
    "model.pretrain_samples=2000",
]
METHOD_SETTINGS: dict[str, list[str]] = {}


def run(method: str, seed: int, out: Path, threads: int) -> Path:
    run_dir = out / f"{method}-seed{seed}"
    command = [
        sys.executable,
        "-m",
        "cvit_bench.harness.cli",
        "run",
        "--method",
        method,
        "--bench",
        "synth-coin",
        "--model",
        "tiny-llava",
        "--seed",
        str(seed),
        "--out",
        str(run_dir),
        "--no-progress",
    ]
    for setting in SETTINGS + METHOD_SETTINGS.get(method, []):
        command += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    log = run_dir.with_suffix(".log")
    out.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        result = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"{method} seed {seed} failed (exit {result.returncode}); see {log}")
    print(f"  {method} seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return run_dir


def summarise(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {spread:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/compare-methods"))
    parser.add_argument(
        "--threads", type=int, default=1, help="OMP threads per run (tiny-llava sets its own)"
    )
    args = parser.parse_args(argv)

    from cvit_bench.harness.results import RunResults

    rows = []
    for method in args.methods:
        metrics = {name: [] for name in METRICS}
        stored = []
        for seed in args.seeds:
            results = RunResults(run(method, seed, args.out, args.threads))
            values = results.metrics()
            for name in METRICS:
                metrics[name].append(values[name])
            last = results.stages_table()[-1]
            stored.append(int(last.get("stored_samples") or 0))
        rows.append((method, metrics, max(stored)))
    print(f"synth-coin, tiny-llava, seeds {' '.join(map(str, args.seeds))}; mean ± std over seeds")
    print("settings: " + " ".join(SETTINGS))
    print()
    print("| method | " + " | ".join(METRICS) + " | stored samples |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    for method, metrics, stored in rows:
        cells = " | ".join(summarise(metrics[name]) for name in METRICS)
        print(f"| {method} | {cells} | {stored} |")


if __name__ == "__main__":
    main()
