from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cvit_bench.harness.cli import main

CLI = [sys.executable, "-m", "cvit_bench.harness.cli"]


def test_list_does_not_import_heavy_modules():
    code = (
        "import sys; from cvit_bench.harness.cli import main; main(['list']); "
        "heavy = [m for m in ('torch', 'transformers', 'deepspeed', 'peft', 'pyarrow') "
        "if m in sys.modules]; print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout


def test_list_json_shape():
    out = subprocess.run([*CLI, "list", "--json"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert set(data) == {"methods", "benchmarks", "models", "broken_plugins"}
    for entry in data["methods"] + data["benchmarks"] + data["models"]:
        assert entry["distribution"] and entry["name"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--set", "train.lr"], "--set expects key=value"),
        (["run", "--set", "train.epochs=many", "--dry-run"], "train.epochs expects a number"),
        (["run", "--set", "eval.eval_on=some", "--dry-run"], "must be one of ['all', 'seen']"),
        (
            ["run", "--config", "/nonexistent/cfg.yaml"],
            "config file /nonexistent/cfg.yaml does not exist",
        ),
        (
            ["run", "--set", "trian.lr=1", "--dry-run"],
            "unknown option(s) 'trian'. Did you mean 'train'?",
        ),
    ],
)
def test_bad_usage_is_one_message_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_argparse_errors_exit_2():
    out = subprocess.run([*CLI, "run", "--seed", "x"], capture_output=True, text=True)
    assert out.returncode == 2 and "invalid int value" in out.stderr


def test_malformed_yaml_config(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("method: [unclosed\n")
    assert main(["run", "--config", str(path)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err


def test_show_on_a_non_run_directory(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 1
    assert "not a cvit-bench run directory" in capsys.readouterr().err


def test_describe_run_lists_documented_options(capsys):
    assert main(["describe", "run"]) == 0
    out = capsys.readouterr().out
    assert "seed (int, default 0)" in out and "task order" in out
    assert "train.lr (float, default 0.0002)" in out  # nested sections as --set names
    assert "eval.eval_on (str, default 'all') {all, seen}" in out
