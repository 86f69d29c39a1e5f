"""Result files: Arrow IPC tables with a versioned schema and provenance in their metadata.

A run directory holds::

    config.yaml              the resolved configuration (human-readable copy)
    run.json                 progress: finished stages, config identity, status
    matrix.arrow             the accuracy matrix, long format (one row per stage, task, metric)
    stages.arrow             cost of each stage (wall time, memory, parameters, stored samples)
    summary.arrow            the continual metrics (recomputed from matrix.arrow)
    predictions/stage_<s>/<task>.arrow   per-sample predictions of every (stage, task) cell
    general.arrow            general ability: lmms-eval task scores after chosen stages
                             (only when the run lists ``eval.general_tasks``)
    checkpoints/stage_<s>/   what resuming needs (adapters, method state); not a result

Every Arrow file carries the schema metadata keys ``cvit_bench.schema_version``,
``cvit_bench.kind`` (``matrix``, ``stages``, ``controls``, ``summary``, ``predictions``,
``general``) and
``cvit_bench.provenance`` (JSON: versions, git commit and dirty flag, benchmark identity, model
source, seed, hardware, method requirements). The files read with plain pyarrow, pandas or polars.

Schema versioning: columns are only ever added. A reader accepts any file whose major version it
knows, filling columns a file predates with nulls, and refuses a newer major version.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .errors import ResultFileError
from .io import atomic_write_bytes

SCHEMA_VERSION = "1.0"
META_VERSION = b"cvit_bench.schema_version"
META_KIND = b"cvit_bench.kind"
META_PROVENANCE = b"cvit_bench.provenance"

# kind -> [(column, arrow type name, required since schema version)]
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "matrix": [
        ("stage", "int32"),  # 0 = zero-shot; t = after training the t-th task
        ("trained_task", "string"),  # task trained in that stage ("" at stage 0, "joint")
        ("eval_task", "string"),  # the evaluated task
        ("eval_index", "int32"),  # the evaluated task's 1-based place in the order
        ("metric", "string"),  # metric name
        ("value", "float64"),  # 0-100; NaN when not scored
        ("primary", "bool"),  # the metric that enters the accuracy matrix
        ("n", "int64"),  # samples scored
        ("not_scored", "string"),  # reason when the cell could not be scored, else null
    ],
    "stages": [
        ("stage", "int32"),
        ("trained_task", "string"),
        ("wall_s", "float64"),  # whole stage
        ("train_s", "float64"),
        ("eval_s", "float64"),
        ("steps", "int64"),
        ("train_samples", "int64"),
        ("loss", "float64"),
        ("trainable_params", "int64"),
        ("peak_mem_mb", "float64"),
        ("stored_samples", "int64"),  # past samples the method keeps after this stage
        ("method_costs", "string"),  # JSON of Method.costs()
    ],
    "controls": [
        ("stage", "int32"),  # the stage that trained the task
        ("task", "string"),
        ("score", "float64"),  # the task's primary score right after it was trained
        ("blank_image", "float64"),  # the same model, every image replaced by a blank one
        ("majority", "float64"),  # every question answered with the most frequent answer
        ("majority_answer", "string"),  # that answer (most frequent in the training data)
        ("n", "int64"),  # samples scored
    ],
    "summary": [
        ("metric", "string"),
        ("value", "float64"),
    ],
    "general": [
        ("stage", "int32"),  # the stage the model was scored after (0 = before any training)
        ("trained_task", "string"),  # task trained in that stage ("" at stage 0)
        ("task", "string"),  # the lmms-eval task (or group)
        ("metric", "string"),  # lmms-eval's metric name
        ("filter", "string"),  # lmms-eval's filter ("none" unless the task filters answers)
        ("value", "float64"),  # as lmms-eval reports it (its scale, often 0-1)
        ("stderr", "float64"),  # lmms-eval's standard error, or null
        ("primary", "bool"),  # the task's first metric: the one retention is reported for
        ("higher_is_better", "bool"),
        ("n", "int64"),  # documents scored
    ],
    "predictions": [
        ("id", "string"),  # the sample id as text
        ("id_is_int", "bool"),  # the id was an integer in the annotation file
        ("prompt", "string"),
        ("prediction", "string"),
        ("reference", "string"),
        ("score", "float64"),  # per-sample score (0-100) or null
    ],
}
KINDS = tuple(COLUMNS)


def _pa() -> Any:
    import pyarrow as pa

    return pa


def _arrow_type(pa: Any, type_name: str) -> Any:
    return pa.bool_() if type_name == "bool" else getattr(pa, type_name)()


def _schema(kind: str, provenance: dict[str, Any]) -> Any:
    pa = _pa()
    fields = [pa.field(name, _arrow_type(pa, type_name)) for name, type_name in COLUMNS[kind]]
    metadata = {
        META_VERSION: SCHEMA_VERSION.encode(),
        META_KIND: kind.encode(),
        META_PROVENANCE: json.dumps(provenance, sort_keys=True, default=str).encode(),
    }
    return pa.schema(fields, metadata=metadata)


def write_table(
    path: str | Path, kind: str, rows: list[dict[str, Any]], provenance: dict[str, Any]
) -> None:
    """Write ``rows`` (dicts keyed by column) as an Arrow IPC file of ``kind``, atomically."""
    pa = _pa()
    schema = _schema(kind, provenance)
    columns = {name: [row.get(name) for row in rows] for name, _ in COLUMNS[kind]}
    table = pa.Table.from_pydict(columns, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(table)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_table(path: str | Path, kind: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Read and validate a result file; returns ``(pyarrow.Table, provenance)``.

    Raises ``ResultFileError`` saying what is wrong with a missing, corrupt, truncated or
    foreign file, or one written by a newer major schema version.
    """
    pa = _pa()
    path = Path(path)
    if not path.exists():
        raise ResultFileError(f"{path}: result file does not exist")
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise ResultFileError(
            f"{path}: not a readable Arrow IPC file (corrupt or truncated?): {exc}"
        ) from None
    meta = table.schema.metadata or {}
    if META_VERSION not in meta or META_KIND not in meta:
        raise ResultFileError(
            f"{path}: an Arrow file, but not a cvit-bench result file "
            "(no cvit_bench.schema_version in its metadata)"
        )
    version = meta[META_VERSION].decode()
    file_kind = meta[META_KIND].decode()
    if kind is not None and file_kind != kind:
        raise ResultFileError(f"{path}: expected a {kind!r} result file, found {file_kind!r}")
    if file_kind not in COLUMNS:
        raise ResultFileError(f"{path}: unknown result file kind {file_kind!r}")
    major = version.split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise ResultFileError(
            f"{path}: schema version {version} is not readable by this "
            f"cvit-bench (reads {SCHEMA_VERSION.split('.')[0]}.x); upgrade it"
        )
    for name, type_name in COLUMNS[file_kind]:
        expected = _arrow_type(pa, type_name)
        if name not in table.column_names:
            # a column added after the file was written: fill with nulls
            table = table.append_column(
                pa.field(name, expected), pa.nulls(table.num_rows, type=expected)
            )
        elif not table.schema.field(name).type.equals(expected):
            raise ResultFileError(
                f"{path}: column {name!r} has type "
                f"{table.schema.field(name).type}, expected {expected}"
            )
    try:
        provenance = json.loads(meta.get(META_PROVENANCE, b"{}").decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{path}: provenance metadata is not valid JSON: {exc}") from None
    return table, provenance


# -- a run directory, read back -------------------------------------------------------------


class RunResults:
    """A run directory's results, read and validated.

    Attributes:
        run_dir: the directory.
        info: ``run.json`` (tasks in order, status, identity).
        provenance: the provenance recorded in ``matrix.arrow``.
        tasks: evaluated task names in training order.
        cells: ``{(stage, eval_task): {metric: value}}`` and ``primary`` names per task.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        info_path = self.run_dir / "run.json"
        if not info_path.exists():
            raise ResultFileError(f"{self.run_dir}: not a cvit-bench run directory (no run.json)")
        try:
            self.info = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise ResultFileError(f"{info_path}: corrupt run.json: {exc}") from None
        self.tasks: list[str] = list(self.info.get("tasks", []))
        self.schedule: str = self.info.get("schedule", "sequential")
        matrix_path = self.run_dir / "matrix.arrow"
        self.cells: dict[tuple[int, str], dict[str, float]] = {}
        self.counts: dict[tuple[int, str], int] = {}
        self.not_scored: dict[tuple[int, str], str] = {}
        self.primary: dict[str, str] = {}
        self.trained: dict[int, str] = {}
        self.provenance: dict[str, Any] = {}
        if matrix_path.exists():
            table, self.provenance = read_table(matrix_path, "matrix")
            for row in table.to_pylist():
                key = (row["stage"], row["eval_task"])
                value = row["value"]
                self.cells.setdefault(key, {})[row["metric"]] = math.nan if value is None else value
                self.trained[row["stage"]] = row["trained_task"] or ""
                if row["primary"]:
                    self.primary[row["eval_task"]] = row["metric"]
                    self.counts[key] = row["n"] or 0
                    if row["not_scored"]:
                        self.not_scored[key] = row["not_scored"]

    @property
    def stages(self) -> list[int]:
        return sorted({stage for stage, _ in self.cells})

    @property
    def complete(self) -> bool:
        return self.info.get("status") == "finished"

    def score(self, stage: int, task: str) -> float:
        metric = self.primary.get(task)
        if metric is None:
            return math.nan
        return self.cells.get((stage, task), {}).get(metric, math.nan)

    def matrix(self) -> tuple[list[list[float]], list[float] | None]:
        """``(rows, zero_shot)`` for :func:`cvit_bench.harness.metrics.continual_metrics`."""
        tasks = self.tasks
        zero_shot = None
        if any((0, t) in self.cells for t in tasks):
            zero_shot = [self.score(0, t) for t in tasks]
        if self.schedule == "joint":
            return [[self.score(1, t) for t in tasks]], zero_shot
        n_rows = len(tasks) if self.schedule == "sequential" else 0
        rows = [[self.score(s, t) for t in tasks] for s in range(1, n_rows + 1)]
        return rows, zero_shot

    def metrics(self) -> dict[str, float]:
        """The continual metrics, recomputed from the matrix (never read from a summary)."""
        from .metrics import METRIC_NAMES, continual_metrics, single_stage_metrics

        rows, zero_shot = self.matrix()
        if self.schedule == "joint":
            return single_stage_metrics(rows[0], zero_shot)
        if self.schedule == "none" or not rows:
            out = {name: math.nan for name in METRIC_NAMES}
            if zero_shot is not None:
                out["ZS"] = sum(zero_shot) / len(zero_shot) if zero_shot else math.nan
            return out
        last = max([s for s in self.stages if s >= 1], default=0)
        through = None if last >= len(self.tasks) else last
        return continual_metrics(rows, zero_shot, through=through)

    def stages_table(self) -> list[dict[str, Any]]:
        path = self.run_dir / "stages.arrow"
        if not path.exists():
            return []
        table, _ = read_table(path, "stages")
        return table.to_pylist()

    def controls(self) -> list[dict[str, Any]]:
        """Each trained task right after training: its score, the same model's score on blank
        images and the majority-answer score (empty when the run recorded none)."""
        path = self.run_dir / "controls.arrow"
        if not path.exists():
            return []
        table, _ = read_table(path, "controls")
        return table.to_pylist()

    def general(self) -> list[dict[str, Any]]:
        """The rows of ``general.arrow`` (lmms-eval scores after chosen stages); ``[]`` when the
        run scored no general tasks."""
        path = self.run_dir / "general.arrow"
        if not path.exists():
            return []
        table, _ = read_table(path, "general")
        return table.to_pylist()

    def retention(self) -> dict[str, dict[str, Any]]:
        """General ability kept, per general task: ``{task: {metric, before, after, stage,
        retention}}`` for the task's primary metric, where ``before`` is the score at stage 0,
        ``after`` the score at the last stage it was scored at, and ``retention`` is
        ``after / before`` (NaN without a stage-0 score or when ``before`` is 0)."""
        scores: dict[str, dict[int, float]] = {}
        metric: dict[str, str] = {}
        for row in self.general():
            if not row["primary"]:
                continue
            metric[row["task"]] = row["metric"]
            value = row["value"]
            scores.setdefault(row["task"], {})[row["stage"]] = math.nan if value is None else value
        out: dict[str, dict[str, Any]] = {}
        for task, by_stage in scores.items():
            last = max(by_stage)
            before = by_stage.get(0, math.nan)
            after = by_stage[last] if last > 0 else math.nan
            ratio = after / before if before and not math.isnan(before) else math.nan
            out[task] = {
                "metric": metric[task],
                "before": before,
                "after": after,
                "stage": last,
                "retention": ratio,
            }
        return out

    def predictions(self, stage: int, task: str) -> list[dict[str, Any]]:
        path = prediction_path(self.run_dir, stage, task)
        table, _ = read_table(path, "predictions")
        return table.to_pylist()


def prediction_path(run_dir: str | Path, stage: int, task: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task)
    return Path(run_dir) / "predictions" / f"stage_{stage}" / f"{safe}.arrow"
