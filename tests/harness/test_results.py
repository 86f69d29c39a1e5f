from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.ipc
import pytest

from cvit_bench.harness.errors import ResultFileError
from cvit_bench.harness.results import read_table, write_table

PROV = {"seed": 3, "benchmark_identity": {"name": "x", "version": "1"}}


def test_round_trip_keeps_provenance_and_reads_with_plain_pyarrow(tmp_path):
    path = tmp_path / "summary.arrow"
    write_table(
        path,
        "summary",
        [{"metric": "MFT", "value": 81.5}, {"metric": "FWT", "value": math.nan}],
        PROV,
    )
    table, prov = read_table(path, "summary")
    assert prov == PROV
    assert table.column("value").to_pylist()[0] == 81.5
    plain = pa.ipc.open_file(pa.memory_map(str(path))).read_all()  # no cvit-bench code
    assert plain.column("metric").to_pylist() == ["MFT", "FWT"]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "matrix.arrow"
    write_table(path, "summary", [{"metric": "MFT", "value": 1.0}], PROV)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFileError, match="corrupt or truncated"):
        read_table(path)


def test_foreign_arrow_file_is_reported(tmp_path):
    path = tmp_path / "other.arrow"
    table = pa.table({"a": [1, 2]})
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(ResultFileError, match="not a cvit-bench result file"):
        read_table(path)


def test_wrong_kind_and_missing_file(tmp_path):
    path = tmp_path / "summary.arrow"
    write_table(path, "summary", [], PROV)
    with pytest.raises(ResultFileError, match="expected a 'matrix' result file"):
        read_table(path, "matrix")
    with pytest.raises(ResultFileError, match="does not exist"):
        read_table(tmp_path / "nope.arrow")


def _raw(path, fields, columns, version):
    schema = pa.schema(
        fields,
        metadata={
            b"cvit_bench.schema_version": version,
            b"cvit_bench.kind": b"stages",
            b"cvit_bench.provenance": b"{}",
        },
    )
    table = pa.Table.from_pydict(columns, schema=schema)
    with pa.ipc.new_file(str(path), schema) as writer:
        writer.write_table(table)


def test_older_file_without_newer_columns_is_accepted(tmp_path):
    path = tmp_path / "stages.arrow"
    _raw(
        path,
        [pa.field("stage", pa.int32()), pa.field("trained_task", pa.string())],
        {"stage": [1], "trained_task": ["a"]},
        b"1.0",
    )
    table, _ = read_table(path, "stages")
    row = table.to_pylist()[0]
    assert row["stage"] == 1 and row["stored_samples"] is None


def test_newer_major_version_is_refused(tmp_path):
    path = tmp_path / "stages.arrow"
    _raw(path, [pa.field("stage", pa.int32())], {"stage": [1]}, b"2.0")
    with pytest.raises(ResultFileError, match="schema version 2.0"):
        read_table(path)


def test_wrong_column_type_is_reported(tmp_path):
    path = tmp_path / "stages.arrow"
    _raw(path, [pa.field("stage", pa.string())], {"stage": ["one"]}, b"1.0")
    with pytest.raises(ResultFileError, match="column 'stage' has type string"):
        read_table(path)
