"""Writes the static site: index, one page per benchmark identity, one page per run, one
drill-down page per (run, task), and the downloads.

Layout of ``SITE_DIR``::

    index.html                  benchmarks, with their best runs
    board.json                  the whole board, machine-readable
    benchmarks.csv|.parquet     the index table
    assets/board.css, board.js  the only style and script (no CDN, works from file://)
    b/<benchmark>/index.html    the runs table of one benchmark identity
    b/<benchmark>/table.csv|.parquet   that table (one row per configuration)
    b/<benchmark>/runs.csv|.parquet    one row per run (every seed)
    r/<run>/index.html          heat map, curves, config, provenance, costs of one run
    r/<run>/matrix.csv|.parquet the accuracy matrix (the CSV feeds ``cvit-bench metrics``)
    r/<run>/task-<k>.html       per-sample predictions of the run's k-th task, every stage

The site is built in a temporary folder next to ``SITE_DIR`` and swapped in at the end, so a
failed build leaves the previous site untouched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from cvit_bench.harness import __version__
from cvit_bench.harness.errors import ResultFileError, UsageError
from cvit_bench.harness.metrics import DESCRIPTIONS, HIGHER_IS_BETTER, METRIC_NAMES
from cvit_bench.harness.results import (
    COLUMNS,
    META_KIND,
    META_VERSION,
    SCHEMA_VERSION,
    prediction_path,
    read_table,
)

from . import exports
from .board import (
    GENERAL_DESCRIPTION,
    GENERAL_METRIC,
    TABLE_METRICS,
    BenchmarkBoard,
    Board,
    Row,
    make_board,
)
from .collect import RunRecord, collect, git_state
from .render import (
    asset,
    badge,
    curve_svg,
    data_value,
    esc,
    fmt_count,
    fmt_duration,
    fmt_memory,
    fmt_score,
    fmt_signed,
    heatmap_svg,
    isnan,
    json_script,
    page,
    table_html,
)

MARKER = ".cvit-bench-site"
"""A file in every built site: only a folder holding it is ever replaced by a build."""

DEFAULT_MAX_SAMPLES = 1000


@dataclass
class BuildReport:
    out: Path
    runs: int
    benchmarks: int
    pages: int
    unreadable: list[tuple[str, str]]
    scratch_skipped: int
    duplicates: int
    seconds: float


class _Site:
    def __init__(self, root: Path, title: str, max_samples: int):
        self.root = root
        self.title = title
        self.max_samples = max_samples
        self.generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self._folders: set[str] = set()

    def write(self, rel: str, text: str) -> None:
        path = os.path.join(self.root, rel)
        folder = os.path.dirname(path)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def footer(self, dated: bool = True) -> str:
        """The page footer; run pages are reused by later builds, so they carry no date."""
        when = f" on {esc(self.generated)}" if dated else ""
        return (
            f"Built by cvit-bench {esc(__version__)}{when}. Metrics are "
            "recomputed from each run's accuracy matrix with cvit-bench's metric code; "
            "runs of different benchmark versions or scoring modes are never ranked together."
        )


def build_site(
    results_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    include_scratch: bool = False,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    title: str = "cvit-bench leaderboard",
    log: Callable[[str], None] | None = None,
    jobs: int | None = None,
    manager: Any = None,
) -> BuildReport:
    """Build the site from every run directory under ``results_dirs`` into ``out``.

    Run pages are rendered by ``jobs`` worker processes (default: one per CPU; 1: in this
    process). The help text of each plugin's options comes from the installed plugins
    (``manager``, default: the entry points); a plugin that is not installed just has none."""
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not (out / MARKER).exists():
        if not out.is_dir() or any(out.iterdir()):
            raise UsageError(
                f"{out} exists and is not a site built by cvit-bench; refusing to replace it "
                "(pass an empty or new directory to --out)"
            )
    with _pool(jobs) as pool:
        collection = collect(results_dirs, include_scratch, pool.map)
        board = make_board(collection)
        options = _plugin_options(board, manager)
        report = _write(board, out, title, max_samples, pool, options)
    report.seconds = time.perf_counter() - started
    if log:
        for path, error in report.unreadable:
            log(f"warning: skipped unreadable run {path}: {error}")
    return report


PLUGIN_KINDS = (
    ("method", "methods", "method_args"),
    ("benchmark", "benchmarks", "bench_args"),
    ("model", "models", "model_args"),
)
Options = dict[tuple[str, str], list[dict[str, Any]]]


def _plugin_options(board: Board, manager: Any) -> Options:
    """``{(kind, name): describe_fields(config class)}`` for every plugin the board's runs
    name that is installed here; plugins that are missing or fail to load are left out."""
    from cvit_bench.harness.config import describe_fields

    names = {
        (kind, str(run.config.get(key[:-5]) or ""))
        for bench in board.benchmarks
        for run in bench.runs
        for kind, _, key in PLUGIN_KINDS
    }
    if manager is None:
        try:
            from cvit_bench.harness.plugins import get_plugin_manager

            manager = get_plugin_manager()
        except Exception:  # no plugins at all is fine for a board
            return {}
    registries = {kind: plural for kind, plural, _ in PLUGIN_KINDS}
    out: Options = {}
    for kind, name in sorted(names):
        try:
            cls = manager.registry(registries[kind]).get(name).load()
            fields = describe_fields(getattr(cls, "config_class", type(None)))
        except Exception:  # not installed, or broken: the page shows values without help
            continue
        out[kind, name] = [{k: f[k] for k in ("name", "default", "help")} for f in fields]
    return out


def _write(
    board: Board, out: Path, title: str, max_samples: int, pool: _Pool, options: Options
) -> BuildReport:
    collection = board.collection
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        site = _Site(tmp, title, max_samples)
        (tmp / MARKER).write_text("built by cvit-bench leaderboard build\n")
        site.write("assets/board.css", asset("board.css"))
        site.write("assets/board.js", asset("board.js"))
        previous = str(out) if (out / MARKER).exists() else None
        jobs_list = []
        for bench in board.benchmarks:
            _benchmark_page(site, bench, board.newer(bench))
            for row in bench.rows:
                seeds = [(r.slug, r.seed) for r in row.runs]
                for run in row.runs:
                    described = {
                        kind: options.get((kind, str(run.config.get(key[:-5]) or "")))
                        for kind, _, key in PLUGIN_KINDS
                    }
                    jobs_list.append(
                        _RunJob(site, run, bench.title, bench.slug, seeds, previous, described)
                    )
        pages = 1 + len(board.benchmarks) + sum(pool.map(_render_run, jobs_list))
        _index_page(site, board)
        _board_json(site, board)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(
        out=out,
        runs=len(collection.runs),
        benchmarks=len(board.benchmarks),
        pages=pages,
        unreadable=[(str(u.run_dir), u.error) for u in collection.unreadable],
        scratch_skipped=len(collection.scratch_skipped),
        duplicates=len(collection.duplicates),
        seconds=0.0,
    )


class _Pool:
    """``map`` over worker processes (started on first use), or in this process when
    ``jobs == 1`` or there is little to do."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.executor: Any = None

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        items = list(items)
        if self.jobs == 1 or len(items) < 16:
            return [fn(item) for item in items]
        if self.executor is None:
            from concurrent.futures import ProcessPoolExecutor

            self.executor = ProcessPoolExecutor(max_workers=self.jobs)
        chunk = max(1, min(32, len(items) // (self.jobs * 4)))
        return list(self.executor.map(fn, items, chunksize=chunk))


def _pool(jobs: int | None) -> _Pool:
    if jobs is None:
        affinity = getattr(os, "sched_getaffinity", None)
        jobs = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return _Pool(max(1, jobs))


def _swap(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- shared bits ----------------------------------------------------------------------------

ROOT2 = "../../"


def _run_href(run: RunRecord, root: str) -> str:
    return f"{root}r/{run.slug}/index.html"


def _bench_href(bench: BenchmarkBoard, root: str) -> str:
    return f"{root}b/{bench.slug}/index.html"


def _stage_label(run: RunRecord, stage: int) -> str:
    if stage == 0:
        return "zero-shot"
    trained = run.results.trained.get(stage) or ""
    return f"{stage} · {trained}" if trained else f"stage {stage}"


def _flag_badges(run: RunRecord) -> str:
    parts = [badge("ranked", "ranked")] if run.ranked else []
    parts += [badge(f.kind, f.label, f.detail) for f in run.flags]
    return "".join(parts)


def _inference(run: RunRecord) -> tuple[str, str]:
    """(short text, detail) of what the method needs at inference."""
    need = run.needs_task_identity
    extra = str(run.requirements.get("inference") or "")
    if need is None:
        return "unknown", "the run does not record the method's requirements"
    short = "task ID" if need else "none"
    detail = (
        "the method must be told which task each test sample belongs to"
        if need
        else "no task identity needed at inference"
    )
    if extra:
        detail += f"; {extra}"
    return short, detail


def _score_cell(
    metric: str, mean: float, spread: float, best: bool, n_seeds: int, signed: bool
) -> str:
    fmt = fmt_signed if signed else fmt_score
    text = esc(fmt(mean))
    if n_seeds > 1 and not isnan(spread):
        text += f'<span class="spread">± {esc(fmt_score(spread))}</span>'
    title = ""
    if best:
        text += '<span class="star" aria-label="best"> ★</span>'
        title = f' title="best {esc(metric)} among ranked runs"'
    cls = "num best" if best else "num"
    return f'<td class="{cls} c-{esc(metric)}" data-v="{esc(data_value(mean))}"{title}>{text}</td>'


# -- index ----------------------------------------------------------------------------------


def _index_rows(board: Board) -> list[dict[str, Any]]:
    rows = []
    for bench in board.benchmarks:
        best_row = bench.ranked_rows[0] if bench.ranked_rows else None
        rows.append(
            {
                "benchmark": bench.name,
                "version": bench.version,
                "scoring_mode": bench.scoring_mode,
                "identity": json.dumps(bench.identity, sort_keys=True, default=str),
                "tasks": len(bench.tasks),
                "runs": len(bench.runs),
                "ranked_runs": sum(1 for r in bench.runs if r.ranked),
                "configurations": len(bench.rows),
                "best_method": best_row.first.method if best_row else None,
                "best_model": best_row.first.model if best_row else None,
                "best_MFN": bench.best.get("MFN", math.nan),
                "best_MAA": bench.best.get("MAA", math.nan),
                "page": f"b/{bench.slug}/index.html",
            }
        )
    return rows


INDEX_COLUMNS = [
    ("benchmark", "string"),
    ("version", "string"),
    ("scoring_mode", "string"),
    ("identity", "string"),
    ("tasks", "int64"),
    ("runs", "int64"),
    ("ranked_runs", "int64"),
    ("configurations", "int64"),
    ("best_method", "string"),
    ("best_model", "string"),
    ("best_MFN", "float64"),
    ("best_MAA", "float64"),
    ("page", "string"),
]


def _index_page(site: _Site, board: Board) -> None:
    rows = _index_rows(board)
    exports.write_both(site.root / "benchmarks", INDEX_COLUMNS, rows)
    body = [f"<h1>{esc(site.title)}</h1>"]
    n_runs = sum(len(b.runs) for b in board.benchmarks)
    body.append(
        f'<p class="lead">{len(board.benchmarks)} benchmark version(s), {n_runs} run(s). Each '
        "benchmark version and scoring mode has its own table: their scores are not "
        "comparable.</p>"
    )
    if rows:
        body.append('<div class="table-wrap"><table id="benchmarks" class="board sortable">')
        body.append(
            "<thead><tr><th>Benchmark</th><th>Version</th><th>Scoring</th>"
            '<th class="num" data-type="num">Tasks</th><th class="num" data-type="num">Runs</th>'
            '<th class="num" data-type="num">Ranked</th><th>Best (MFN)</th>'
            '<th class="num" data-type="num">Best MFN</th>'
            '<th class="num" data-type="num">Best MAA</th></tr></thead><tbody>'
        )
        for bench, row in zip(board.benchmarks, rows):
            best = (
                f"{esc(row['best_method'])} <span class=sub>{esc(row['best_model'])}</span>"
                if row["best_method"]
                else '<span class="empty">no ranked run</span>'
            )
            latest = (
                " " + badge("ranked", "latest", "the highest version of this benchmark here")
                if board.latest_version(bench.name) == bench.version
                else ""
            )
            body.append(
                f'<tr><td><a href="{esc(_bench_href(bench, ""))}">{esc(bench.name)}</a></td>'
                f"<td>{esc(bench.version)}{latest}</td><td>{esc(bench.scoring_mode or '–')}</td>"
                f'<td class="num">{len(bench.tasks)}</td><td class="num">{row["runs"]}</td>'
                f'<td class="num">{row["ranked_runs"]}</td><td>{best}</td>'
                f'<td class="num" data-v="{data_value(row["best_MFN"])}">'
                f"{esc(fmt_score(row['best_MFN']))}</td>"
                f'<td class="num" data-v="{data_value(row["best_MAA"])}">'
                f"{esc(fmt_score(row['best_MAA']))}</td></tr>"
            )
        body.append("</tbody></table></div>")
    else:
        body.append('<p class="empty">No runs found.</p>')
    notes = []
    c = board.collection
    if c.scratch_skipped:
        notes.append(
            f"{len(c.scratch_skipped)} scratch run(s) (not published with "
            "<code>cvit-bench publish</code>) are not shown; build with "
            "<code>--include-scratch</code> to see them."
        )
    if c.duplicates:
        notes.append(f"{len(c.duplicates)} duplicate copies of runs were shown once.")
    if notes:
        body.append('<p class="note">' + " ".join(notes) + "</p>")
    if c.unreadable:
        body.append("<h2>Runs that could not be read</h2><ul>")
        for u in c.unreadable:
            body.append(f"<li><code>{esc(u.run_dir)}</code>: {esc(u.error)}</li>")
        body.append("</ul>")
    body.append(
        "<h2>Downloads</h2><ul class=downloads>"
        '<li><a href="board.json">board.json</a>: the whole board (every run, its metrics, '
        "matrix, costs, config and provenance)</li>"
        '<li>this table: <a href="benchmarks.csv">CSV</a> · '
        '<a href="benchmarks.parquet">Parquet</a></li></ul>'
    )
    body.append(_metric_legend())
    site.write(
        "index.html",
        page(
            title=site.title,
            body="\n".join(body),
            root="",
            crumbs=[("benchmarks", None)],
            footer=site.footer(),
            site_title=site.title,
        ),
    )


def _metric_legend(general: bool = False) -> str:
    items = "".join(
        f"<dt>{esc(name)}</dt><dd>{esc(DESCRIPTIONS[name])} "
        f"({'higher' if HIGHER_IS_BETTER[name] else 'lower'} is better)</dd>"
        for name in METRIC_NAMES
    )
    if general:
        items += f"<dt>{GENERAL_METRIC}</dt><dd>{esc(GENERAL_DESCRIPTION)} (higher is better)</dd>"
    return f'<h2>Metrics</h2><dl class="facts">{items}</dl>'


# -- benchmark pages ------------------------------------------------------------------------

TABLE_COLUMNS: list[tuple[str, str]] = (
    [
        ("rank", "int64"),
        ("method", "string"),
        ("model", "string"),
        ("starting_point", "string"),
        ("seeds", "string"),
        ("n_seeds", "int64"),
        ("status", "string"),
        ("flags", "string"),
        ("tags", "string"),
        ("task_identity_at_inference", "bool"),
    ]
    + [c for name in METRIC_NAMES for c in ((name, "float64"), (f"{name}_spread", "float64"))]
    + [(GENERAL_METRIC, "float64"), (f"{GENERAL_METRIC}_spread", "float64")]
    + [
        ("trainable_params", "float64"),
        ("stored_samples", "float64"),
        ("wall_s", "float64"),
        ("gpu_hours", "float64"),
        ("peak_mem_mb", "float64"),
        ("runs", "string"),
    ]
)

RUN_COLUMNS: list[tuple[str, str]] = (
    [
        ("run", "string"),
        ("method", "string"),
        ("model", "string"),
        ("starting_point", "string"),
        ("seed", "string"),
        ("status", "string"),
        ("flags", "string"),
        ("tags", "string"),
        ("task_identity_at_inference", "bool"),
        ("schedule", "string"),
    ]
    + [(name, "float64") for name in METRIC_NAMES]
    + [(GENERAL_METRIC, "float64")]
    + [
        ("trainable_params", "float64"),
        ("stored_samples", "float64"),
        ("wall_s", "float64"),
        ("gpu_hours", "float64"),
        ("peak_mem_mb", "float64"),
        ("git_commit", "string"),
        ("git_dirty", "bool"),
        ("cvit_bench_version", "string"),
        ("config_identity", "string"),
        ("page", "string"),
    ]
)


def _table_record(row: Row) -> dict[str, Any]:
    run = row.first
    rec: dict[str, Any] = {
        "rank": row.rank,
        "method": run.method,
        "model": run.model,
        "starting_point": run.starting_point,
        "seeds": "; ".join(str(s) for s in row.seeds),
        "n_seeds": len(row.runs),
        "status": row.status,
        "flags": "; ".join(f.label for f in run.flags),
        "tags": "; ".join(row.tags),
        "task_identity_at_inference": run.needs_task_identity,
        "runs": "; ".join(r.slug for r in row.runs),
    }
    for name in METRIC_NAMES:
        rec[name], rec[f"{name}_spread"] = row.metrics[name]
    rec[GENERAL_METRIC], rec[f"{GENERAL_METRIC}_spread"] = row.general
    rec.update(
        {
            k: row.costs.get(k)
            for k in ("trainable_params", "stored_samples", "wall_s", "gpu_hours", "peak_mem_mb")
        }
    )
    return rec


def _run_record(run: RunRecord) -> dict[str, Any]:
    state, commit = git_state(run.provenance)
    rec: dict[str, Any] = {
        "run": run.slug,
        "method": run.method,
        "model": run.model,
        "starting_point": run.starting_point,
        "seed": str(run.seed),
        "status": run.status,
        "flags": "; ".join(f.label for f in run.flags),
        "tags": "; ".join(run.tags),
        "task_identity_at_inference": run.needs_task_identity,
        "schedule": run.schedule,
        "git_commit": commit or None,
        "git_dirty": None if state == "unknown" else state == "dirty",
        "cvit_bench_version": run.provenance.get("cvit_bench_version"),
        "config_identity": run.results.info.get("config_identity"),
        "page": f"r/{run.slug}/index.html",
    }
    rec.update({name: run.metrics.get(name, math.nan) for name in METRIC_NAMES})
    rec[GENERAL_METRIC] = run.general_retention
    rec.update(
        {
            k: run.costs.get(k)
            for k in ("trainable_params", "stored_samples", "wall_s", "gpu_hours", "peak_mem_mb")
        }
    )
    return rec


def _options(values: Sequence[str]) -> str:
    return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in sorted(set(values)))


def _benchmark_page(
    site: _Site, bench: BenchmarkBoard, newer: Sequence[BenchmarkBoard] = ()
) -> None:
    folder = f"b/{bench.slug}"
    exports.write_both(
        site.root / folder / "table", TABLE_COLUMNS, [_table_record(r) for r in bench.rows]
    )
    exports.write_both(
        site.root / folder / "runs", RUN_COLUMNS, [_run_record(r) for r in bench.runs]
    )
    ranked = sum(1 for r in bench.runs if r.ranked)
    body = [
        f"<h1>{esc(bench.name)} <small>version {esc(bench.version)}"
        + (f" · {esc(bench.scoring_mode)} scoring" if bench.scoring_mode else "")
        + "</small></h1>",
        f'<p class="lead">{len(bench.runs)} run(s) in {len(bench.rows)} configuration(s), '
        f"{ranked} ranked (complete, clean source tree, canonical protocol; the others carry "
        "a badge saying why). Seeds of one configuration share a row: mean ± sample standard "
        "deviation. ★ marks the best value of each metric among ranked runs.</p>",
    ]
    if newer:
        links = ", ".join(
            f'<a href="{esc(_bench_href(b, ROOT2))}">{esc(b.title)}</a>' for b in newer
        )
        body.append(
            f'<p class="note">A newer version of this benchmark has its own table: {links}. '
            "Scores of different versions are not comparable.</p>"
        )
    tasks = " → ".join(
        f'<span title="{esc(t.get("description", ""))}">{esc(t.get("name", ""))}</span>'
        for t in bench.task_info
    )
    identity = " · ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(bench.identity.items()))
    body.append(
        f'<dl class="facts"><dt>tasks, in order</dt><dd>{tasks}</dd>'
        f"<dt>benchmark identity</dt><dd>{identity}</dd></dl>"
    )
    methods = [r.first.method for r in bench.rows]
    models = [r.first.model for r in bench.rows]
    tags = [t for r in bench.rows for t in r.tags]
    body.append(
        '<form class="filters" data-table="board" role="search">'
        f'<label>Method<select data-filter="method" id="filter-method"><option value="">all</option>'
        f"{_options(methods)}</select></label>"
        f'<label>Model<select data-filter="model" id="filter-model"><option value="">all</option>'
        f"{_options(models)}</select></label>"
        f'<label>Tag<select data-filter="tag" id="filter-tag"><option value="">all</option>'
        f"{_options(tags)}</select></label>"
        '<label>Status<select data-filter="status" id="filter-status"><option value="">all</option>'
        '<option value="ranked">ranked</option><option value="reference">reference</option>'
        '<option value="flagged">not ranked (flagged)</option></select></label>'
        '<label>Search<input type="search" data-filter="text" id="filter-text" '
        'placeholder="any text in a row"></label>'
        '<span class="count" aria-live="polite"></span></form>'
    )
    head = [
        '<th class="num" data-type="num" title="rank among ranked runs by MFN">#</th>',
        '<th data-type="text">Method</th>',
        '<th data-type="text">Model</th>',
        '<th class="num" data-type="num" title="number of seeds">Seeds</th>',
    ]
    for name in TABLE_METRICS:
        arrow = "↑" if HIGHER_IS_BETTER[name] else "↓"
        head.append(
            f'<th class="num" data-type="num" title="{esc(DESCRIPTIONS[name])}">'
            f"{esc(name)} {arrow}</th>"
        )
    general = any(run.general for run in bench.runs)
    if general:
        head.append(
            f'<th class="num" data-type="num" title="{esc(GENERAL_DESCRIPTION)}">'
            f"{GENERAL_METRIC} ↑</th>"
        )
    head += [
        '<th class="num" data-type="num" title="trainable parameters (largest stage)">Params</th>',
        '<th class="num" data-type="num" title="past training samples the method keeps">'
        "Stored</th>",
        '<th class="num" data-type="num" title="sum of the stages\' wall time">Wall time</th>',
        '<th class="num" data-type="num" title="peak memory of any stage">Peak mem</th>',
        '<th data-type="text" title="what the method needs at inference">Inference</th>',
        '<th data-type="text">Tags</th>',
        '<th data-type="text">Status</th>',
    ]
    body.append(
        '<div class="table-wrap"><table id="board" class="board sortable">'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>"
    )
    for row in bench.rows:
        body.append(_board_row(row, general))
    body.append("</tbody></table></div>")
    body.append(
        "<h2>Downloads</h2><ul class=downloads>"
        '<li>this table (one row per configuration): <a href="table.csv">CSV</a> · '
        '<a href="table.parquet">Parquet</a></li>'
        '<li>every run (one row per seed): <a href="runs.csv">CSV</a> · '
        '<a href="runs.parquet">Parquet</a></li>'
        f'<li><a href="{ROOT2}board.json">board.json</a> (the whole board)</li></ul>'
    )
    body.append(_metric_legend(general))
    site.write(
        f"{folder}/index.html",
        page(
            title=f"{bench.title} · {site.title}",
            body="\n".join(body),
            root=ROOT2,
            crumbs=[("benchmarks", f"{ROOT2}index.html"), (bench.title, None)],
            footer=site.footer(),
            site_title=site.title,
        ),
    )


def _general_section(run: RunRecord) -> str:
    """General ability (lmms-eval tasks scored inside the run) and how much of it was kept."""
    if not run.general:
        return ""
    rows = "".join(
        f"<tr><td>{esc(task)}</td><td>{esc(g['metric'])}</td>"
        f'<td class="num">{esc(_general_value(g["before"]))}</td>'
        f'<td class="num">{esc(_general_value(g["after"]))}</td>'
        f'<td class="num">{esc(str(g["stage"]))}</td>'
        f'<td class="num">{esc(fmt_score(100 * g["retention"]))}</td></tr>'
        for task, g in sorted(run.general.items())
    )
    return (
        "<h2>General ability (lmms-eval)</h2>"
        '<p class="lead">lmms-eval tasks scored on the model inside the run, on lmms-eval\'s '
        "scale (primary metric: the task's first). Retention = after / before, in %; "
        f"{GENERAL_METRIC} is its mean: {esc(fmt_score(run.general_retention))}.</p>"
        '<div class="table-wrap"><table class="tasks"><thead><tr><th>task</th><th>metric</th>'
        '<th class="num">before training</th><th class="num">after</th>'
        '<th class="num">after stage</th><th class="num">retention %</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _general_value(value: float) -> str:
    return "–" if isnan(value) else f"{value:.4g}"


def _board_row(row: Row, general: bool = False) -> str:
    run = row.first
    n = len(row.runs)
    cells = [
        f'<td class="num c-rank" data-v="{row.rank if row.rank else ""}">{row.rank or "–"}</td>',
        f'<td class="c-method" data-v="{esc(run.method)}"><a href="{esc(_run_href(run, ROOT2))}">'
        f"{esc(run.method)}</a></td>",
        f'<td class="c-model" data-v="{esc(run.model)}">{esc(run.model)}'
        + (f'<div class="sub">from {esc(run.starting_point)}</div>' if run.starting_point else "")
        + "</td>",
    ]
    seed_links = " ".join(
        f'<a href="{esc(_run_href(r, ROOT2))}" title="run page of seed {esc(r.seed)}">'
        f"s{esc(r.seed)}</a>"
        for r in row.runs
    )
    cells.append(
        f'<td class="num c-seeds" data-v="{n}">{n}<div class="sub seedlinks">{seed_links}</div></td>'
    )
    for name in TABLE_METRICS:
        mean, spread = row.metrics[name]
        cells.append(_score_cell(name, mean, spread, name in row.best, n, name in ("BWT", "FWT")))
    if general:
        cells.append(_score_cell(GENERAL_METRIC, *row.general, False, n, False))
    costs = row.costs
    cells += [
        f'<td class="num c-params" data-v="{data_value(costs["trainable_params"])}">'
        f"{esc(fmt_count(costs['trainable_params']))}</td>",
        f'<td class="num c-stored" data-v="{data_value(costs["stored_samples"])}">'
        f"{esc(fmt_count(costs['stored_samples']))}</td>",
        f'<td class="num c-wall" data-v="{data_value(costs["wall_s"])}">'
        f"{esc(fmt_duration(costs['wall_s']))}</td>",
        f'<td class="num c-mem" data-v="{data_value(costs["peak_mem_mb"])}">'
        f"{esc(fmt_memory(costs['peak_mem_mb']))}</td>",
    ]
    short, detail = _inference(run)
    cells.append(f'<td class="c-inference" title="{esc(detail)}">{esc(short)}</td>')
    cells.append('<td class="c-tags">' + "".join(badge("tag", t) for t in row.tags) + "</td>")
    cells.append(f'<td class="c-status">{_flag_badges(run)}</td>')
    tags_json = esc(json.dumps(row.tags))
    return (
        f'<tr class="status-{esc(row.status)}" data-method="{esc(run.method)}" '
        f'data-model="{esc(run.model)}" data-tags="{tags_json}" data-status="{esc(row.status)}">'
        + "".join(cells)
        + "</tr>"
    )


# -- run pages ------------------------------------------------------------------------------

MATRIX_FIRST_COLUMN = "after"
STAGE_COLUMNS = [
    (name, "string" if kind == "string" else "float64" if kind == "float64" else "int64")
    for name, kind in COLUMNS["stages"]
]


def _matrix_table(run: RunRecord) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    columns = [(MATRIX_FIRST_COLUMN, "string")] + [(t, "float64") for t in run.tasks]
    rows = []
    for stage in run.results.stages:
        label = "zero-shot" if stage == 0 else (run.results.trained.get(stage) or str(stage))
        rec: dict[str, Any] = {MATRIX_FIRST_COLUMN: label}
        for task in run.tasks:
            rec[task] = run.results.score(stage, task)
        rows.append(rec)
    return columns, rows


@dataclass
class _RunJob:
    """What rendering one run's pages needs (picklable, for worker processes)."""

    site: _Site
    run: RunRecord
    bench_title: str
    bench_slug: str
    seeds: list[tuple[str, Any]]  # (slug, seed) of every seed of the run's configuration
    previous: str | None = None  # the site this build replaces, whose pages may be reused
    options: dict[str, Any] = field(default_factory=dict)  # kind -> described fields or None


STAMP = ".stamp"


@cache
def _builder_hash() -> str:
    """A hash of the code and templates that write pages: a change re-renders everything."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).parent
    for path in sorted([*package.glob("*.py"), *(package / "templates").glob("*.*")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _stamp(job: _RunJob) -> str:
    """What a run's pages depend on: the builder, the site's options, the run's place on the
    board, and the name, size and modification time of every file of the run."""
    files: list[tuple[str, int, int]] = []
    _list_files(str(job.run.run_dir), "", files)
    blob = json.dumps(
        [
            _builder_hash(),
            job.site.title,
            job.site.max_samples,
            job.bench_title,
            job.bench_slug,
            job.seeds,
            job.options,
            files,
        ],
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _list_files(folder: str, prefix: str, out: list[tuple[str, int, int]]) -> None:
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir():
                if entry.name != "checkpoints":
                    _list_files(entry.path, f"{prefix}{entry.name}/", out)
            else:
                st = entry.stat()
                out.append((prefix + entry.name, st.st_size, st.st_mtime_ns))


def _render_run(job: _RunJob) -> int:
    """Write one run's pages and downloads, or reuse them from the previous site when nothing
    they depend on changed; returns the page count."""
    stamp = _stamp(job)
    folder = f"r/{job.run.slug}"
    if job.previous:
        old = Path(job.previous) / folder
        try:
            reusable = (old / STAMP).read_text() == stamp
        except OSError:
            reusable = False
        if reusable:
            try:
                shutil.copytree(old, job.site.root / folder, copy_function=os.link)
            except OSError:  # another file system, or no hard links: copy
                shutil.rmtree(job.site.root / folder, ignore_errors=True)
                shutil.copytree(old, job.site.root / folder)
            return 1 + len(job.run.tasks)
    _run_pages(job.site, job.bench_title, job.bench_slug, job.run, job.seeds, job.options)
    (job.site.root / folder / STAMP).write_text(stamp)
    return 1 + len(job.run.tasks)


def _run_pages(
    site: _Site,
    bench_title: str,
    bench_slug: str,
    run: RunRecord,
    seeds: list[tuple[str, Any]],
    options: dict[str, Any] | None = None,
) -> None:
    folder = f"r/{run.slug}"
    results = run.results
    tasks = run.tasks
    stages = results.stages
    columns, matrix_rows = _matrix_table(run)
    exports.write_both(site.root / folder / "matrix", columns, matrix_rows)
    exports.write_both(site.root / folder / "stages", STAGE_COLUMNS, run.stages_table)
    trained_stage = {t: i + 1 for i, t in enumerate(tasks)} if run.schedule == "sequential" else {}
    labels = {s: _stage_label(run, s) for s in stages}
    scores = {(s, t): results.score(s, t) for s in stages for t in tasks}

    def link(stage: int, k: int) -> str:
        return f"task-{k}.html#stage={stage}"

    def detail(stage: int, task: str) -> str:
        n = results.counts.get((stage, task))
        reason = results.not_scored.get((stage, task))
        text = f"{task} after {labels[stage]}: {fmt_score(scores[stage, task])}"
        if n:
            text += f" ({n} samples)"
        if reason:
            text += f"; not scored: {reason}"
        return text

    heat = heatmap_svg(
        tasks,
        stages,
        labels.__getitem__,
        lambda s, t: scores[s, t],
        link=link,
        detail=detail,
        diagonal=lambda s, k: run.schedule == "sequential" and s == k,
    )
    title = f"{run.method} · {run.model} · seed {run.seed}"
    body = [
        f"<h1>{esc(run.method)} <small>on {esc(bench_title)} with {esc(run.model)}, "
        f"seed {esc(run.seed)}</small></h1>",
        f'<div class="badges">{_flag_badges(run)}</div>',
    ]
    if run.flags:
        body.append(
            '<ul class="flags">'
            + "".join(
                f"<li><strong>{esc(f.label)}</strong>: {esc(f.detail)}</li>" for f in run.flags
            )
            + "</ul>"
        )
    cards = []
    for name in METRIC_NAMES:
        value = run.metrics.get(name, math.nan)
        fmt = fmt_signed if name in ("BWT", "FWT") else fmt_score
        cards.append(
            f'<div class="card metric" title="{esc(DESCRIPTIONS[name])}">'
            f'<div class="k">{esc(name)}</div><div class="v" data-metric="{esc(name)}">'
            f"{esc(fmt(value))}</div></div>"
        )
    body.append(f'<div class="cards">{"".join(cards)}</div>')
    if len(seeds) > 1:
        others = " ".join(
            f'<a href="{esc(f"{ROOT2}r/{slug}/index.html")}">seed {esc(seed)}</a>'
            if slug != run.slug
            else f"<strong>seed {esc(seed)}</strong>"
            for slug, seed in seeds
        )
        body.append(f"<p>Seeds of this configuration: {others}.</p>")
    body.append("<h2>Accuracy matrix</h2>")
    body.append(
        '<p class="lead">Rows: the model after each stage; columns: the evaluated task; '
        "cells: the task's primary metric (0-100). Click a cell for its predictions.</p>"
    )
    body.append(f'<div class="heatmap-wrap">{heat}</div>')
    body.append("<h2>Each task across stages</h2>")
    body.append('<div class="curves">')
    for k, task in enumerate(tasks, start=1):
        values = [scores[s, task] for s in stages]
        final = values[-1] if values else math.nan
        body.append(
            f'<figure><figcaption><a href="task-{k}.html">{esc(task)}</a> '
            f'<span class="sub">final {esc(fmt_score(final))}</span></figcaption>'
            + curve_svg(
                stages,
                values,
                trained_stage.get(task),
                labels.__getitem__,
                f"{task} across stages",
            )
            + "</figure>"
        )
    body.append("</div>")
    body.append(_task_table(run, trained_stage))
    body.append(_general_section(run))
    body.append(_costs_section(run))
    body.append(_options_section(run, options or {}))
    body.append(_provenance_section(run))
    body.append(
        "<h2>Downloads</h2><ul class=downloads>"
        '<li>accuracy matrix: <a href="matrix.csv">CSV</a> (reads with '
        "<code>cvit-bench metrics --matrix</code>) · "
        '<a href="matrix.parquet">Parquet</a></li>'
        '<li>costs per stage: <a href="stages.csv">CSV</a> · '
        '<a href="stages.parquet">Parquet</a></li></ul>'
    )
    crumbs = [
        ("benchmarks", f"{ROOT2}index.html"),
        (bench_title, f"{ROOT2}b/{bench_slug}/index.html"),
        (title, None),
    ]
    site.write(
        f"{folder}/index.html",
        page(
            title=f"{title} · {site.title}",
            body="\n".join(body),
            root=ROOT2,
            crumbs=crumbs,
            footer=site.footer(dated=False),
            site_title=site.title,
        ),
    )
    for k, task in enumerate(tasks, start=1):
        _task_page(site, run, k, task, crumbs[:-1] + [(title, "index.html"), (task, None)])


def _task_table(run: RunRecord, trained_stage: dict[str, int]) -> str:
    results = run.results
    info = {t.get("name"): t for t in results.info.get("task_info") or [] if isinstance(t, dict)}
    rows = []
    last = max(results.stages, default=0)
    for k, task in enumerate(run.tasks, start=1):
        zs = results.score(0, task)
        at = trained_stage.get(task)
        just = results.score(at, task) if at else math.nan
        final = results.score(last, task)
        rows.append(
            [
                f'<a href="task-{k}.html">{esc(task)}</a>'
                + (
                    f'<div class="sub">{esc(info[task].get("description"))}</div>'
                    if info.get(task, {}).get("description")
                    else ""
                ),
                esc(results.primary.get(task, "–")),
                esc(fmt_score(zs)),
                esc(fmt_score(just)),
                esc(fmt_score(final)),
                esc(fmt_signed(final - just if not (isnan(final) or isnan(just)) else math.nan)),
                esc(results.counts.get((last, task), "–")),
            ]
        )
    table = table_html(
        ["task", "metric", "zero-shot", "just trained", "final", "final − just trained", "samples"],
        rows,
        numeric_from=2,
    )
    notes = "".join(
        f"<li>stage {esc(s)}, {esc(t)}: {esc(reason)}</li>"
        for (s, t), reason in sorted(results.not_scored.items())
    )
    if notes:
        table += f"<h3>Cells that could not be scored</h3><ul>{notes}</ul>"
    return f'<h2>Tasks</h2><div class="table-wrap">{table}</div>'


def _costs_section(run: RunRecord) -> str:
    c = run.costs
    short, detail = _inference(run)
    req = run.requirements
    facts = [
        ("trainable parameters", fmt_count(c.get("trainable_params"))),
        ("stored past samples", fmt_count(c.get("stored_samples"))),
        ("wall time (all stages)", fmt_duration(c.get("wall_s"))),
        (
            "training / evaluation",
            f"{fmt_duration(c.get('train_s'))} / {fmt_duration(c.get('eval_s'))}",
        ),
        ("GPU-hours", fmt_score(c.get("gpu_hours"), 3) if c.get("gpu") else "– (no GPU)"),
        ("peak memory", fmt_memory(c.get("peak_mem_mb"))),
        ("inference needs", f"{short}: {detail}"),
        ("per-task parameters", "yes" if req.get("per_task_parameters") else "no"),
        ("stores samples", "yes" if req.get("stores_samples") else "no"),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    stage_rows = []
    for s in sorted(run.stages_table, key=lambda r: r.get("stage") or 0):
        stage_rows.append(
            [
                esc(_stage_label(run, int(s.get("stage") or 0))),
                esc(fmt_duration(s.get("wall_s"))),
                esc(fmt_duration(s.get("train_s"))),
                esc(fmt_duration(s.get("eval_s"))),
                esc(s.get("steps") if s.get("steps") is not None else "–"),
                esc(fmt_score(s.get("loss"), 4)),
                esc(fmt_count(s.get("trainable_params"))),
                esc(fmt_memory(s.get("peak_mem_mb"))),
                esc(fmt_count(s.get("stored_samples"))),
            ]
        )
    table = (
        table_html(
            ["stage", "wall", "train", "eval", "steps", "loss", "params", "peak mem", "stored"],
            stage_rows,
        )
        if stage_rows
        else '<p class="empty">no stages.arrow</p>'
    )
    return (
        f'<h2>Costs</h2><div class="two-col"><dl class="facts">{dl}</dl>'
        f'<div class="table-wrap">{table}</div></div>'
    )


def _options_section(run: RunRecord, options: dict[str, Any]) -> str:
    """Each plugin's options as the run set them, with their help text where known."""
    parts = []
    for kind, _, key in PLUGIN_KINDS:
        values = run.config.get(key) or {}
        fields = options.get(kind)
        name = run.config.get(key[:-5])
        if not isinstance(values, dict) or (not values and not fields):
            continue
        rows = []
        described = {f["name"]: f for f in fields or []}
        for option in list(described) + [k for k in values if k not in described]:
            f = described.get(option, {})
            value = values.get(option, f.get("default"))
            changed = option in values and "default" in f and values[option] != f["default"]
            rows.append(
                [
                    f"<code>{esc(option)}</code>",
                    esc(json.dumps(value, default=str))
                    + (' <span class="sub">(changed)</span>' if changed else ""),
                    esc(f.get("help", "")),
                ]
            )
        note = (
            ""
            if fields is not None
            else '<p class="sub">The plugin is not installed where the board was built: '
            "values without their help text.</p>"
        )
        parts.append(
            f"<h3>{esc(kind)} {esc(name)}</h3>{note}"
            + table_html(["option", "value", "what it does"], rows, numeric_from=99)
        )
    if not parts:
        return ""
    return "<h2>Options</h2>" + "".join(parts)


def _provenance_section(run: RunRecord) -> str:
    p = run.provenance
    state, commit = git_state(p)
    hardware = p.get("hardware") or {}
    plugins = []
    for kind in ("method", "benchmark", "model"):
        o = p.get(kind) or {}
        if isinstance(o, dict) and o:
            plugins.append(
                f"{kind} {o.get('name')} from {o.get('distribution')} {o.get('version')}"
            )
    source = p.get("model_source") or {}
    facts = [
        ("benchmark identity", json.dumps(run.identity, sort_keys=True, default=str)),
        (
            "cvit-bench",
            f"{p.get('cvit_bench_version', '?')} (API {p.get('api_version', '?')}, "
            f"result schema {p.get('schema_version', '?')})",
        ),
        ("git commit", commit or "unknown"),
        ("source tree", state),
        ("plugins", "; ".join(plugins) or "unknown"),
        ("model source", json.dumps(source, sort_keys=True, default=str) if source else "–"),
        ("seed", run.seed),
        ("schedule", f"{run.schedule}, eval on {p.get('eval_on', '?')}"),
        ("hardware", ", ".join(f"{k}: {v}" for k, v in sorted(hardware.items())) or "unknown"),
        ("config identity", run.results.info.get("config_identity", "?")),
        ("started", run.results.info.get("created") or p.get("started", "?")),
        ("finished", run.results.info.get("finished", "–")),
        ("command", p.get("command", "–")),
        ("published", (run.published or {}).get("published", "no (scratch run)")),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    config = json.dumps(run.config, indent=2, sort_keys=False, default=str)
    provenance = json.dumps(p, indent=2, sort_keys=True, default=str)
    return (
        f'<h2>Provenance</h2><dl class="facts">{dl}</dl>'
        f"<h2>Resolved configuration</h2><pre class=config>{esc(config)}</pre>"
        f"<details><summary>Full provenance record</summary><pre>{esc(provenance)}</pre></details>"
    )


# -- drill-down -----------------------------------------------------------------------------

_PRED_COLUMNS = ("id", "prompt", "prediction", "reference", "score")
_PRED_LATER = ("id", "prediction", "score")  # prompts and references come from the first stage
_PRED_ALL = tuple(name for name, _ in COLUMNS["predictions"])
_MAJOR = SCHEMA_VERSION.split(".")[0].encode()


def read_predictions(
    path: str | os.PathLike[str], columns: Sequence[str] = _PRED_COLUMNS
) -> dict[str, list[Any]]:
    """The columns of a predictions file. A fast path for well-formed files (memory-mapping
    thousands of small files costs more than reading them); anything unusual goes through
    :func:`cvit_bench.harness.results.read_table`, which validates and explains."""
    import pyarrow as pa

    batch: Any = None
    try:
        with open(path, "rb") as handle:
            reader = pa.ipc.open_file(pa.py_buffer(handle.read()))
        schema = reader.schema
        meta = schema.metadata or {}
        names = set(schema.names)
        if (
            meta.get(META_KIND) == b"predictions"
            and meta.get(META_VERSION, b"").split(b".")[0] == _MAJOR
            and all(name in names for name in _PRED_ALL)
        ):
            batch = reader.get_batch(0) if reader.num_record_batches == 1 else reader.read_all()
    except (OSError, pa.ArrowInvalid):
        batch = None
    if batch is None:
        batch, _ = read_table(path, "predictions")
    return {name: batch.column(name).to_pylist() for name in columns}


def _task_page(
    site: _Site, run: RunRecord, k: int, task: str, crumbs: list[tuple[str, str | None]]
) -> None:
    results = run.results
    stages = [s for s in results.stages if (s, task) in results.cells]
    limit = site.max_samples if site.max_samples > 0 else None
    samples: list[list[Any]] = []
    index: dict[str, int] = {}
    preds: dict[str, dict[str, list[Any]]] = {}
    stage_info = []
    problems = []
    # the documented layout predictions/stage_<s>/<file>: one pathlib call, then strings
    stage0 = str(prediction_path(results.run_dir, 0, task))
    pred_root, file_name = os.path.split(os.path.dirname(stage0))[0], os.path.basename(stage0)
    sample_ids: list[Any] = []
    for stage in stages:
        path = os.path.join(pred_root, f"stage_{stage}", file_name)
        total = 0
        try:
            cols = read_predictions(path, _PRED_COLUMNS if not samples else _PRED_LATER)
        except ResultFileError as exc:
            cols = None
            problems.append(f"stage {stage}: {exc}")
        if cols is not None:
            ids = cols["id"]
            total = len(ids)
            if not samples:
                n = total if limit is None else min(total, limit)
                sample_ids = ids[:n]
                index = {sid: i for i, sid in enumerate(sample_ids)}
                samples = [list(t) for t in zip(sample_ids, cols["prompt"], cols["reference"])]
            scores = [None if v is None or v != v else v for v in cols["score"]]  # NaN -> null
            m = len(sample_ids)
            if ids[:m] == sample_ids:  # the usual case: same samples in the same order
                p, sc = cols["prediction"][:m], scores[:m]
            else:
                p, sc = [None] * m, [None] * m
                for i, sid in enumerate(ids):
                    j = index.get(sid)
                    if j is not None:
                        p[j], sc[j] = cols["prediction"][i], scores[i]
            preds[str(stage)] = {"p": p, "s": sc}
        stage_info.append(
            {
                "stage": stage,
                "label": _stage_label(run, stage),
                "value": None if isnan(value := results.score(stage, task)) else value,
                "total": total,
            }
        )
    data = {
        "task": task,
        "metric": results.primary.get(task),
        "stages": stage_info,
        "samples": samples,
        "preds": preds,
    }
    info = {t.get("name"): t for t in results.info.get("task_info") or [] if isinstance(t, dict)}
    description = (info.get(task) or {}).get("description") or ""
    body = [
        f"<h1>{esc(task)} <small>predictions of {esc(run.method)} · {esc(run.model)} · "
        f"seed {esc(run.seed)}</small></h1>",
        f'<p class="lead">{esc(description.rstrip("."))}{". " if description else ""}Primary metric: '
        f"{esc(results.primary.get(task, '?'))}. Pick a stage to see what the model answered "
        "after it; the heat map on the run page links here cell by cell.</p>",
    ]
    for problem in problems:
        body.append(f'<p class="note">{esc(problem)}</p>')
    body.append(
        '<p class="note" id="drill-note" hidden>Only the first '
        f"{esc(site.max_samples)} samples of each stage are shown; the full predictions are in "
        "the run directory's <code>predictions/</code> Arrow files.</p>"
        "<noscript><p class=note>This page lists the predictions with JavaScript; the same "
        "data is in the run directory's <code>predictions/</code> Arrow files.</p></noscript>"
        '<div class="drill-controls">'
        '<label>Stage<select id="drill-stage"></select></label>'
        '<label>Show<select id="drill-show"><option value="all">all samples</option>'
        '<option value="wrong">score below 100</option><option value="right">score 100</option>'
        "</select></label>"
        '<label>Search<input type="search" id="drill-search" placeholder="id, prompt, answer">'
        "</label></div>"
        '<div class="pager"><button type="button" id="drill-prev">← previous</button>'
        '<button type="button" id="drill-next">next →</button><span id="drill-info"></span></div>'
        '<div class="table-wrap"><table id="drill-table" class="drill"><thead><tr>'
        "<th>id</th><th>prompt</th><th>prediction</th><th>reference</th>"
        '<th class="num">score</th></tr></thead><tbody></tbody></table></div>'
    )
    body.append(json_script("drill-data", data, clean=False))
    site.write(
        f"r/{run.slug}/task-{k}.html",
        page(
            title=f"{task} · {run.method} · {site.title}",
            body="\n".join(body),
            root=ROOT2,
            crumbs=crumbs,
            footer=site.footer(dated=False),
            site_title=site.title,
        ),
    )


# -- board.json -----------------------------------------------------------------------------


def _board_json(site: _Site, board: Board) -> None:
    benchmarks = []
    for bench in board.benchmarks:
        runs = []
        for run in bench.runs:
            results = run.results
            runs.append(
                {
                    **_run_record(run),
                    "flags": [
                        {"kind": f.kind, "label": f.label, "detail": f.detail} for f in run.flags
                    ],
                    "tags": run.tags,
                    "metrics": run.metrics,
                    "costs": run.costs,
                    "tasks": run.tasks,
                    "matrix": [
                        {
                            "stage": s,
                            "trained_task": results.trained.get(s, ""),
                            "scores": [results.score(s, t) for t in run.tasks],
                        }
                        for s in results.stages
                    ],
                    "config": run.config,
                    "provenance": run.provenance,
                    "published": run.published,
                    "source": str(run.run_dir),
                }
            )
        benchmarks.append(
            {
                "identity": bench.identity,
                "page": f"b/{bench.slug}/index.html",
                "tasks": bench.tasks,
                "task_info": bench.task_info,
                "best": bench.best,
                "table": [_table_record(r) for r in bench.rows],
                "runs": runs,
            }
        )
    data = {
        "generated": site.generated,
        "cvit_bench_version": __version__,
        "metrics": {
            name: {"description": DESCRIPTIONS[name], "higher_is_better": HIGHER_IS_BETTER[name]}
            for name in METRIC_NAMES
        },
        "benchmarks": benchmarks,
        "unreadable": [
            {"run_dir": str(u.run_dir), "error": u.error} for u in board.collection.unreadable
        ],
        "scratch_runs_not_shown": len(board.collection.scratch_skipped),
    }
    from .render import clean_json

    site.write("board.json", json.dumps(clean_json(data), default=str) + "\n")


__all__ = ["MARKER", "BuildReport", "build_site", "read_predictions"]
