"""``cvit-bench data synth``: write synth-coin to a folder in COIN's layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import UsageError


def register(cli: Any) -> argparse.ArgumentParser:
    """Add ``data synth``.

    ``cli`` is the main CLI's ``CommandGroups`` (the command goes in its ``data`` group), or a
    plain argparse sub-parser set (the command is added to it as ``synth``).
    """
    if hasattr(cli, "group"):
        subparsers = cli.group("data", help="commands on a benchmark's local data")
    else:
        subparsers = cli
    parser = subparsers.add_parser(
        "synth",
        help="write the synth-coin benchmark's data to a folder",
        description="Write synth-coin (eight procedurally drawn tasks mirroring COIN's) to DIR "
        "in COIN's layout: annotations/<Task>/{train,test}.json plus images and the reference "
        "files COIN's scorers read. The same options give byte-identical files. Use it with "
        "`cvit-bench run --bench synth-coin --data-root DIR` (or --bench coin).",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder (must not exist, or be empty)",
    )
    parser.add_argument("--seed", type=int, default=None, help="generation seed (default 0)")
    parser.add_argument(
        "--train",
        type=int,
        default=None,
        metavar="N",
        help="training items per task (default: the generator's)",
    )
    parser.add_argument(
        "--eval",
        type=int,
        default=None,
        metavar="N",
        help="test items per task (default: the generator's)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="PX",
        help="image width and height in pixels (default: the generator's)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes drawing tasks in parallel (default: the usable CPUs, or "
        "$CVIT_BENCH_WORKERS); the files are the same for any number",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .generate import SynthSettings, generate  # numpy and PIL: not at CLI start-up

    given = {
        "seed": args.seed,
        "train_per_task": args.train,
        "eval_per_task": args.eval,
        "image_size": args.image_size,
    }
    settings = SynthSettings(**{k: v for k, v in given.items() if v is not None})
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    start = time.perf_counter()
    root = generate(args.out, settings, workers=args.workers)
    seconds = time.perf_counter() - start
    from .tasks import TASKS

    larger = ", ".join(
        f"{t.name} {settings.count('train', t)}" for t in TASKS if t.train_scale != 1
    )
    print(
        f"wrote synth-coin to {root}: 8 tasks x ({settings.train_per_task} train + "
        f"{settings.eval_per_task} test) items (train: {larger}), "
        f"{settings.image_size}x{settings.image_size} images, seed {settings.seed} "
        f"({seconds:.1f} s)"
    )
    return 0
