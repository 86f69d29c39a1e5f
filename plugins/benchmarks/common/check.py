"""``cvit-bench data check``: verify a local copy of a benchmark before any GPU time is spent.

A benchmark lists what it reads with ``data_files(root)``: annotation files (LLaVA training
files, COIN-style test files) and the extra reference files its scorers need, each with the
published entry count where one is known. :func:`check_benchmark` reads every file, collects
every problem (file, entry, field, message) instead of stopping at the first, checks that every
referenced image exists (and, unless ``fast``, that PIL can decode it), and compares counts with
the published ones: a smaller copy is a warning (subsets are legitimate), a broken one an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cvit_bench.harness.types import Sample

from .llava_format import (
    Problem,
    check_unique_ids,
    parse_test_entries,
    parse_train_entries,
    read_json,
    read_json_list,
)

Validator = Callable[[Any, str, list[Problem]], "int | None"]
"""Checks a parsed reference file: records problems, returns its entry count (or None)."""


@dataclass
class DataFile:
    """One file a benchmark reads.

    Attributes:
        path: where the file must be.
        kind: ``train`` (LLaVA conversations), ``test`` (COIN-style questions) or ``json``
            (a reference file checked by ``validate``).
        task: the task it belongs to (``None`` for files shared by several tasks).
        published_count: the entry count of the published release, if known.
        validate: for ``json`` files, the structural check.
        image_root: the folder images are named relative to (default: the data root).
        description: what the file is, for messages ("TextVQA human answers").
        id_field: the field whose values must be unique (test files).
        require_answer: test items must carry an ``answer`` (not for tasks scored elsewhere).
    """

    path: Path
    kind: str
    task: str | None = None
    published_count: int | None = None
    validate: Validator | None = None
    image_root: Path | None = None
    description: str = ""
    id_field: str = "question_id"
    require_answer: bool = True


@dataclass
class CheckReport:
    """The outcome of a data check: every problem found, and the entry counts per file."""

    benchmark: str
    data_root: str
    fast: bool
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing stops a run (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def format(self, limit: int = 50) -> str:
        """A report for people: a verdict line, then one line per problem (errors first)."""
        mode = "fast check (images: existence only)" if self.fast else "full check"
        verdict = "OK: a run can start" if self.ok else "FAILED: a run cannot start"
        lines = [
            f"data check of {self.benchmark!r} under {self.data_root} ({mode}): {verdict}; "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s), "
            f"{len(self.counts)} file(s), {self.images_checked} image(s) checked"
        ]
        ordered = self.errors + self.warnings
        for problem in ordered[:limit]:
            lines.append(f"  {problem.severity}: {problem.describe()}")
        if len(ordered) > limit:
            lines.append(f"  ... and {len(ordered) - limit} more (use --json for all)")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "benchmark": self.benchmark,
                "data_root": self.data_root,
                "fast": self.fast,
                "ok": self.ok,
                "counts": self.counts,
                "images_checked": self.images_checked,
                "problems": [asdict(p) for p in self.problems],
            },
            indent=2,
        )


def check_benchmark(
    benchmark: Any, data_root: str | os.PathLike[str], fast: bool = False
) -> CheckReport:
    """Check every file ``benchmark.data_files(root)`` lists under ``data_root``."""
    root = Path(data_root).expanduser().absolute()
    report = CheckReport(benchmark=getattr(benchmark, "name", "?"), data_root=str(root), fast=fast)
    if not root.is_dir():
        report.problems.append(Problem(str(root), "data root is not a directory"))
        return report
    images: dict[str, tuple[str, int, str]] = {}
    for data_file in benchmark.data_files(root):
        count = _check_file(data_file, root, report.problems, images)
        if count is None:
            continue
        report.counts[str(data_file.path)] = count
        expected = data_file.published_count
        if expected is not None and count != expected:
            relation = "fewer" if count < expected else "more"
            report.problems.append(
                Problem(
                    str(data_file.path),
                    f"{count} entries, {relation} than the {expected} of the "
                    "published release"
                    + (
                        " (a subset: scores are not comparable with full-data results)"
                        if count < expected
                        else ""
                    ),
                    severity="warning",
                )
            )
    cross_check = getattr(benchmark, "cross_check", None)
    if callable(cross_check):
        report.problems.extend(cross_check(root))
    for path, (file, entry, field_name) in images.items():
        report.images_checked += 1
        message = _image_problem(path, fast)
        if message:
            report.problems.append(Problem(file, f"{message}: {path}", entry, field_name))
    return report


def _check_file(
    data_file: DataFile,
    root: Path,
    problems: list[Problem],
    images: dict[str, tuple[str, int, str]],
) -> int | None:
    file = str(data_file.path)
    if data_file.kind == "json":
        data = read_json(data_file.path, problems)
        if data is None:
            return None
        if data_file.validate is None:
            return len(data) if isinstance(data, (list, dict)) else None
        return data_file.validate(data, file, problems)
    items = read_json_list(data_file.path, problems)
    if items is None:
        return None
    positions: list[int] = []
    image_root = data_file.image_root or root
    samples: list[Sample]
    if data_file.kind == "train":
        samples = parse_train_entries(
            items,
            task=data_file.task or "",
            root=image_root,
            file=file,
            problems=problems,
            positions=positions,
        )
    elif data_file.kind == "test":
        samples = parse_test_entries(
            items,
            task=data_file.task or "",
            root=image_root,
            file=file,
            problems=problems,
            positions=positions,
            require_answer=data_file.require_answer,
        )
        check_unique_ids(samples, file, problems, positions, data_file.id_field)
    else:
        raise ValueError(f"unknown data file kind {data_file.kind!r}")
    for sample, index in zip(samples, positions):
        if sample.image is not None and sample.image not in images:
            images[sample.image] = (file, index, "image")
    return len(items)


def _image_problem(path: str, fast: bool) -> str | None:
    if not os.path.isfile(path):
        return "image not found"
    if fast:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"image cannot be decoded ({type(exc).__name__}: {exc})"
    return None
