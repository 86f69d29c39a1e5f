"""Loading a finished stage of a real run (the session's ``tiny_run_dir``) and asking it."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from cvit_bench.harness.errors import RunDirError, UnknownNameError
from cvit_bench.harness.results import RunResults
from cvit_bench.harness.stage_loader import finished_stages, load_stage
from cvit_bench.harness.types import Turn

SEEN_AT_2 = ["ScienceQA", "TextVQA"]  # the run evaluates the tasks seen so far


@pytest.fixture(scope="module")
def stage2(tiny_run_dir):
    return load_stage(tiny_run_dir, 2)


def stored(run_dir: Path, stage: int, task: str) -> dict[str, str]:
    return {r["id"]: r["prediction"] for r in RunResults(run_dir).predictions(stage, task)}


def test_loaded_stage_reproduces_the_stored_predictions(tiny_run_dir, stage2):
    assert stage2.stage == 2 and stage2.finished_stages == list(range(9))
    assert "stage 2 of 8, after TextVQA" in stage2.describe()
    changed = 0
    for task in SEEN_AT_2:
        want = stored(tiny_run_dir, 2, task)
        got = {str(p.id): p.text for p in stage2.predict(task)}
        assert got == want, task
        changed += sum(want[i] != stored(tiny_run_dir, 0, task)[i] for i in want)
    assert changed > 0, "stage 2 answers like the untrained model: no checkpoint was loaded?"


def test_single_questions_get_the_stored_answers(tiny_run_dir, stage2):
    """One question at a time (the chat path) and batched, through the method's routing."""
    for task in SEEN_AT_2:
        want = stored(tiny_run_dir, 2, task)
        samples = list(stage2.benchmark.eval_samples(task))
        assert [stage2.answer(s.prompt, image=s.image) for s in samples] == [
            want[str(s.id)] for s in samples
        ]
        assert stage2.generate(samples, batch_size=2) == [want[str(s.id)] for s in samples]


def test_streamed_pieces_join_to_the_answer(stage2):
    streamed = 0
    for task in SEEN_AT_2:
        for sample in stage2.benchmark.eval_samples(task):
            pieces: list[str] = []
            answer = stage2.answer(sample.prompt, image=sample.image, on_text=pieces.append)
            assert "".join(pieces).strip() == answer, (task, sample.id, pieces)
            streamed += len(pieces) > 1
    # a barely trained model's answers: some of them arrive in several pieces
    assert streamed, "every answer arrived in one piece: nothing was streamed"


def test_a_first_question_is_laid_out_as_in_evaluation(stage2):
    adapter = stage2.model
    sample = stage2.benchmark.eval_samples("ScienceQA")[0]
    chat = adapter.collate_chat([], sample.prompt, sample.image)
    evaluation = adapter.collate_eval([sample])
    assert chat["input_ids"].tolist() == evaluation["input_ids"].tolist()
    assert chat["pixel_values"].equal(evaluation["pixel_values"])
    assert stage2.prompt(sample.prompt, sample.image) == adapter.template.render(sample)


def test_history_is_laid_out_as_multi_turn_training(stage2):
    """The earlier exchange, its EOS, then the new question: the ids of a two-turn training
    sample up to the second answer."""
    from cvit_bench.harness.types import Sample

    adapter = stage2.model
    first = stage2.benchmark.eval_samples("TextVQA")[0]
    history = [Turn(first.prompt, "seven")]
    ids = adapter.collate_chat(history, "and the colour?", first.image)["input_ids"][0].tolist()
    two_turns = Sample(
        id="t",
        task="t",
        prompt=first.prompt,
        image=first.image,
        turns=(*history, Turn("and the colour?", "red")),
    )
    train_ids, labels = adapter.encode_train(two_turns, 10_000)
    answer_start = max(i for i, label in enumerate(labels) if label == -100) + 1
    assert ids == train_ids[:answer_start]
    assert ids.count(adapter.tokenizer.eos_token_id) == 1
    prompt = stage2.prompt("and the colour?", first.image, history)
    assert prompt.startswith(stage2.prompt(first.prompt, first.image) + " seven</s>")
    assert prompt.endswith("USER: and the colour? ASSISTANT:")


def test_default_stage_is_the_last_finished_one_and_stage_0_is_untrained(tiny_run_dir):
    assert finished_stages(tiny_run_dir) == list(range(9))
    sample_task = "ScienceQA"
    untrained = load_stage(tiny_run_dir, 0)
    assert untrained.stage == 0 and "untrained" in untrained.describe()
    want = stored(tiny_run_dir, 0, sample_task)
    assert {str(p.id): p.text for p in untrained.predict(sample_task)} == want
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the run's identity is reproduced
        assert load_stage(tiny_run_dir).stage == 8


def copy_run(tiny_run_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(tiny_run_dir, out)
    return out


def test_unusable_run_directories_say_what_is_wrong(tiny_run_dir, tmp_path):
    with pytest.raises(RunDirError, match="not a cvit-bench run directory"):
        load_stage(tmp_path)
    with pytest.raises(RunDirError, match="no such directory"):
        load_stage(tmp_path / "nowhere")
    with pytest.raises(
        RunDirError, match=r"stage 9 is not finished \(finished stages: 0, 1, 2, 3, 4, 5, 6, 7, 8"
    ):
        load_stage(tiny_run_dir, 9)

    run = copy_run(tiny_run_dir, tmp_path)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "finished_stages": [0, 1]}))
    with pytest.raises(RunDirError, match=r"stage 2 is not finished \(finished stages: 0, 1;"):
        load_stage(run, 2)

    (run / "run.json").write_text(json.dumps({**info, "config": {**info["config"], "method": "x"}}))
    with pytest.raises(UnknownNameError, match="was made with the method 'x'"):
        load_stage(run)

    (run / "run.json").write_text(json.dumps({**info, "config_identity": "0123456789abcdef"}))
    with pytest.warns(UserWarning, match="a plugin's options changed since the run"):
        load_stage(run, 0)

    (run / "run.json").write_text('{"config": {"method": ')
    with pytest.raises(RunDirError, match="run.json is corrupt"):
        load_stage(run)


def test_missing_or_corrupt_checkpoints_are_named(tiny_run_dir, tmp_path):
    run = copy_run(tiny_run_dir, tmp_path)
    shutil.rmtree(run / "checkpoints" / "stage_3")
    with pytest.raises(RunDirError, match="stage 3 is finished but its checkpoint .* is missing"):
        load_stage(run, 3)
    weights = sorted((run / "checkpoints" / "stage_1").rglob("*.safetensors"))
    assert weights
    weights[0].write_bytes(weights[0].read_bytes()[:40])
    with pytest.raises(RunDirError, match="cannot load the checkpoint of stage 1 from .*stage_1"):
        load_stage(run, 1)
