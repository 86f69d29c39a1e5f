"""Reading runs for the board: metrics from the matrix, flags, seeds, benchmark identities."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from lb_helpers import HOSTILE, Tree, make_run, set_git

from cvit_bench.harness.results import RunResults, write_table
from cvit_bench.leaderboard.board import make_board
from cvit_bench.leaderboard.collect import collect, read_run


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_metrics_are_recomputed_from_the_matrix_not_read_from_the_summary(
    tree: Tree, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tree.published["seq-s0"], run_dir)
    expected = RunResults(run_dir).metrics()
    # a summary that disagrees with the matrix (edited by hand, or written by a buggy tool)
    write_table(
        run_dir / "summary.arrow",
        "summary",
        [{"metric": name, "value": 99.0} for name in expected],
        {"edited": True},
    )
    record = read_run(run_dir)
    assert record.metrics.keys() == expected.keys()
    assert all(_same(record.metrics[k], expected[k]) for k in expected)
    assert record.metrics["MFN"] != 99.0


def test_published_runs_are_ranked_and_scratch_runs_hidden_unless_asked(tree: Tree) -> None:
    shown = collect([tree.results, tree.scratch])
    assert len(shown.runs) == len(tree.published)
    assert all(r.ranked for r in shown.runs)
    assert sorted(map(str, shown.scratch_skipped)) == sorted(
        str(p) for p in tree.scratch_runs.values()
    )
    everything = collect([tree.results, tree.scratch], include_scratch=True)
    assert len(everything.runs) == len(tree.published) + len(tree.scratch_runs)


def test_dirty_and_incomplete_runs_are_flagged_and_never_ranked(tree: Tree) -> None:
    dirty = read_run(tree.scratch_runs["dirty"])
    incomplete = read_run(tree.scratch_runs["incomplete"])
    assert {f.kind for f in dirty.flags} >= {"dirty", "scratch"}
    assert not dirty.ranked and dirty.status == "flagged"
    kinds = {f.kind: f for f in incomplete.flags}
    assert "incomplete" in kinds and "running" in kinds["incomplete"].detail
    assert not incomplete.ranked


def test_runs_without_git_state_are_not_ranked(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    set_git(run_dir, dirty=None, commit=None)
    record = read_run(run_dir)
    assert "tree-unknown" in {f.kind for f in record.flags}
    assert not record.ranked


def test_noncanonical_protocols_are_flagged(tmp_path: Path) -> None:
    seen = read_run(make_run(tmp_path / "seen", eval_on="seen"))
    assert "noncanonical" in {f.kind for f in seen.flags}
    assert math.isnan(seen.metrics["FWT"])  # the upper triangle is not there
    order = read_run(make_run(tmp_path / "order", order=["task2", "task1", "task3", "task4"]))
    flags = {f.kind: f for f in order.flags}
    assert "noncanonical" in flags and "order" in flags["noncanonical"].detail


def test_seeds_of_one_configuration_are_one_row_with_mean_and_spread(tree: Tree) -> None:
    board = make_board(collect([tree.results]))
    (bench,) = board.benchmarks
    rows = [r for r in bench.rows if r.first.method == "fake-seq" and len(r.runs) > 1]
    assert len(rows) == 1
    row = rows[0]
    assert sorted(row.seeds) == [0, 1, 2]
    values = [RunResults(p).metrics()["MAA"] for k, p in tree.published.items() if "seq-" in k]
    mean, spread = row.metrics["MAA"]
    assert mean == pytest.approx(statistics.mean(values))
    assert spread == pytest.approx(statistics.stdev(values))
    # other configurations stay separate rows
    assert {r.first.method for r in bench.rows} == {
        "fake-seq",
        "fake-replay",
        "fake-oracle",
        HOSTILE,
    }


def test_best_values_are_marked_among_ranked_rows_only(tree: Tree) -> None:
    board = make_board(collect([tree.results, tree.scratch], include_scratch=True))
    (bench,) = board.benchmarks
    ranked = [r for r in bench.rows if r.status == "ranked"]
    for name in ("MFN", "MAA", "BWT"):
        best = max(r.metrics[name][0] for r in ranked)
        marked = [r for r in bench.rows if name in r.best]
        assert marked and all(r.metrics[name][0] == best for r in marked)
        assert all(r.status == "ranked" for r in marked)
    # ranks follow MFN among ranked rows; flagged rows have none
    ranks = [r.rank for r in bench.rows if r.status == "ranked"]
    assert ranks == list(range(1, len(ranked) + 1))
    mfn = [r.metrics["MFN"][0] for r in ranked]
    assert mfn == sorted(mfn, reverse=True)
    assert all(r.rank is None for r in bench.rows if r.status != "ranked")


def test_runs_of_different_benchmark_versions_are_never_in_one_table(tmp_path: Path) -> None:
    v1 = make_run(tmp_path / "v1")
    v2 = make_run(tmp_path / "v2", bench_version="2")
    board = make_board(collect([v1, v2], include_scratch=True))
    assert len(board.benchmarks) == 2
    assert sorted(b.version for b in board.benchmarks) == ["1", "2"]
    assert all(len(b.runs) == 1 for b in board.benchmarks)
    assert len({b.slug for b in board.benchmarks}) == 2


def test_joint_runs_are_reference_rows_without_rank_or_best_marks(
    tree: Tree, tmp_path: Path
) -> None:
    joint = make_run(tmp_path / "joint", method="fake-joint", capacity=48)
    board = make_board(collect([tree.published["seq-s0"], joint], include_scratch=True))
    (bench,) = board.benchmarks
    (row,) = [r for r in bench.rows if r.first.method == "fake-joint"]
    assert row.status == "reference" and row.rank is None and not row.best
    assert row.metrics["MFN"][0] == 100.0  # joint training remembers everything here
    assert math.isnan(row.metrics["BWT"][0])  # a sequence metric, undefined for one stage
    assert bench.best["MFN"] < 100.0  # the joint row's 100 is not the best of the table


def test_the_index_marks_the_latest_version_and_old_pages_link_to_it(tmp_path: Path) -> None:
    from cvit_bench.leaderboard.site import build_site

    v1 = make_run(tmp_path / "v1")
    v2 = make_run(tmp_path / "v2", bench_version="2")
    site = tmp_path / "site"
    build_site([v1, v2], site, include_scratch=True, jobs=1)
    index = (site / "index.html").read_text()
    assert index.count(">latest</span>") == 1
    old_page = (site / "b" / "fake-bench-v1-exact" / "index.html").read_text()
    assert "A newer version of this benchmark" in old_page
    assert 'href="../../b/fake-bench-v2-exact/index.html"' in old_page
    new_page = (site / "b" / "fake-bench-v2-exact" / "index.html").read_text()
    assert "A newer version" not in new_page


def test_unreadable_runs_are_listed_not_dropped_silently(tree: Tree, tmp_path: Path) -> None:
    broken = tmp_path / "results" / "broken"
    shutil.copytree(tree.published["seq-s0"], broken)
    (broken / "matrix.arrow").write_bytes(b"not arrow at all")
    (tmp_path / "results" / "corrupt").mkdir()
    (tmp_path / "results" / "corrupt" / "run.json").write_text("{ not json")
    out = collect([tmp_path / "results"], include_scratch=True)
    assert not out.runs
    assert sorted(Path(u.run_dir).name for u in out.unreadable) == ["broken", "corrupt"]
    assert any("matrix.arrow" in u.error for u in out.unreadable)


def test_the_same_run_found_twice_is_shown_once(tree: Tree, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tree.published["seq-s0"], copy)
    out = collect([tree.results, copy])
    assert len(out.runs) == len(tree.published)
    assert [p.name for p in out.duplicates] == ["copy"] or len(out.duplicates) == 1


def test_costs_come_from_the_stages_file(tree: Tree) -> None:
    replay = read_run(tree.published["replay-s0"])
    seq = read_run(tree.published["seq-s0"])
    assert replay.costs["stored_samples"] == 8  # two samples of each of the 4 tasks
    assert seq.costs["stored_samples"] == 0
    stages = replay.stages_table
    assert replay.costs["wall_s"] == pytest.approx(sum(s["wall_s"] for s in stages))
    assert replay.requirements["stores_samples"] is True
    oracle = read_run(tree.published["oracle-s0"])
    assert oracle.needs_task_identity is True and seq.needs_task_identity is False


def test_config_groups_ignore_seed_and_tags_only(tree: Tree) -> None:
    runs = {k: read_run(p) for k, p in tree.published.items()}
    assert runs["seq-s0"].config_key == runs["seq-s1"].config_key
    assert runs["seq-s0"].config_key != runs["hostile-s0"].config_key
    info = json.loads((tree.published["seq-s0"] / "run.json").read_text())
    assert info["config"]["seed"] == 0
