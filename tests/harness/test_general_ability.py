"""General ability (lmms-eval tasks) as the harness sees it: options checked before training,
the result file and retention, and the message when the ``lmms`` extra is missing."""

from __future__ import annotations

import math
import sys

import pyarrow as pa
import pytest

from cvit_bench.harness.cli import format_results
from cvit_bench.harness.config import RunConfig, resolve_run_config
from cvit_bench.harness.errors import ResultFileError, UsageError
from cvit_bench.harness.results import RunResults, read_table, write_table
from cvit_bench.harness.runner import Runner
from cvit_bench.testing import FakeBenchmark, FakeModel, FakeSequential, plugin_manager


def runner(tmp_path, **eval_options):
    config = RunConfig(method="fake-seq", bench="fake-bench", model="fake-model", eval=eval_options)
    manager = plugin_manager(
        methods={"fake-seq": FakeSequential},
        benchmarks={"fake-bench": FakeBenchmark},
        models={"fake-model": FakeModel},
    )
    return Runner(config, tmp_path / "run", manager=manager, progress=False)


def test_without_the_extra_asking_for_general_tasks_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmms_eval", None)  # as if lmms-eval were not installed
    with pytest.raises(UsageError) as err:
        runner(tmp_path, general_tasks=["mme"]).run()
    message = str(err.value)
    assert "pip install 'cvit-bench[lmms]'" in message
    assert "pip install --no-deps 'lmms-eval==" in message
    assert not (tmp_path / "run").exists()  # refused before anything was written or trained


def test_a_run_without_general_tasks_needs_no_lmms_eval(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmms_eval", None)
    results = runner(tmp_path).run()
    assert results.complete and results.general() == [] and results.retention() == {}
    assert not (tmp_path / "run" / "general.arrow").exists()
    assert "general ability" not in format_results(results)


def test_general_stages_default_to_first_and_last_and_must_exist(tmp_path):
    assert runner(tmp_path, general_tasks=["x"]).general_stages(4) == [0, 4]
    assert runner(tmp_path, general_tasks=["x"], zero_shot=False).general_stages(4) == [1, 4]
    assert runner(tmp_path, general_tasks=["x"], general_stages=[2]).general_stages(4) == [2]
    assert runner(tmp_path, general_stages=[2]).general_stages(4) == []  # no tasks, no stages
    with pytest.raises(UsageError, match=r"general_stages names stage\(s\) \[7\]"):
        runner(tmp_path, general_tasks=["x"], general_stages=[0, 7]).general_stages(4)
    plan = runner(tmp_path, general_tasks=["mme"], general_stages=[2]).plan()  # --dry-run
    assert [s["general"] for s in plan["stages"]] == [[], [], ["mme"], [], []]


def test_general_options_enter_the_config_identity_only_when_used():
    plain = resolve_run_config()
    assert plain.identity() == resolve_run_config(overrides=["eval.general_limit=5"]).identity()
    used = resolve_run_config(overrides=["eval.general_tasks=[mme]"])
    assert used.eval.general_tasks == ["mme"] and used.identity() != plain.identity()


def general_row(stage, task, metric, value, primary=True):
    return {
        "stage": stage,
        "trained_task": "" if stage == 0 else f"t{stage}",
        "task": task,
        "metric": metric,
        "filter": "none",
        "value": value,
        "stderr": None,
        "primary": primary,
        "higher_is_better": True,
        "n": 10,
    }


def test_general_file_reads_with_plain_pyarrow_and_gives_retention(tmp_path):
    run_dir = runner(tmp_path).run().run_dir
    rows = [
        general_row(0, "mme", "score", 0.5),
        general_row(0, "mme", "chars", 9.0, primary=False),
        general_row(4, "mme", "score", 0.4),
        general_row(4, "mme", "chars", 1.0, primary=False),
        general_row(0, "pope", "acc", 0.0),
        general_row(4, "pope", "acc", 0.3),
    ]
    write_table(run_dir / "general.arrow", "general", rows, {"seed": 0})
    table = pa.ipc.open_file(str(run_dir / "general.arrow")).read_all()
    assert table.schema.metadata[b"cvit_bench.kind"] == b"general"
    assert table.num_rows == 6
    results = RunResults(run_dir)
    kept = results.retention()
    assert kept["mme"]["metric"] == "score" and kept["mme"]["stage"] == 4
    assert kept["mme"]["retention"] == pytest.approx(0.8)
    assert math.isnan(kept["pope"]["retention"])  # nothing to keep: it scored 0 before training
    text = format_results(results)
    assert "general ability" in text and "mme (score)" in text
    assert "retention  mme: 0.4 after stage 4 / 0.5 before training = 80.0%" in text


def test_a_general_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "general.arrow"
    write_table(path, "summary", [{"metric": "MFN", "value": 1.0}], {})
    with pytest.raises(ResultFileError, match="expected a 'general' result file"):
        read_table(path, "general")
