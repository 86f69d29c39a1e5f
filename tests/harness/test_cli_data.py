"""``data check`` and ``score`` through argparse, as the main CLI wires them."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from cvit_bench.harness.cli_data import register

_FIXTURES = Path(__file__).parents[1] / "plugins" / "benchmarks" / "conftest.py"
_spec = importlib.util.spec_from_file_location("bench_layouts", _FIXTURES)
layouts = importlib.util.module_from_spec(_spec)
sys.modules["bench_layouts"] = layouts
_spec.loader.exec_module(layouts)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cvit-bench")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_data_check_exit_status_and_json(tmp_path, capsys):
    root = layouts.make_coin(tmp_path / "coin")
    assert run("data", "check", "--bench", "coin", "--data-root", str(root)) == 0
    assert "OK: a run can start" in capsys.readouterr().out
    (root / "ImageNet" / "val" / "1.png").unlink()
    assert run("data", "check", "--bench", "coin", "--data-root", str(root), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    [problem] = [p for p in report["problems"] if p["severity"] == "error"]
    assert problem["file"].endswith("annotations/ImageNet/test.json")
    assert (problem["entry"], problem["field"]) == (0, "image")


def test_data_check_unknown_benchmark_and_no_root(capsys, monkeypatch):
    monkeypatch.delenv("CVIT_BENCH_DATA_ROOT", raising=False)
    assert run("data", "check", "--bench", "coni", "--data-root", "/tmp") == 2
    assert "Did you mean 'coin'" in capsys.readouterr().err
    assert run("data", "check", "--bench", "coin") == 2
    assert "--data-root" in capsys.readouterr().err


def test_score_published_merge_jsonl_in_any_order(tmp_path, capsys):
    root = layouts.make_coin(tmp_path / "coin")
    rows = [  # the published generators' fields, in an order no scorer should care about
        {
            "question_id": 34603,
            "prompt": "How many?",
            "text": "Two",
            "answer_id": "x",
            "model_id": "llava",
            "metadata": {},
        },
        {
            "question_id": 34602,
            "prompt": "What brand?",
            "text": "Samsung",
            "answer_id": "y",
            "model_id": "llava",
            "metadata": {},
        },
    ]
    merge = write_jsonl(tmp_path / "merge.jsonl", rows)
    code = run(
        "score",
        "--bench",
        "coin",
        "--task",
        "TextVQA",
        "--predictions",
        str(merge),
        "--data-root",
        str(root),
        "--json",
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"task", "primary", "metrics"}
    assert out["task"] == "TextVQA" and out["primary"]["name"] == "accuracy"
    # "Two" cleans to "2" (9 of 10 humans: 1.0); one human of 10 said samsung: 0.3
    assert out["primary"]["value"] == pytest.approx(65.0)


def test_score_modes_and_missing(tmp_path, capsys):
    root = layouts.make_coin(tmp_path / "coin")
    preds = write_jsonl(tmp_path / "p.jsonl", [{"question_id": "in-1", "text": ""}])
    base = [
        "score",
        "--bench",
        "coin",
        "--task",
        "ImageNet",
        "--predictions",
        str(preds),
        "--data-root",
        str(root),
        "--json",
    ]
    assert run(*base) == 1
    assert "have no prediction" in capsys.readouterr().err
    assert run(*base, "--missing", "wrong") == 0
    assert json.loads(capsys.readouterr().out)["primary"]["value"] == 50.0  # "" counts
    assert run(*base, "--missing", "wrong", "--mode", "fixed") == 0
    assert json.loads(capsys.readouterr().out)["primary"]["value"] == 0.0


def test_score_not_scored_task_prints_null_and_reason(tmp_path, capsys):
    root = layouts.make_mllm(tmp_path / "acl", "acl")
    preds = write_jsonl(tmp_path / "p.jsonl", [{"question_id": "testmini_1", "text": "3"}])
    args = [
        "score",
        "--bench",
        "mllm-acl",
        "--task",
        "Math",
        "--predictions",
        str(preds),
        "--data-root",
        str(root),
    ]
    assert run(*args, "--json") == 0
    assert json.loads(capsys.readouterr().out)["primary"]["value"] is None
    assert run(*args) == 0
    assert "not scored: the published Math" in capsys.readouterr().out


def test_score_reports_bad_prediction_lines(tmp_path, capsys):
    root = layouts.make_coin(tmp_path / "coin")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": "201", "text": "yes"}\n{"question_id": "202", "txt": "x"}\n')
    assert (
        run(
            "score",
            "--bench",
            "coin",
            "--task",
            "GQA",
            "--predictions",
            str(bad),
            "--data-root",
            str(root),
        )
        == 1
    )
    assert "line 2: field 'text': missing" in capsys.readouterr().err


def test_commands_through_the_main_cli(tmp_path, capsys):
    from cvit_bench.harness.cli import main

    root = layouts.make_mllm(tmp_path / "dcl", "dcl")
    assert main(["data", "check", "--bench", "mllm-dcl", "--data-root", str(root)]) == 0
    capsys.readouterr()
    preds = write_jsonl(tmp_path / "p.jsonl", [{"question_id": "med-1", "text": "not sure"}])
    args = [
        "score",
        "--bench",
        "mllm-dcl",
        "--task",
        "Med",
        "--predictions",
        str(preds),
        "--data-root",
        str(root),
        "--json",
    ]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["primary"]["value"] == 100.0
    assert main([*args, "--mode", "fixed"]) == 0
    assert json.loads(capsys.readouterr().out)["primary"]["value"] == 0.0
