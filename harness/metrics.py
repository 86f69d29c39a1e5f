"""The continual-learning metrics, computed one way for everybody.

Notation: ``R[t][j]`` is the primary score (0-100) of task ``j`` after training through task
``t``, with ``T`` tasks, both 1-based; ``R[0][j]`` is the zero-shot score of the untrained model.
Entries that were not evaluated are NaN (``eval_on: seen`` leaves the upper triangle empty).

==============  ===========================================================================
metric          formula
==============  ===========================================================================
MFT             (1/T) sum_j R[j][j]                            mean fine-tune (diagonal)
MFN ("Last")    (1/T) sum_j R[T][j]                            mean of the final row
MAA ("Avg")     (1/T) sum_t (1/t) sum_{j<=t} R[t][j]           mean average accuracy
BWT             (1/(T-1)) sum_{j<T} (R[T][j] - R[j][j])        backward transfer
Forgetting      (1/(T-1)) sum_{j<T} max_{t in [j,T-1]} (R[t][j] - R[T][j])
FWT             (1/(T-1)) sum_{j>=2} (R[j-1][j] - R[0][j])      forward transfer (needs ``all``)
ZS              (1/T) sum_j R[0][j]                            mean zero-shot score
==============  ===========================================================================

A metric whose formula touches an entry that is NaN is NaN: nothing is silently averaged over
fewer tasks. ``continual_metrics(R, through=k)`` computes the metrics of the first ``k`` tasks as
if the sequence ended there (for runs still in progress). BWT divides by ``T-1``; CoIN's paper
divides by ``T``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METRIC_NAMES = ("MFT", "MFN", "MAA", "BWT", "Forgetting", "FWT", "ZS")
"""Metric names in display order."""

HIGHER_IS_BETTER = {
    "MFT": True,
    "MFN": True,
    "MAA": True,
    "BWT": True,
    "Forgetting": False,
    "FWT": True,
    "ZS": True,
}

DESCRIPTIONS = {
    "MFT": "mean fine-tune score: each task right after it was trained (diagonal)",
    "MFN": "mean final score: every task after the last stage ('Last')",
    "MAA": "mean average accuracy over stages, each over the tasks seen so far ('Avg')",
    "BWT": "backward transfer: final minus just-trained score, averaged over all but the last task",
    "Forgetting": "mean drop from each task's best score (from its own stage on) to its final score",
    "FWT": "forward transfer: score just before training a task minus its zero-shot score",
    "ZS": "mean zero-shot score of the untrained model (stage 0)",
}

Matrix = Sequence[Sequence[float]]


def _nan() -> float:
    return math.nan


def _mean(values: list[float]) -> float:
    if not values or any(math.isnan(v) for v in values):
        return _nan()
    return sum(values) / len(values)


def continual_metrics(
    matrix: Matrix, zero_shot: Sequence[float] | None = None, through: int | None = None
) -> dict[str, float]:
    """All metrics of an accuracy matrix.

    Args:
        matrix: ``T`` rows (stage 1..T, row ``t-1`` is after training task ``t``) of ``T``
            scores (task 1..T in training order); NaN where not evaluated.
        zero_shot: the ``T`` zero-shot scores (stage 0), or ``None``.
        through: compute as if the sequence ended after this many tasks (default: all ``T``).

    Returns:
        ``{name: value}`` for every name in :data:`METRIC_NAMES` (NaN where undefined).
    """
    rows = [[float(v) for v in row] for row in matrix]
    t_all = len(rows[0]) if rows else (len(zero_shot) if zero_shot is not None else 0)
    for i, row in enumerate(rows):
        if len(row) != t_all:
            raise ValueError(f"row {i + 1} of the matrix has {len(row)} entries, expected {t_all}")
    if zero_shot is not None and len(zero_shot) != t_all:
        raise ValueError(f"zero-shot row has {len(zero_shot)} entries, expected {t_all}")
    T = t_all if through is None else through
    if not 0 <= T <= t_all:
        raise ValueError(f"through={through} is outside 0..{t_all}")
    zs = [float(v) for v in zero_shot] if zero_shot is not None else [_nan()] * t_all

    def R(t: int, j: int) -> float:  # 1-based, t = 0 is zero-shot
        if t == 0:
            return zs[j - 1]
        if t > len(rows):
            return _nan()
        return rows[t - 1][j - 1]

    out = {name: _nan() for name in METRIC_NAMES}
    if T == 0:
        return out
    out["ZS"] = _mean([R(0, j) for j in range(1, T + 1)])
    out["MFT"] = _mean([R(j, j) for j in range(1, T + 1)])
    out["MFN"] = _mean([R(T, j) for j in range(1, T + 1)])
    out["MAA"] = _mean([_mean([R(t, j) for j in range(1, t + 1)]) for t in range(1, T + 1)])
    if T >= 2:
        out["BWT"] = _mean([R(T, j) - R(j, j) for j in range(1, T)])
        out["Forgetting"] = _mean(
            [
                max(R(t, j) - R(T, j) for t in range(j, T))
                if not any(math.isnan(R(t, j)) for t in range(j, T + 1))
                else _nan()
                for j in range(1, T)
            ]
        )
        out["FWT"] = _mean([R(j - 1, j) - R(0, j) for j in range(2, T + 1)])
    return out


def single_stage_metrics(
    row: Sequence[float], zero_shot: Sequence[float] | None = None
) -> dict[str, float]:
    """Metrics of a single-stage run (``joint``: one model trained on every task at once).

    Only MFN (the mean of the one row) and ZS are defined; MFT, MAA, BWT, Forgetting and FWT
    describe a sequence and are NaN rather than faked.
    """
    out = {name: _nan() for name in METRIC_NAMES}
    out["MFN"] = _mean([float(v) for v in row])
    if zero_shot is not None:
        out["ZS"] = _mean([float(v) for v in zero_shot])
    return out


ZERO_SHOT_LABELS = {
    "zero-shot",
    "zeroshot",
    "zero_shot",
    "zs",
    "0",
    "stage0",
    "stage 0",
    "base",
    "pretrained",
    "initial",
    "init",
    "before",
}


def read_matrix_csv(path: str) -> tuple[list[str], list[list[float]], list[float] | None]:
    """Read an accuracy matrix CSV as other CVIT code writes it.

    Layout: the header names the evaluated tasks (after a first cell for the row label); each
    row's first cell is the task trained last (or a stage number), and its cells are the scores;
    empty, ``nan`` or ``-`` cells are not evaluated. A first row labelled ``zero-shot`` (or
    ``0``, ``base``, ...), or one row more than there are tasks, is the zero-shot row.

    Returns:
        ``(tasks, rows, zero_shot)``.
    """
    import csv

    from .errors import UsageError

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = [row for row in csv.reader(handle) if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise UsageError(f"matrix file {path} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"matrix file {path} is not a readable CSV file: {exc}") from None
    if len(table) < 2:
        raise UsageError(f"matrix file {path} needs a header row and at least one row of scores")
    tasks = [c.strip() for c in table[0][1:]]
    if not tasks or any(not t for t in tasks):
        raise UsageError(
            f"matrix file {path}: the header must name every evaluated task "
            "after a first (row label) cell"
        )
    body = table[1:]
    zero_shot = None
    if body[0][0].strip().lower() in ZERO_SHOT_LABELS or len(body) == len(tasks) + 1:
        zero_shot = _parse_row(path, 2, body[0], len(tasks))
        body = body[1:]
    rows = [
        _parse_row(path, i + (3 if zero_shot is not None else 2), row, len(tasks))
        for i, row in enumerate(body)
    ]
    if len(rows) > len(tasks):
        raise UsageError(f"matrix file {path} has {len(rows)} stage rows for {len(tasks)} tasks")
    while len(rows) < len(tasks):  # a run still in progress: later stages not evaluated
        rows.append([math.nan] * len(tasks))
    return tasks, rows, zero_shot


def _parse_row(path: str, line: int, row: list[str], width: int) -> list[float]:
    from .errors import UsageError

    cells = row[1:]
    if len(cells) > width:
        raise UsageError(f"matrix file {path}, line {line}: {len(cells)} scores for {width} tasks")
    cells = cells + [""] * (width - len(cells))
    values = []
    for col, cell in enumerate(cells, start=2):
        text = cell.strip().rstrip("%")
        if text.lower() in ("", "nan", "-", "n/a", "na", "none"):
            values.append(math.nan)
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise UsageError(
                f"matrix file {path}, line {line}, column {col}: {cell!r} is not a number"
            ) from None
    return values
