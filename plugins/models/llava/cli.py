"""``cvit-bench model convert-llava``: the original LLaVA-1.5 release to the llava format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(cli: Any) -> argparse.ArgumentParser:
    """Add ``convert-llava`` to the ``model`` command group of ``cli``
    (:class:`cvit_bench.harness.cli.CommandGroups`, or a plain argparse sub-parsers object)."""
    group = cli.group("model", help="model utilities") if hasattr(cli, "group") else cli
    parser = group.add_parser(
        "convert-llava",
        help="convert the original LLaVA-1.5 release to the Hugging Face llava format",
        description="Write a directory that the llava-1.5 model loads (--set model.path=DIR) "
        "from Vicuna (or a full llava-v1.5 checkpoint), mm_projector.bin and CLIP. Nothing is "
        "downloaded.",
    )
    parser.add_argument(
        "--llm",
        required=True,
        type=Path,
        metavar="DIR",
        help="Vicuna-v1.5 (or full llava-v1.5) weights in Llama format",
    )
    parser.add_argument(
        "--projector",
        type=Path,
        metavar="FILE",
        help="mm_projector.bin of the LLaVA-1.5 pretraining release "
        "(not needed when --llm is a full llava-v1.5 checkpoint)",
    )
    parser.add_argument(
        "--clip",
        required=True,
        type=Path,
        metavar="DIR",
        help="CLIP directory (openai/clip-vit-large-patch14-336)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output directory (must not exist or be empty)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .convert import convert_llava

    out = convert_llava(args.llm, args.clip, args.out, projector=args.projector)
    print(f"wrote {out}; use it with --model llava-1.5 --set model.path={out}")
    return 0
