"""``cvit-bench data synth``: write synth-coin to a folder in COIN's layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .generate import SynthSettings, generate

DEFAULTS = SynthSettings()


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
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help=f"generation seed (default {DEFAULTS.seed})"
    )
    parser.add_argument(
        "--train",
        type=int,
        default=DEFAULTS.train_per_task,
        metavar="N",
        help=f"training items per task (default {DEFAULTS.train_per_task})",
    )
    parser.add_argument(
        "--eval",
        type=int,
        default=DEFAULTS.eval_per_task,
        metavar="N",
        help=f"test items per task (default {DEFAULTS.eval_per_task})",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=DEFAULTS.image_size,
        metavar="PX",
        help=f"image width and height in pixels (default {DEFAULTS.image_size})",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    settings = SynthSettings(
        seed=args.seed,
        train_per_task=args.train,
        eval_per_task=args.eval,
        image_size=args.image_size,
    )
    start = time.perf_counter()
    root = generate(args.out, settings)
    seconds = time.perf_counter() - start
    print(
        f"wrote synth-coin to {root}: 8 tasks x ({settings.train_per_task} train + "
        f"{settings.eval_per_task} test) items, {settings.image_size}x{settings.image_size} "
        f"images, seed {settings.seed} ({seconds:.1f} s)"
    )
    return 0
