"""lmms-eval interop on a tiny synth-coin run with tiny-llava: the general-ability record a run
writes equals what lmms-eval's own command line reports for the same stage, offline."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "lmms_eval",
    reason="lmms-eval is not installed: pip install 'cvit-bench[lmms]' && "
    "pip install --no-deps 'lmms-eval==0.7.3'",
)

from lmms_task import TASK, write_shapes_task  # noqa: E402

from cvit_bench.harness.cli import main as cli_main  # noqa: E402
from cvit_bench.harness.config import RunConfig, build_dataclass  # noqa: E402
from cvit_bench.harness.errors import UsageError  # noqa: E402
from cvit_bench.harness.results import RunResults, read_table  # noqa: E402
from cvit_bench.harness.runner import Runner  # noqa: E402

# the small synth-coin run of the method tests: 8 tasks, 2 steps of 4 samples each
SMALL_RUN = {
    "method": "seqlora",
    "bench": "synth-coin",
    "model": "tiny-llava",
    "bench_args": {"train_per_task": 8, "eval_per_task": 4},
    "model_args": {"pretrain_steps": 0},
    "train": {"max_steps": 2, "batch_size": 4, "lr": 5e-3},
    "eval": {"batch_size": 32, "max_new_tokens": 4, "eval_on": "seen", "controls": False},
}


def offline_env(cache: Path) -> dict[str, str]:
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LMMS_EVAL_DATASETS_CACHE": str(cache),
    }


@pytest.fixture(scope="module")
def general_run(shapes_task: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    """The small run, scoring the shapes task as general ability before and after training."""
    import torch

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("general_run")
    data = {
        **SMALL_RUN,
        "cache_dir": str(root / "cache"),
        "eval": {
            **SMALL_RUN["eval"],
            "general_tasks": [TASK],
            "general_include_path": [str(shapes_task)],
        },
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in offline_env(root / "datasets").items():
            mp.setenv(key, value)
        config = build_dataclass(RunConfig, data, "config")
        return Runner(config, root / "run", progress=False).run()


def general_scores(results: RunResults, stage: int) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in results.general() if r["stage"] == stage}


@pytest.mark.slow
def test_lmms_eval_cli_scores_a_stage_as_the_run_did(general_run, shapes_task, tmp_path):
    last = max(general_run.stages)
    out = tmp_path / "lmms_out"
    command = [
        sys.executable,
        "-m",
        "lmms_eval",
        "--model",
        "cvit_bench",
        "--model_args",
        f"run_dir={general_run.run_dir},stage={last}",
        "--tasks",
        TASK,
        "--include_path",
        str(shapes_task),
        "--batch_size",
        "4",
        "--output_path",
        str(out),
    ]
    # a fresh shell's environment: the run in this process set up a process group of its own
    launcher = {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    }
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env.update(offline_env(tmp_path / "datasets"), OMP_NUM_THREADS="2")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(out.rglob("*_results.json"))
    assert files, f"lmms-eval wrote no results under {out}: {done.stdout[-2000:]}"
    reported = json.loads(files[-1].read_text())["results"][TASK]
    cli = {k.split(",")[0]: v for k, v in reported.items() if k.endswith(",none")}
    in_run = general_scores(general_run, last)
    assert set(in_run) == {"exact_match", "chars", "fingerprint"}
    for metric, value in in_run.items():
        assert cli[metric] == pytest.approx(value, rel=0, abs=1e-12), metric
    # training changed the answers, so the command line did load the stage's checkpoint
    assert general_scores(general_run, 0)["fingerprint"] != in_run["fingerprint"]


@pytest.mark.slow
def test_run_records_general_ability_beside_the_matrix(general_run, tmp_path, capsys):
    last = max(general_run.stages)
    table, provenance = read_table(general_run.run_dir / "general.arrow", "general")
    assert sorted(set(table.column("stage").to_pylist())) == [0, last]  # default stages
    assert provenance["general_tasks"] == [TASK] and provenance["lmms_eval_version"]
    rows = general_run.general()
    assert {(r["task"], r["metric"], r["primary"]) for r in rows if r["stage"] == 0} == {
        (TASK, "exact_match", True),
        (TASK, "chars", False),
        (TASK, "fingerprint", False),
    }
    assert all(r["n"] == 6 and r["filter"] == "none" for r in rows)
    assert general_run.retention()[TASK]["stage"] == last
    assert cli_main(["show", str(general_run.run_dir)]) == 0
    shown = capsys.readouterr().out
    assert "general ability (lmms-eval" in shown and f"retention  {TASK}:" in shown
    site = tmp_path / "site"
    assert (
        cli_main(
            [
                "leaderboard",
                "build",
                str(general_run.run_dir),
                "--out",
                str(site),
                "--include-scratch",
            ]
        )
        == 0
    )
    run_pages = list((site / "r").glob("*/index.html"))
    assert len(run_pages) == 1 and "General ability (lmms-eval)" in run_pages[0].read_text()
    board = next((site / "b").glob("*/index.html")).read_text()
    assert "GR ↑" in board


def test_unknown_general_task_is_refused_before_training(shapes_task, tmp_path):
    data = {
        **SMALL_RUN,
        "cache_dir": str(tmp_path / "cache"),
        "eval": {"general_tasks": ["cvit_shapez"], "general_include_path": [str(shapes_task)]},
    }
    runner = Runner(build_dataclass(RunConfig, data, "config"), tmp_path / "run", progress=False)
    with pytest.raises(UsageError, match=f"no task 'cvit_shapez'.*Did you mean {TASK}"):
        runner.run()
    assert not (tmp_path / "run").exists()


def test_a_log_likelihood_task_is_refused_before_training(tmp_path):
    from cvit_bench.plugins.lmms import general

    folder = write_shapes_task(tmp_path / "tasks")
    yaml = (folder / "shapes.yaml").read_text()
    (folder / "choice.yaml").write_text(
        yaml.replace(f"task: {TASK}", "task: cvit_choice").replace(
            "output_type: generate_until", "output_type: multiple_choice"
        )
    )
    general.check([TASK], [str(folder)])
    with pytest.raises(UsageError, match="'cvit_choice' is a multiple_choice task"):
        general.check([TASK, "cvit_choice"], [str(folder)])


def test_the_extra_leaves_no_torchvision_and_image_processors_work():
    """lmms-eval is installed without torchvision, and transformers' image processors (which
    a CUDA-only torchvision breaks) still process an image with the CPU torch."""
    from PIL import Image
    from transformers import CLIPImageProcessor

    assert importlib.util.find_spec("torchvision") is None
    import lmms_eval.evaluator  # noqa: F401  (imported as a run imports it)

    processor = CLIPImageProcessor(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    pixels = processor(images=Image.new("RGB", (20, 24), (10, 200, 30)), return_tensors="pt")
    assert tuple(pixels["pixel_values"].shape) == (1, 3, 16, 16)
