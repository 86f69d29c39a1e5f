"""Reading run directories for the board: metrics, costs, provenance and what is wrong with a run.

Metrics always come from :class:`cvit_bench.harness.results.RunResults`, which recomputes them
from the accuracy matrix with the harness's metric code; ``summary.arrow`` is never read.

A run is *ranked* (eligible for the best-value marks and the rank column) when it is complete,
was made from a clean source tree, follows the canonical protocol and trains sequentially.
Anything else is still shown, with a badge that says why it is not ranked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import CvitError, UsageError
from cvit_bench.harness.results import RunResults

PUBLISH_FILE = "publish.json"
"""Written by ``cvit-bench publish`` into the copied run directory; its absence marks scratch."""

SKIP_DIRS = {"checkpoints", "predictions"}

# flag kinds that keep a run out of the ranking
BLOCKING = ("incomplete", "dirty", "tree-unknown", "noncanonical")


@dataclass(frozen=True)
class Flag:
    """Something a reader must know about a run: ``kind`` (a stable key), ``label`` (the
    badge text) and ``detail`` (the explanation shown on hover and on the run page)."""

    kind: str
    label: str
    detail: str


@dataclass
class RunRecord:
    """One run directory, read and assessed."""

    results: RunResults
    slug: str
    provenance: dict[str, Any]
    config: dict[str, Any]
    identity: dict[str, Any]
    bench_key: str
    metrics: dict[str, float]
    costs: dict[str, Any]
    stages_table: list[dict[str, Any]]
    flags: list[Flag]
    published: dict[str, Any] | None
    config_key: str
    general: dict[str, dict[str, Any]] = field(default_factory=dict)
    """General ability kept per lmms-eval task (``RunResults.retention()``); empty when the
    run scored no general tasks."""

    @property
    def run_dir(self) -> Path:
        return self.results.run_dir

    @property
    def tasks(self) -> list[str]:
        return self.results.tasks

    @property
    def schedule(self) -> str:
        return self.results.schedule

    @property
    def method(self) -> str:
        return str(self.config.get("method") or _get(self.provenance, "method", "name") or "?")

    @property
    def model(self) -> str:
        return str(self.config.get("model") or _get(self.provenance, "model", "name") or "?")

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.provenance.get("seed"))

    @property
    def tags(self) -> list[str]:
        tags = self.config.get("tags") or self.provenance.get("tags") or []
        return [str(t) for t in tags] if isinstance(tags, list) else [str(tags)]

    @property
    def starting_point(self) -> str:
        source = self.provenance.get("model_source") or {}
        if not isinstance(source, dict):
            return ""
        return str(source.get("starting_point") or source.get("source") or "")

    @property
    def requirements(self) -> dict[str, Any]:
        req = self.provenance.get("method_requirements") or {}
        return req if isinstance(req, dict) else {}

    @property
    def needs_task_identity(self) -> bool | None:
        value = self.requirements.get("task_identity_at_inference")
        return None if value is None else bool(value)

    @property
    def scratch(self) -> bool:
        return self.published is None

    @property
    def reference(self) -> bool:
        """A joint (multitask) or evaluation-only run: a reference point, not a contender."""
        return self.schedule != "sequential"

    @property
    def general_retention(self) -> float:
        """GR: the mean over the run's general tasks of after-last / before-first, in %."""
        ratios = [g["retention"] for g in self.general.values()]
        finite = [r for r in ratios if isinstance(r, float) and math.isfinite(r)]
        return 100.0 * sum(finite) / len(finite) if finite else math.nan

    @property
    def ranked(self) -> bool:
        return not self.reference and not any(f.kind in BLOCKING for f in self.flags)

    @property
    def status(self) -> str:
        if self.ranked:
            return "ranked"
        if self.reference and not any(f.kind in BLOCKING for f in self.flags):
            return "reference"
        return "flagged"


@dataclass
class Unreadable:
    run_dir: Path
    error: str


@dataclass
class Collection:
    runs: list[RunRecord] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    scratch_skipped: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)


def find_run_dirs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Every run directory (one holding ``run.json``) at or under ``paths``, sorted."""
    found: list[Path] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise UsageError(f"results directory {root} does not exist")
        if not root.is_dir():
            raise UsageError(f"{root} is not a directory")
        if (root / "run.json").is_file():
            found.append(root)
            continue
        visited: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in visited:  # a symlink cycle
                dirnames[:] = []
                continue
            visited.add(real)
            if "run.json" in filenames:
                found.append(Path(dirpath))
                dirnames[:] = []
                continue
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
            )
    return sorted(set(found), key=lambda p: str(p))


def collect(
    paths: Sequence[str | os.PathLike[str]],
    include_scratch: bool = False,
    map_fn: Callable[..., Iterable[Any]] = map,
) -> Collection:
    """Read every run under ``paths``. Unreadable runs are listed, never dropped silently.

    ``map_fn`` may be a process pool's ``map`` to read runs in parallel."""
    out = Collection()
    seen: dict[str, Path] = {}
    run_dirs = find_run_dirs(paths)
    for run_dir, (record, error) in zip(run_dirs, map_fn(try_read_run, run_dirs)):
        if record is None:
            out.unreadable.append(Unreadable(run_dir, error))
            continue
        if record.slug in seen:
            out.duplicates.append(run_dir)
            continue
        if record.scratch and not include_scratch:
            out.scratch_skipped.append(run_dir)
            continue
        seen[record.slug] = run_dir
        out.runs.append(record)
    return out


