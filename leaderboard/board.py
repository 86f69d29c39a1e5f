"""The board's data model: runs grouped by benchmark identity, seeds grouped into rows.

Runs whose benchmark identity (name, version, scoring mode, anything else the benchmark puts in
``identity()``) differs land on different pages and are never ranked against each other. Within
a page, runs that differ only in their seed are one row showing mean ± sample standard
deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cvit_bench.harness.metrics import HIGHER_IS_BETTER, METRIC_NAMES

from .collect import Collection, RunRecord, mean_and_spread, short_hash, slugify

TABLE_METRICS = ("MFT", "MFN", "MAA", "BWT", "FWT")
"""Metric columns of the benchmark tables (every metric is in the downloads)."""

GENERAL_METRIC = "GR"
GENERAL_DESCRIPTION = (
    "general ability retained: for each lmms-eval task a run scores (eval.general_tasks), its "
    "score after the last stage divided by its score before training, averaged, in %"
)

COST_KEYS = ("trainable_params", "stored_samples", "wall_s", "peak_mem_mb")
SORT_METRIC = "MFN"


@dataclass
class Row:
    """One configuration: one or more seeds of the same run configuration."""

    runs: list[RunRecord]
    metrics: dict[str, tuple[float, float]]
    costs: dict[str, float]
    rank: int | None = None
    best: set[str] = field(default_factory=set)
    general: tuple[float, float] = (math.nan, math.nan)
    """GR (mean ± spread over seeds); NaN when the runs scored no general tasks."""

    @property
    def first(self) -> RunRecord:
        return self.runs[0]

    @property
    def status(self) -> str:
        return self.first.status

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]

    @property
    def tags(self) -> list[str]:
        out: list[str] = []
        for run in self.runs:
            out.extend(t for t in run.tags if t not in out)
        return out


@dataclass
class BenchmarkBoard:
    """One page: every run of one benchmark identity."""

    key: str
    identity: dict[str, Any]
    slug: str
    runs: list[RunRecord]
    rows: list[Row]
    tasks: list[str]
    task_info: list[dict[str, Any]]
    best: dict[str, float]

    @property
    def name(self) -> str:
        return str(self.identity.get("name", "?"))

    @property
    def version(self) -> str:
        return str(self.identity.get("version", "?"))

    @property
    def scoring_mode(self) -> str:
        return str(self.identity.get("scoring_mode", ""))

    @property
    def title(self) -> str:
        mode = f", {self.scoring_mode} scoring" if self.scoring_mode else ""
        return f"{self.name} v{self.version}{mode}"

    @property
    def ranked_rows(self) -> list[Row]:
        return [r for r in self.rows if r.status == "ranked"]


@dataclass
class Board:
    benchmarks: list[BenchmarkBoard]
    collection: Collection

    def latest_version(self, name: str) -> str:
        """The highest version of benchmark ``name`` on the board."""
        versions = [b.version for b in self.benchmarks if b.name == name]
        return max(versions, key=_version_key)

    def newer(self, bench: BenchmarkBoard) -> list[BenchmarkBoard]:
        """Pages of the same benchmark with a higher version."""
        return [
            b
            for b in self.benchmarks
            if b.name == bench.name and _version_key(b.version) > _version_key(bench.version)
        ]


def make_board(collection: Collection) -> Board:
    by_key: dict[str, list[RunRecord]] = {}
    for run in collection.runs:
        by_key.setdefault(run.bench_key, []).append(run)
    benchmarks = [_benchmark(key, runs) for key, runs in by_key.items()]
    benchmarks.sort(key=lambda b: (b.name, _version_key(b.version), b.scoring_mode, b.key))
    used: set[str] = set()
    for bench in benchmarks:
        if bench.slug in used:
            bench.slug = f"{bench.slug}-{short_hash(bench.key, n=6)}"
        used.add(bench.slug)
    return Board(benchmarks, collection)


def _benchmark(key: str, runs: list[RunRecord]) -> BenchmarkBoard:
    identity = runs[0].identity
    mode = identity.get("scoring_mode")
    slug = slugify(
        f"{identity.get('name', '?')}-v{identity.get('version', '?')}"
        + (f"-{mode}" if mode else "")
    )
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.config_key, []).append(run)
    rows = [_row(sorted(g, key=_seed_order)) for g in groups.values()]
    rows.sort(key=_row_order)
    rank = 0
    for row in rows:
        if row.status == "ranked":
            rank += 1
            row.rank = rank
    best: dict[str, float] = {}
    for name in METRIC_NAMES:
        values = [
            row.metrics[name][0]
            for row in rows
            if row.status == "ranked" and not math.isnan(row.metrics[name][0])
        ]
        if values:
            best[name] = max(values) if HIGHER_IS_BETTER[name] else min(values)
    for row in rows:
        if row.status != "ranked":
            continue
        row.best = {
            name
            for name, value in best.items()
            if not math.isnan(row.metrics[name][0]) and row.metrics[name][0] == value
        }
    # the task order shown in the page header: that of a canonical run when there is one
    reference_run = next((r for r in runs if r.ranked), runs[0])
    task_info = reference_run.results.info.get("task_info") or [
        {"name": t} for t in reference_run.tasks
    ]
    return BenchmarkBoard(
        key=key,
        identity=identity,
        slug=slug,
        runs=sorted(runs, key=lambda r: r.slug),
        rows=rows,
        tasks=list(reference_run.tasks),
        task_info=[t for t in task_info if isinstance(t, dict)],
        best=best,
    )


def _seed_order(run: RunRecord) -> tuple[Any, ...]:
    seed = run.seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return (0, seed, "", run.slug)
    return (1, 0, str(seed), run.slug)


def _row(runs: list[RunRecord]) -> Row:
    metrics = {
        name: mean_and_spread(r.metrics.get(name, math.nan) for r in runs) for name in METRIC_NAMES
    }
    costs = {}
    for key in COST_KEYS + ("gpu_hours", "train_s", "eval_s"):
        values = [r.costs.get(key) for r in runs]
        numbers = [float(v) for v in values if v is not None and not _isnan(v)]
        costs[key] = sum(numbers) / len(numbers) if numbers else math.nan
    general = mean_and_spread(r.general_retention for r in runs)
    return Row(runs=runs, metrics=metrics, costs=costs, general=general)


_STATUS_ORDER = {"ranked": 0, "reference": 1, "flagged": 2}


def _row_order(row: Row) -> tuple[Any, ...]:
    value = row.metrics[SORT_METRIC][0]
    return (
        _STATUS_ORDER.get(row.status, 3),
        math.isnan(value),
        -value if not math.isnan(value) else 0.0,
        row.first.method,
        row.first.model,
        row.first.slug,
    )


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _version_key(version: str) -> tuple[Any, ...]:
    parts = []
    for piece in version.replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)
