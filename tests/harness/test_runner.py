from __future__ import annotations

import math

import pytest

from cvit_bench.harness import hookimpl
from cvit_bench.harness.cli import format_results
from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.errors import RunDirError, UsageError
from cvit_bench.harness.results import RunResults, read_table
from cvit_bench.harness.runner import Runner
from cvit_bench.testing import FakeBenchmark, FakeModel, FakeSequential, plugin_manager


def manager(*plugins, **methods):
    table = {"fake-seq": FakeSequential, **methods}
    return plugin_manager(
        methods=table,
        benchmarks={"fake-bench": FakeBenchmark},
        models={"fake-model": FakeModel},
        plugins=list(plugins),
    )


def run(tmp_path, name="run", mgr=None, **config):
    cfg = RunConfig(
        **{"method": "fake-seq", "bench": "fake-bench", "model": "fake-model", **config}
    )
    return Runner(cfg, tmp_path / name, manager=mgr or manager(), progress=False).run()


def test_full_run_writes_matrix_predictions_and_costs(tmp_path):
    results = run(tmp_path)
    assert results.complete and results.tasks == ["task1", "task2", "task3", "task4"]
    rows, zero_shot = results.matrix()
    assert zero_shot == [0.0] * 4
    assert [rows[i][i] for i in range(4)] == [100.0] * 4  # each task learned when trained
    assert rows[3][0] < rows[0][0]  # and the first one forgotten by the end
    metrics = results.metrics()
    assert metrics["MFT"] == 100.0 and metrics["BWT"] < 0
    preds = results.predictions(2, "task1")
    assert len(preds) == 12 and preds[0]["id"] == "0" and preds[0]["id_is_int"]
    assert {p["score"] for p in preds} <= {0.0, 100.0}
    stages = results.stages_table()
    assert [s["stage"] for s in stages] == [0, 1, 2, 3, 4]
    assert stages[1]["train_samples"] == 12 and stages[1]["trained_task"] == "task1"
    summary, prov = read_table(tmp_path / "run" / "summary.arrow", "summary")
    assert dict(zip(summary["metric"].to_pylist(), summary["value"].to_pylist()))["MFT"] == 100.0
    assert prov["benchmark_identity"]["version"] == "1" and prov["seed"] == 0
    assert prov["method"]["distribution"] == "cvit-bench-testing"
    assert "hardware" in prov and "git" in prov


class Crash(Exception):
    pass


class CrashingSeq(FakeSequential):
    """Dies in the middle of stage 3's training, like a killed process."""

    trained_stages: list[int] = []

    def before_task(self, ctx, task):
        CrashingSeq.trained_stages.append(ctx.stage)
        if (
            ctx.stage == 3
            and ctx.extras.get("crash", True)
            and not ctx.run_dir.joinpath("crashed-once").exists()
        ):
            ctx.run_dir.joinpath("crashed-once").write_text("x")
            raise Crash()


def test_resume_after_crash_redoes_only_the_unfinished_stage(tmp_path):
    reference = run(tmp_path, "ref")
    mgr = manager(**{"fake-seq": CrashingSeq})
    CrashingSeq.trained_stages = []
    with pytest.raises(Crash):
        run(tmp_path, "crashy", mgr=mgr)
    info = RunResults(tmp_path / "crashy").info
    assert info["finished_stages"] == [0, 1, 2] and info["status"] == "running"
    resumed = run(tmp_path, "crashy", mgr=manager(**{"fake-seq": CrashingSeq}))
    assert CrashingSeq.trained_stages == [1, 2, 3, 3, 4]
    assert resumed.matrix() == reference.matrix()
    assert resumed.complete


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
    first = run(tmp_path)
    mtime = (tmp_path / "run" / "matrix.arrow").stat().st_mtime_ns
    second = run(tmp_path)
    assert second.matrix() == first.matrix()
    assert (tmp_path / "run" / "matrix.arrow").stat().st_mtime_ns == mtime


