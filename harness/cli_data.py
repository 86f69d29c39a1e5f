"""``cvit-bench data check`` and ``cvit-bench score``: check a local copy of a benchmark's data,
and score a predictions file made by any tool with the benchmark's scorer.

``register(subparsers)`` adds both commands to the main parser; each command's ``func(args)``
returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from .errors import CvitError, DataError, UsageError
from .types import Prediction

DATA_ROOT_ENV = "CVIT_BENCH_DATA_ROOT"


def register(cli: Any) -> None:
    """Add ``data check`` and ``score``.

    ``cli`` is the main CLI's ``CommandGroups`` (so that other modules can add more ``data``
    commands), or a plain argparse sub-parser set.
    """
    if hasattr(cli, "group"):
        data_commands = cli.group("data", help="commands on a benchmark's local data")
    else:
        data = cli.add_parser("data", help="commands on a benchmark's local data")
        data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND")
        data_commands.required = True
    check = data_commands.add_parser(
        "check",
        help="verify annotation files, images and reference files before a run",
        description="Verify that every annotation file is present and well-formed, every "
        "referenced image exists (and decodes, with --full), the reference files the scorers "
        "need are there, and compare counts with the published ones. Exit status 0 when a "
        "run can start, 1 when not.",
    )
    check.add_argument("--bench", required=True, help="benchmark name (cvit-bench list)")
    check.add_argument("--data-root", help=f"the local data root (default: ${DATA_ROOT_ENV})")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--full",
        action="store_true",
        help="decode every image with PIL (slow); default: existence only",
    )
    check.set_defaults(func=run_data_check)

    score = cli.add_parser(
        "score",
        help="score a predictions file with a benchmark's scorer",
        description="Score a JSON-lines predictions file ({question_id, text, ...} per line, "
        "as the published repos write merge.jsonl) against a task's references, matched by "
        "question_id.",
    )
    score.add_argument("--bench", required=True, help="benchmark name")
    score.add_argument("--task", required=True, help="task name (as cvit-bench show lists it)")
    score.add_argument("--predictions", required=True, help="predictions file (.jsonl)")
    score.add_argument("--data-root", help=f"the local data root (default: ${DATA_ROOT_ENV})")
    score.add_argument(
        "--mode",
        choices=("published", "fixed"),
        default=None,
        help="scoring mode (default: the benchmark's, 'published')",
    )
    score.add_argument(
        "--missing",
        choices=("error", "wrong"),
        default="error",
        help="a reference without a prediction: an error (default) or wrong",
    )
    score.add_argument(
        "--json",
        action="store_true",
        help='print {"task", "primary": {"name", "value"}, "metrics"}',
    )
    score.set_defaults(func=run_score)


def _benchmark(name: str, options: dict[str, Any] | None = None) -> Any:
    from .plugins import get_plugin_manager

    cls = get_plugin_manager().benchmark(name)
    return cls(options or None)


def _data_root(value: str | None) -> Path:
    root = value or os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise UsageError(f"no data root: pass --data-root DIR or set ${DATA_ROOT_ENV}")
    return Path(root).expanduser().absolute()


def _fail(exc: CvitError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code


def run_data_check(args: argparse.Namespace) -> int:
    """``cvit-bench data check``: print the report; 0 when a run can start, 1 when not."""
    try:
        from cvit_bench.plugins.benchmarks.common.check import check_benchmark

        benchmark = _benchmark(args.bench)
        report = check_benchmark(benchmark, _data_root(args.data_root), fast=not args.full)
    except CvitError as exc:
        return _fail(exc)
    print(report.to_json() if args.json else report.format())
    return 0 if report.ok else 1


def read_predictions(path: str | os.PathLike[str]) -> list[Prediction]:
    """Predictions from a JSON-lines file (or a JSON list) of ``{question_id, text, ...}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
        numbered = list(enumerate(rows, start=1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
    predictions = []
    for number, row in numbered:
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number}: expected an object")
        for key in ("question_id", "text"):
            if key not in row:
                raise DataError(f"{path}: line {number}: field {key!r}: missing")
        if not isinstance(row["text"], str):
            raise DataError(f"{path}: line {number}: field 'text': expected a string")
        qid = row["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            raise DataError(
                f"{path}: line {number}: field 'question_id': expected a string "
                f"or integer, found {qid!r}"
            )
        predictions.append(Prediction(id=qid, text=row["text"], prompt=str(row.get("prompt", ""))))
    return predictions


def _number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def run_score(args: argparse.Namespace) -> int:
    """``cvit-bench score``: score one task's predictions file."""
    try:
        options = {"scoring_mode": args.mode} if args.mode else None
        benchmark = _benchmark(args.bench, options)
        benchmark.task_info(args.task)
        benchmark.set_data_root(_data_root(args.data_root))
        references = benchmark.eval_samples(args.task)
        predictions = read_predictions(args.predictions)
        score = benchmark.score(
            args.task, predictions, references, missing=args.missing, mode=args.mode
        )
    except CvitError as exc:
        return _fail(exc)
    if args.json:
        print(
            json.dumps(
                {
                    "task": args.task,
                    "primary": {"name": score.primary, "value": _number(score.value)},
                    "metrics": {k: _number(v) for k, v in score.metrics.items()},
                }
            )
        )
        return 0
    mode = args.mode or benchmark.scoring_mode
    print(f"{args.bench} / {args.task}: {score.n} references, scoring mode {mode}")
    if score.not_scored:
        print(f"  not scored: {score.not_scored}")
    for name, value in score.metrics.items():
        marker = " (primary)" if name == score.primary else ""
        print(f"  {name}: {value:.2f}{marker}")
    for note in score.notes:
        print(f"  note: {note}")
    return 0
