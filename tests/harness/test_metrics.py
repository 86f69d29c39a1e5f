from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from cvit_bench.harness.metrics import continual_metrics, read_matrix_csv, single_stage_metrics

NAN = math.nan
ZS = [10.0, 20.0, 30.0]
FULL = [
    [80.0, 25.0, 35.0],
    [60.0, 90.0, 40.0],
    [50.0, 70.0, 95.0],
]


def test_full_matrix_by_hand():
    m = continual_metrics(FULL, ZS)
    assert m["MFT"] == pytest.approx((80 + 90 + 95) / 3)
    assert m["MFN"] == pytest.approx((50 + 70 + 95) / 3)
    assert m["MAA"] == pytest.approx((80 + (60 + 90) / 2 + (50 + 70 + 95) / 3) / 3)
    assert m["BWT"] == pytest.approx(((50 - 80) + (70 - 90)) / 2)
    assert m["Forgetting"] == pytest.approx((30 + 20) / 2)
    assert m["FWT"] == pytest.approx(((25 - 20) + (40 - 30)) / 2)
    assert m["ZS"] == pytest.approx(20.0)


def test_forgetting_uses_best_earlier_score_not_the_diagonal():
    rows = [[60.0, 0.0, 0.0], [80.0, 90.0, 0.0], [50.0, 85.0, 70.0]]
    m = continual_metrics(rows)
    # task 1: best of stages 1-2 is 80, final 50 -> 30; task 2: 90 -> 85 = 5
    assert m["Forgetting"] == pytest.approx((30 + 5) / 2)
    # BWT compares with the diagonal: (50-60 + 85-90)/2
    assert m["BWT"] == pytest.approx((-10 - 5) / 2)


def test_seen_only_matrix_leaves_fwt_undefined():
    seen = [[80.0, NAN, NAN], [60.0, 90.0, NAN], [50.0, 70.0, 95.0]]
    m = continual_metrics(seen, ZS)
    assert math.isnan(m["FWT"])
    assert m["MFT"] == pytest.approx((80 + 90 + 95) / 3)
    assert m["BWT"] == pytest.approx(-25.0)
    assert m["MAA"] == pytest.approx(continual_metrics(FULL, ZS)["MAA"])


def test_missing_zero_shot_row_only_affects_fwt_and_zs():
    m = continual_metrics(FULL)
    assert math.isnan(m["FWT"]) and math.isnan(m["ZS"])
    assert m["MFN"] == pytest.approx((50 + 70 + 95) / 3)


def test_partial_run_through_two_tasks():
    partial = [[80.0, 25.0, 35.0], [60.0, 90.0, 40.0], [NAN, NAN, NAN]]
    assert math.isnan(continual_metrics(partial, ZS)["MFN"])
    m = continual_metrics(partial, ZS, through=2)
    assert m["MFT"] == pytest.approx(85.0)
    assert m["MFN"] == pytest.approx(75.0)
    assert m["BWT"] == pytest.approx(-20.0)
    assert m["FWT"] == pytest.approx(5.0)
    assert m["MAA"] == pytest.approx((80 + 75) / 2)


def test_single_task_and_single_stage():
    m = continual_metrics([[70.0]], [10.0])
    assert m["MFT"] == m["MFN"] == m["MAA"] == 70.0
    assert math.isnan(m["BWT"]) and math.isnan(m["FWT"])
    joint = single_stage_metrics([60.0, 80.0], [0.0, 10.0])
    assert joint["MFN"] == 70.0 and joint["ZS"] == 5.0
    assert all(math.isnan(joint[k]) for k in ("MFT", "MAA", "BWT", "Forgetting", "FWT"))


def test_ragged_matrix_is_refused():
    with pytest.raises(ValueError, match="row 2"):
        continual_metrics([[1.0, 2.0], [3.0]])


def _write(tmp_path, text):
    path = tmp_path / "m.csv"
    path.write_text(text)
    return str(path)


def test_csv_lower_triangle_with_zero_shot_row(tmp_path):
    path = _write(tmp_path, "trained,A,B,C\nzero-shot,10,20,30\nA,80,,\nB,60,90,\nC,50,70,95\n")
    tasks, rows, zs = read_matrix_csv(path)
    assert tasks == ["A", "B", "C"] and zs == ZS
    assert math.isnan(rows[0][1]) and rows[2] == [50.0, 70.0, 95.0]


def test_cli_metrics_json_matches_hand_values(tmp_path):
    path = _write(tmp_path, "task,A,B,C\n0,10,20,30\nA,80,25,35\nB,60,90,40\nC,50,70,95\n")
    out = subprocess.run(
        [sys.executable, "-m", "cvit_bench.harness.cli", "metrics", "--matrix", path, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["BWT"] == pytest.approx(-25.0)
    assert data["FWT"] == pytest.approx(7.5)
    assert data["Forgetting"] == pytest.approx(25.0)


def test_cli_metrics_lower_triangle_prints_table(tmp_path):
    path = _write(tmp_path, ",A,B\nA,80,nan\nB,60,90\n")
    out = subprocess.run(
        [sys.executable, "-m", "cvit_bench.harness.cli", "metrics", "--matrix", path],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "BWT" in out.stdout and "-20.00" in out.stdout
    assert "FWT" in out.stdout


@pytest.mark.parametrize(
    "text, message",
    [
        ("task,A,B\nA,80,x\nB,1,2\n", "line 2, column 3"),
        ("task,A\nA,1\nB,2\nC,3\n", "3 stage rows for 1 tasks"),
        ("only a header\n", "header row and at least one row"),
    ],
)
def test_cli_metrics_bad_csv_is_a_clear_error(tmp_path, text, message):
    path = _write(tmp_path, text)
    out = subprocess.run(
        [sys.executable, "-m", "cvit_bench.harness.cli", "metrics", "--matrix", path],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