def try_read_run(run_dir: Path) -> tuple[RunRecord | None, str]:
    """``(record, "")``, or ``(None, why)`` for a run that cannot be read."""
    try:
        return read_run(run_dir), ""
    except CvitError as exc:
        return None, str(exc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, f"{run_dir}: malformed run: {exc!r}"


def read_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Read one run directory (raises ``ResultFileError`` for unreadable result files)."""
    results = RunResults(run_dir)
    info = results.info
    config = info.get("config") or {}
    if not isinstance(config, dict):
        config = {}
    provenance = results.provenance or {}
    identity = provenance.get("benchmark_identity") or {}
    if not isinstance(identity, dict) or not identity:
        identity = {"name": config.get("bench") or "?", "version": "?"}
    identity = {str(k): v for k, v in identity.items()}
    bench_key = json.dumps(identity, sort_keys=True, default=str)
    stages_table = results.stages_table()
    published = _read_published(results.run_dir)
    record = RunRecord(
        results=results,
        slug="",
        provenance=provenance,
        config=config,
        identity=identity,
        bench_key=bench_key,
        metrics=results.metrics(),
        costs=costs_of(stages_table, info, provenance),
        stages_table=stages_table,
        flags=[],
        published=published,
        config_key="",
        general=results.retention(),
    )
    record.flags = assess(record)
    record.slug = run_slug(record)
    record.config_key = configuration_key(record)
    return record


def _read_published(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / PUBLISH_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# -- what a run costs ---------------------------------------------------------------------


def costs_of(
    stages: list[dict[str, Any]], info: dict[str, Any], provenance: dict[str, Any]
) -> dict[str, Any]:
    """Whole-run costs from ``stages.arrow``: totals of time, maxima of the rest."""

    def values(key: str) -> list[float]:
        out = []
        for row in stages:
            v = row.get(key)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                out.append(v)
        return out

    wall = values("wall_s")
    if not wall:
        wall = [float(v) for v in (info.get("stage_wall_s") or {}).values()]
    wall_s = float(sum(wall)) if wall else math.nan
    hardware = provenance.get("hardware") or {}
    gpus = int(hardware.get("gpu_count") or (1 if hardware.get("gpu") else 0))
    return {
        "trainable_params": max(values("trainable_params"), default=None),
        "stored_samples": max(values("stored_samples"), default=None),
        "wall_s": wall_s,
        "train_s": float(sum(values("train_s"))) if values("train_s") else math.nan,
        "eval_s": float(sum(values("eval_s"))) if values("eval_s") else math.nan,
        "peak_mem_mb": max(values("peak_mem_mb"), default=math.nan),
        "gpu_hours": wall_s * gpus / 3600.0 if gpus and not math.isnan(wall_s) else math.nan,
        "gpu": hardware.get("gpu"),
        "gpu_count": gpus,
    }


# -- what is wrong with a run -------------------------------------------------------------


def expected_cells(results: RunResults) -> list[tuple[int, str]]:
    """The (stage, task) cells the run's own protocol evaluates when it has finished."""
    config = results.info.get("config") or {}
    eval_cfg = config.get("eval") or {}
    tasks = results.tasks
    zero_shot = bool(eval_cfg.get("zero_shot", True))
    eval_on = eval_cfg.get("eval_on", "all")
    stages: list[int] = [0] if zero_shot or results.schedule == "none" else []
    if results.schedule == "sequential":
        stages += list(range(1, len(tasks) + 1))
    elif results.schedule == "joint":
        stages.append(1)
    cells = []
    for stage in stages:
        seen = tasks if stage == 0 or results.schedule != "sequential" else tasks[:stage]
        for task in tasks if eval_on == "all" else seen:
            cells.append((stage, task))
    return cells


def completeness_problems(results: RunResults) -> list[str]:
    """Why the run's matrix is not complete (empty when it is)."""
    problems = []
    if not results.tasks:
        problems.append("run.json lists no tasks")
    status = results.info.get("status")
    if status != "finished":
        done = results.info.get("finished_stages", [])
        problems.append(f"the run has status {status!r} (finished stages {done}), not 'finished'")
    missing = [
        (stage, task)
        for stage, task in expected_cells(results)
        if (stage, task) not in results.cells or task not in results.primary
    ]
    if missing:
        shown = ", ".join(f"stage {s} / {t}" for s, t in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        problems.append(f"{len(missing)} accuracy-matrix cell(s) missing: {shown}{more}")
    return problems


def protocol_problems(results: RunResults, published_order: list[str] | None = None) -> list[str]:
    """Departures from the canonical protocol: published task order, every task evaluated
    after every stage (``eval_on: all``), and the zero-shot stage (FWT needs both)."""
    config = results.info.get("config") or {}
    eval_cfg = config.get("eval") or {}
    problems = []
    order = config.get("order")
    if published_order is not None:
        if list(results.tasks) != list(published_order):
            problems.append(
                f"task order {results.tasks} is not the benchmark's published order "
                f"{published_order}"
            )
    elif order:
        problems.append(f"a custom task order was configured ({order})")
    if results.schedule == "sequential" and eval_cfg.get("eval_on", "all") != "all":
        problems.append(
            f"eval_on is {eval_cfg.get('eval_on')!r}: only seen tasks were evaluated, "
            "so FWT and the upper triangle are missing (canonical: 'all')"
        )
    if not eval_cfg.get("zero_shot", True):
        problems.append("the zero-shot stage was skipped (canonical: evaluated, FWT needs it)")
    return problems


def git_state(provenance: dict[str, Any]) -> tuple[str, str]:
    """``("clean" | "dirty" | "unknown", commit)`` of the source tree the run was made from."""
    git = provenance.get("git") or {}
    if not isinstance(git, dict):
        git = {}
    commit = str(git.get("commit") or "")
    dirty = git.get("dirty")
    if dirty is True:
        return "dirty", commit
    if dirty is False and commit:
        return "clean", commit
    return "unknown", commit


def assess(record: RunRecord) -> list[Flag]:
    flags = []
    problems = completeness_problems(record.results)
    if problems:
        flags.append(Flag("incomplete", "incomplete", "; ".join(problems)))
    state, commit = git_state(record.provenance)
    if state == "dirty":
        flags.append(
            Flag(
                "dirty",
                "dirty tree",
                f"made from a source tree with uncommitted changes (commit {commit[:12]}): "
                "the code that produced it cannot be recovered",
            )
        )
    elif state == "unknown":
        flags.append(
            Flag(
                "tree-unknown",
                "tree unknown",
                "the run records no git commit or dirty flag: the code cannot be identified",
            )
        )
    protocol = protocol_problems(record.results)
    if protocol:
        flags.append(Flag("noncanonical", "non-canonical", "; ".join(protocol)))
    if record.reference:
        label = "joint (multitask)" if record.schedule == "joint" else "zero-shot only"
        flags.append(
            Flag(
                "reference",
                label,
                "a reference point, not a continual method: "
                + (
                    "one model trained on every task at once"
                    if record.schedule == "joint"
                    else "the untrained model, evaluated only"
                ),
            )
        )
    if record.published is None:
        flags.append(
            Flag("scratch", "scratch", "not published with 'cvit-bench publish' (not validated)")
        )
    return flags


# -- names and keys -----------------------------------------------------------------------

_SLUG_RE = re.compile(r"[^a-z0-9._-]+")


def slugify(text: str, limit: int = 48) -> str:
    """A file-name-safe, lower-case form of ``text`` (never empty, never ``.`` or ``..``)."""
    slug = _SLUG_RE.sub("-", str(text).lower()).strip("-.")
    slug = re.sub(r"-{2,}", "-", slug)[:limit].strip("-.")
    return slug or "x"


def short_hash(*parts: Any, n: int = 8) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def run_slug(record: RunRecord) -> str:
    """A stable page name: a readable part plus a hash of the run's configuration identity,
    start time, benchmark identity and scores.

    Two copies of the same run get the same slug and are shown once.
    """
    info = record.results.info
    identity = info.get("config_identity") or record.provenance.get("config_identity")
    started = info.get("created") or record.provenance.get("started")
    if not identity:
        identity, started = str(record.run_dir.resolve()), ""
    cells = sorted((s, t, sorted(m.items())) for (s, t), m in record.results.cells.items())
    readable = slugify(f"{record.method}-{record.model}-seed{record.seed}", limit=40)
    return f"{readable}-{short_hash(identity, started, record.bench_key, cells)}"


IGNORED_FOR_GROUPING = ("seed", "cache_dir", "data_root", "tags")


def configuration_key(record: RunRecord) -> str:
    """Runs with equal keys are seeds of one configuration and are shown as one row."""
    config = {k: v for k, v in record.config.items() if k not in IGNORED_FOR_GROUPING}
    return json.dumps(
        [record.bench_key, config, record.status, sorted(f.kind for f in record.flags)],
        sort_keys=True,
        default=str,
    )


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def mean_and_spread(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN spread for one value; NaN if any is NaN)."""
    vals = [float(v) for v in values if v is not None]
    if not vals or any(math.isnan(v) for v in vals):
        return math.nan, math.nan
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)