def test_directory_with_another_config_is_refused_untouched(tmp_path):
    run(tmp_path)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(RunDirError, match="seed: 0 there, 1 now"):
        run(tmp_path, seed=1)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a cvit-bench run directory"):
        run(tmp_path, "other")


def test_task_order_and_seen_protocol(tmp_path):
    results = run(tmp_path, order=["task3", "task1", "task2", "task4"], eval={"eval_on": "seen"})
    assert results.tasks == ["task3", "task1", "task2", "task4"]
    rows, _ = results.matrix()
    assert math.isnan(rows[0][1]) and not math.isnan(rows[1][0])
    assert math.isnan(results.metrics()["FWT"])
    assert not math.isnan(results.metrics()["BWT"])
    assert results.trained[1] == "task3"


@pytest.mark.parametrize(
    "order, message",
    [
        (["task1", "task2"], "exactly once"),
        (["task1", "task2", "task3", "taskX"], "unknown task"),
        (["task1", "task1", "task2", "task3"], "exactly once"),
    ],
)
def test_bad_order_is_a_usage_error(tmp_path, order, message):
    with pytest.raises(UsageError, match=message):
        run(tmp_path, order=order)
    assert not (tmp_path / "run").exists()


def test_bad_plugin_option_fails_before_touching_disk(tmp_path):
    with pytest.raises(UsageError, match="unknown option.*'capacty'.*Did you mean 'capacity'"):
        run(tmp_path, model_args={"capacty": 3})
    assert not (tmp_path / "run").exists()


class Joint(FakeSequential):
    name = "fake-joint"
    schedule = "joint"


class ZeroShot(FakeSequential):
    name = "fake-zs"
    schedule = "none"


def test_joint_is_a_single_stage_run_without_fake_bwt(tmp_path):
    mgr = manager(**{"fake-joint": Joint})
    results = run(tmp_path, method="fake-joint", mgr=mgr, model_args={"capacity": 100})
    assert results.stages == [0, 1] and results.trained[1] == "joint"
    metrics = results.metrics()
    assert metrics["MFN"] == 100.0
    assert all(math.isnan(metrics[k]) for k in ("MFT", "BWT", "FWT", "MAA"))
    text = format_results(results)
    assert "single-stage run" in text and "BWT" not in text.split("single-stage")[0]


def test_zero_shot_method_only_evaluates(tmp_path):
    results = run(tmp_path, method="fake-zs", mgr=manager(**{"fake-zs": ZeroShot}))
    assert results.stages == [0]
    assert results.metrics()["ZS"] == 0.0
    assert "evaluation-only" in format_results(results)


def test_dry_run_plan_touches_nothing(tmp_path):
    cfg = RunConfig(method="fake-seq", bench="fake-bench")
    plan = Runner(cfg, tmp_path / "run", manager=manager(), progress=False).plan()
    assert [s["train"] for s in plan["stages"]] == ["", "task1", "task2", "task3", "task4"]
    assert plan["config"]["model"] == "fake-model"  # the benchmark's reference model
    assert plan["config"]["model_args"]["capacity"] == 18  # defaults resolved
    assert not (tmp_path / "run").exists()


def test_run_events_reach_observer_plugins_in_order(tmp_path):
    events = []

    class Logger:
        @hookimpl
        def run_started(self, run):
            events.append(("started", run["resumed_from_stage"]))

        @hookimpl
        def task_trained(self, run, stage, task, stats):
            events.append(("trained", stage, task, stats["samples"]))

        @hookimpl
        def task_evaluated(self, run, stage, task, metrics, primary):
            events.append(("evaluated", stage, task, primary))

        @hookimpl
        def run_finished(self, run, summary):
            events.append(("finished", summary["MFT"]))

    run(tmp_path, mgr=manager(Logger()))
    assert events[0] == ("started", 0)
    assert ("trained", 1, "task1", 12) in events
    assert ("evaluated", 0, "task4", "accuracy") in events
    assert events[-1] == ("finished", 100.0)
    assert events.index(("trained", 2, "task2", 12)) < events.index(
        ("evaluated", 2, "task1", "accuracy")
    )
