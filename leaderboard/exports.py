"""Downloads: every table of the site as CSV and as Parquet, with the same columns and values."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Column = tuple[str, str]
"""``(name, type)`` with type one of ``string``, ``float64``, ``int64``, ``bool``."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "float64":
        return repr(float(value))
    if kind == "bool":
        return "true" if value else "false"
    text = str(value)
    # a cell a spreadsheet would run as a formula is quoted with a leading apostrophe
    if kind == "string" and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def write_csv(path: Path, columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    for row in rows:
        writer.writerow([_csv_cell(row.get(name), kind) for name, kind in columns])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _arrow_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float64":
        return float(value)
    if kind == "int64":
        return None if isinstance(value, float) and math.isnan(value) else int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def write_parquet(path: Path, columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "float64": pa.float64(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
    }
    schema = pa.schema([pa.field(name, types[kind]) for name, kind in columns])
    data = {name: [_arrow_value(row.get(name), kind) for row in rows] for name, kind in columns}
    big = len(rows) > 1000  # dictionaries and statistics only pay off on large tables
    pq.write_table(
        pa.Table.from_pydict(data, schema=schema),
        str(path),
        compression="zstd" if big else "none",
        use_dictionary=big,
        write_statistics=big,
    )


def write_both(stem: Path, columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> None:
    """``stem.csv`` and ``stem.parquet``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_csv(stem.with_suffix(".csv"), columns, rows)
    write_parquet(stem.with_suffix(".parquet"), columns, rows)
