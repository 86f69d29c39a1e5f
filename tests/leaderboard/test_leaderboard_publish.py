"""``cvit-bench publish``: what it accepts, what it refuses and what it copies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lb_helpers import make_run, manager, rename_method, rewrite_provenance

from cvit_bench.harness.errors import RunDirError
from cvit_bench.harness.results import RunResults
from cvit_bench.leaderboard import cli as board_cli
from cvit_bench.leaderboard.collect import read_run
from cvit_bench.leaderboard.publish import check_run, publish


def test_a_clean_finished_run_is_copied_without_checkpoints(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", method="fake-replay")
    assert (run_dir / "checkpoints").is_dir()
    dest = publish(run_dir, tmp_path / "results", manager=manager())
    assert dest.parent == tmp_path / "results" / "fake-bench"
    assert not (dest / "checkpoints").exists()
    for name in ("run.json", "config.yaml", "matrix.arrow", "stages.arrow", "summary.arrow"):
        assert (dest / name).read_bytes() == (run_dir / name).read_bytes()
    assert len(list((dest / "predictions").rglob("*.arrow"))) == 5 * 4
    record = json.loads((dest / "publish.json").read_text())
    assert record["config_identity"] == RunResults(run_dir).info["config_identity"]
    assert read_run(dest).ranked and not read_run(run_dir).published


def test_refuses_a_run_from_a_dirty_tree(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", clean=False)
    with pytest.raises(RunDirError, match="uncommitted changes"):
        publish(run_dir, tmp_path / "results", manager=manager())
    assert not (tmp_path / "results").exists()


def test_refuses_an_unfinished_run_and_lists_every_problem(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", stop_after=2, clean=False)
    _, problems = check_run(run_dir, manager())
    text = "\n".join(problems)
    assert "'running'" in text and "cell(s) missing" in text and "uncommitted" in text
    with pytest.raises(RunDirError) as err:
        publish(run_dir, tmp_path / "results", manager=manager())
    assert str(err.value).count("\n  - ") == len(problems)


def test_refuses_a_stale_benchmark_version(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")  # made with version 1
    with pytest.raises(RunDirError, match="version '1' is not the canonical version '2'"):
        publish(run_dir, tmp_path / "results", manager=manager(bench_version="2"))


def test_refuses_noncanonical_protocols(tmp_path: Path) -> None:
    seen = make_run(tmp_path / "seen", eval_on="seen")
    with pytest.raises(RunDirError, match="eval_on is 'seen'"):
        publish(seen, tmp_path / "results", manager=manager())
    order = make_run(tmp_path / "order", order=["task4", "task3", "task2", "task1"])
    with pytest.raises(RunDirError, match="published order"):
        publish(order, tmp_path / "results", manager=manager())


def test_refuses_to_overwrite_a_published_run(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    publish(run_dir, tmp_path / "results", manager=manager())
    with pytest.raises(RunDirError, match="already exists"):
        publish(run_dir, tmp_path / "results", manager=manager())


def test_missing_predictions_are_refused(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    next((run_dir / "predictions" / "stage_2").glob("*.arrow")).unlink()
    with pytest.raises(RunDirError, match="predictions of stage 2"):
        publish(run_dir, tmp_path / "results", manager=manager())


def test_hostile_names_do_not_escape_the_results_tree(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    rename_method(run_dir, "../../../etc/<script>")
    dest = publish(run_dir, tmp_path / "results", manager=manager())
    assert dest.resolve().is_relative_to((tmp_path / "results").resolve())
    assert "/" not in dest.name and "<" not in dest.name


def test_cli_publish_wiring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from cvit_bench.harness.cli import CommandGroups

    parser = argparse.ArgumentParser(prog="cvit-bench")
    groups = CommandGroups(parser.add_subparsers(dest="command", required=True))
    board_cli.register(groups)
    args = parser.parse_args(["publish", str(tmp_path / "run"), "--to", str(tmp_path / "res")])
    assert args.func is board_cli.cmd_publish and args.results_dir == str(tmp_path / "res")
    run_dir = make_run(tmp_path / "run")
    import cvit_bench.leaderboard.publish as publish_module

    real = publish_module.publish
    monkeypatch.setattr(publish_module, "publish", lambda run, to: real(run, to, manager=manager()))
    assert args.func(args) == 0
    assert len(list((tmp_path / "res" / "fake-bench").iterdir())) == 1
    assert run_dir.exists()


def _coin_run(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A finished run of the installed ``coin`` benchmark (no data needed: results only)."""
    from cvit_bench.harness.config import build_dataclass
    from cvit_bench.harness.plugins import get_plugin_manager
    from cvit_bench.leaderboard.synthetic import FakeRunSpec, write_fake_run

    coin_cls = get_plugin_manager().benchmark("coin")
    bench_args = changes.pop("bench_args", {})
    coin = coin_cls(build_dataclass(coin_cls.config_class, bench_args, "bench_args"))
    changes.setdefault("tasks", [t.name for t in coin.tasks()])
    spec = FakeRunSpec(
        bench="coin",
        identity=coin.identity(),
        bench_args=bench_args,
        samples=4,
        **changes,
    )
    return write_fake_run(tmp_path / name, spec)


def test_publish_checks_against_the_installed_benchmark_plugin(tmp_path: Path) -> None:
    results = tmp_path / "results"
    dest = publish(_coin_run(tmp_path, "ok"), results)
    assert dest.parent.name == "coin"
    fixed = publish(_coin_run(tmp_path, "fixed", bench_args={"scoring_mode": "fixed"}), results)
    assert read_run(fixed).identity["scoring_mode"] == "fixed"
    # a run that recorded an older version of the benchmark
    stale = _coin_run(tmp_path, "stale", seed=1)
    rewrite_provenance(stale, lambda p: p["benchmark_identity"].update(version="0.9"))
    with pytest.raises(RunDirError, match="version '0.9' is not the canonical version"):
        publish(stale, results)
    # the published order of COIN's tasks is checked against the plugin's
    shuffled = _coin_run(
        tmp_path,
        "shuffled",
        seed=2,
        tasks=["TextVQA", "ScienceQA", "ImageNet", "GQA", "VizWiz", "Grounding", "VQAv2", "OCRVQA"],
    )
    with pytest.raises(RunDirError, match="published order"):
        publish(shuffled, results)
    # published runs of both scoring modes land on separate pages
    from cvit_bench.leaderboard.board import make_board
    from cvit_bench.leaderboard.collect import collect

    board = make_board(collect([results]))
    assert sorted(b.scoring_mode for b in board.benchmarks) == ["fixed", "published"]
