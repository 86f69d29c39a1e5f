"""The image controls: right after a task is trained, the runner scores it again with blank
images and scores its majority answer, so a reader can tell learning from answer priors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cvit_bench.harness.cli import main
from cvit_bench.harness.config import RunConfig, build_dataclass
from cvit_bench.harness.results import RunResults
from cvit_bench.harness.runner import Runner
from cvit_bench.harness.types import Prediction
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
from cvit_bench.testing import plugin_manager
from cvit_bench.testing.toy import make_context

SMALL = {
    "method": "seqlora",
    "bench": "synth-coin",
    "model": "tiny-llava",
    "bench_args": {"train_per_task": 8, "eval_per_task": 4},
    "model_args": {"pretrain_steps": 0},
    "train": {"max_steps": 1, "batch_size": 4, "lr": 5e-3},
    "eval": {"batch_size": 32, "max_new_tokens": 4, "zero_shot": False, "eval_on": "seen"},
}


class RecordingTinyLlava(TinyLlava):
    """tiny-llava whose engine remembers every image it was asked to answer about."""

    seen: list[tuple[str, str, str]] = []  # (task, image path, prediction)

    def create_engine(self, ctx: Any) -> Any:
        engine = super().create_engine(ctx)
        predict = engine.predict

        def recording_predict(ctx: Any, task: Any, samples: Any) -> Any:
            samples = list(samples)
            predictions = list(predict(ctx, task, samples))
            by_id = {p.id: p.text for p in predictions}
            self.seen.extend((task.name, s.image, by_id[s.id]) for s in samples)
            return predictions

        engine.predict = recording_predict
        return engine


def run(tmp_path: Path, **overrides: Any) -> RunResults:
    RecordingTinyLlava.seen = []
    manager = plugin_manager(
        methods={"seqlora": SeqLoRA},
        benchmarks={"synth-coin": SynthCoin},
        models={"tiny-llava": RecordingTinyLlava},
    )
    data = {**SMALL, "cache_dir": str(tmp_path / "cache"), **overrides}
    config = build_dataclass(RunConfig, data, "config")
    return Runner(config, tmp_path / "run", manager=manager, progress=False).run()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[RunResults, list[tuple[str, str, str]]]:
    tmp = tmp_path_factory.mktemp("controls")
    return run(tmp), list(RecordingTinyLlava.seen)


def test_each_task_is_controlled_right_after_its_training(small_run):
    results, _ = small_run
    controls = results.controls()
    assert [r["task"] for r in controls] == results.tasks
    assert [r["stage"] for r in controls] == list(range(1, len(results.tasks) + 1))
    for row in controls:
        # the control's own score is the matrix diagonal
        assert row["score"] == results.score(row["stage"], row["task"])
        assert 0.0 <= row["blank_image"] <= 100.0
        assert row["n"] == 4


def test_majority_is_the_most_frequent_training_answer(small_run):
    results, _ = small_run
    bench = _bench(results)
    for row in results.controls():
        # synth-coin's own image-free baselines, computed independently of the runner
        assert row["majority"] == pytest.approx(bench.baselines(row["task"])["majority"])
        answers = [s.answer for s in bench.train_samples(row["task"])]
        assert answers.count(row["majority_answer"]) == max(map(answers.count, answers))


def test_blank_control_feeds_one_grey_image_and_scores_those_answers(small_run):
    results, seen = small_run
    for row in results.controls():
        blank = [
            (image, text)
            for task, image, text in seen
            if task == row["task"] and "controls" in Path(image).parts
        ]
        assert len(blank) == 4  # once per task, after its own training only
        paths = {image for image, _ in blank}
        assert len(paths) == 1
        with Image.open(paths.pop()) as image:
            assert image.getextrema() == ((128, 128), (128, 128), (128, 128))
        bench = _bench(results)
        references = list(bench.eval_samples(row["task"]))
        with Image.open(references[0].image) as real:
            assert image.size == real.size
        score = bench.score(
            row["task"],
            [Prediction(id=r.id, text=text) for r, (_, text) in zip(references, blank)],
            references,
        )
        assert row["blank_image"] == score.value


def test_show_prints_the_controls_and_they_can_be_turned_off(small_run, tmp_path, capsys):
    results, _ = small_run
    assert main(["show", str(results.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "blank image" in out and "majority" in out
    for task in results.tasks:
        assert any(line.startswith(task) for line in out.splitlines())
    off = run(tmp_path, eval={**SMALL["eval"], "controls": False})
    assert off.complete and off.controls() == []
    assert not (off.run_dir / "controls.arrow").exists()
    assert main(["show", str(off.run_dir)]) == 0
    assert "blank image" not in capsys.readouterr().out


def _bench(results: RunResults) -> SynthCoin:
    """The run's synth-coin, read back from the run's cache."""
    config = results.info["config"]
    bench = SynthCoin(SynthCoin.config_class(**config["bench_args"]))
    ctx = make_context(results.run_dir.parent / "ctx", bench, None)
    bench.prepare(dataclasses.replace(ctx, cache_dir=Path(config["cache_dir"])))
    return bench
