"""The synthetic run generator writes runs the harness reads back as valid and consistent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cvit_bench.harness.results import RunResults, read_table
from cvit_bench.leaderboard.collect import read_run
from cvit_bench.leaderboard.site import build_site
from cvit_bench.leaderboard.synthetic import FakeRunSpec, generate, write_fake_run


def test_a_synthetic_run_is_valid_and_self_consistent(tmp_path: Path) -> None:
    run_dir = write_fake_run(tmp_path / "run", FakeRunSpec(method="replay", seed=3, samples=10))
    results = RunResults(run_dir)
    assert results.complete and results.stages == list(range(9))
    summary, _ = read_table(run_dir / "summary.arrow", "summary")
    recorded = {r["metric"]: r["value"] for r in summary.to_pylist()}
    for name, value in results.metrics().items():
        assert recorded[name] == pytest.approx(value, nan_ok=True)
    for stage in (0, 4, 8):
        for task in results.tasks:
            scores = [p["score"] for p in results.predictions(stage, task)]
            assert sum(scores) / len(scores) == pytest.approx(results.score(stage, task))
    record = read_run(run_dir)
    assert record.ranked and record.costs["stored_samples"] == 400


def test_flagged_runs_and_seed_groups(tmp_path: Path) -> None:
    dirs = generate(tmp_path, 12, n_tasks=3, samples=4, seeds=3, flagged_every=4)
    records = [read_run(d) for d in dirs]
    assert sum(1 for r in records if not r.ranked) == 3
    assert {r.seed for r in records} == {0, 1, 2}
    assert not math.isnan(records[0].metrics["FWT"])
    report = build_site([tmp_path], tmp_path / "site", jobs=1)
    assert report.runs == 12 and report.pages == 1 + 1 + 12 * (1 + 3)
