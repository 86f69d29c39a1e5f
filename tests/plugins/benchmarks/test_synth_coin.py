"""synth-coin: generated deterministically, in COIN's format, and answerable only from the image."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.protocols import Benchmark, RunContext
from cvit_bench.harness.types import Prediction
from cvit_bench.plugins.benchmarks.coin.benchmark import Coin
from cvit_bench.plugins.benchmarks.common.scorers import parse_box
from cvit_bench.plugins.benchmarks.synth_coin import cli, generate, pretraining
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.benchmarks.synth_coin.drawing import COLOURS
from cvit_bench.plugins.benchmarks.synth_coin.generate import SynthSettings, draw_items
from cvit_bench.plugins.benchmarks.synth_coin.pretraining import (
    DEFAULT_KINDS,
    KINDS,
    pretraining_samples,
)
from cvit_bench.plugins.benchmarks.synth_coin.tasks import SPECS, TASKS

COIN_ORDER = ["ScienceQA", "TextVQA", "ImageNet", "GQA", "VizWiz", "Grounding", "VQAv2", "OCRVQA"]
SMALL = SynthSettings(seed=3, train_per_task=120, eval_per_task=60, image_size=32)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate.generate(tmp_path_factory.mktemp("synth") / "data", SMALL)


@pytest.fixture(scope="module")
def bench(data_root: Path) -> SynthCoin:
    benchmark = SynthCoin({"data_root": str(data_root)})
    benchmark.prepare(None)
    return benchmark


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_different_ones(tmp_path: Path):
    settings = SynthSettings(seed=5, train_per_task=12, eval_per_task=6)
    first = _files(generate.generate(tmp_path / "a", settings))
    second = _files(generate.generate(tmp_path / "b", settings))
    assert first == second
    other = _files(
        generate.generate(tmp_path / "c", SynthSettings(seed=6, train_per_task=12, eval_per_task=6))
    )
    assert first.keys() == other.keys()
    for task in COIN_ORDER:
        name = f"annotations/{task}/train.json"
        assert first[name] != other[name], name
    images = [k for k in first if k.endswith(".png")]
    assert sum(first[k] != other[k] for k in images) == len(images)


def test_files_do_not_depend_on_how_many_processes_draw_them(tmp_path: Path):
    settings = SynthSettings(seed=5, train_per_task=12, eval_per_task=6)
    alone = _files(generate.generate(tmp_path / "one", settings, workers=1))
    shared = _files(generate.generate(tmp_path / "two", settings, workers=2))
    assert alone == shared and len(alone) > 8 * 18


def test_a_task_that_cannot_be_drawn_in_a_worker_fails_the_generation(tmp_path: Path):
    # 16-pixel images hold fewer than 2,600 distinct ImageNet pictures
    settings = SynthSettings(seed=0, train_per_task=2600, eval_per_task=10, image_size=16)
    with pytest.raises(DataError, match="ImageNet: could not draw 2600 distinct train items"):
        generate.write_dataset(tmp_path, settings, tasks=["TextVQA", "ImageNet"], workers=2)
    assert not (tmp_path / generate.MANIFEST).exists()


def test_files_follow_coin_layout_and_formats(data_root: Path):
    for task in COIN_ORDER:
        train = json.loads((data_root / "annotations" / task / "train.json").read_text())
        test = json.loads((data_root / "annotations" / task / "test.json").read_text())
        assert len(train) == SMALL.count("train", SPECS[task]) and len(test) == SMALL.eval_per_task
        for item in train:
            assert set(item) == {"id", "image", "conversations"}
            human, gpt = item["conversations"]
            assert human["from"] == "human" and human["value"].startswith("<image>\n")
            assert gpt["from"] == "gpt" and gpt["value"]
            assert (data_root / item["image"]).is_file()
        for item in test:
            assert {"question_id", "image", "text", "answer"} <= set(item)
            assert "<image>" not in item["text"]
            assert (data_root / item["image"]).is_file()
    # the three tasks slowest to learn get more training items; the manifest says how many
    # each task has
    manifest = json.loads((data_root / "synth-coin.json").read_text())
    scale = {"ScienceQA": 2, "Grounding": 3, "OCRVQA": 2}
    assert manifest["train_items"] == {
        t: SMALL.train_per_task * scale.get(t, 1) for t in COIN_ORDER
    }
    # OCR-VQA asks for the title and for the genre equally often
    ocr = json.loads((data_root / "annotations/OCRVQA/train.json").read_text())
    genre = sum("genre" in i["conversations"][0]["value"] for i in ocr)
    assert genre == len(ocr) // 2, (genre, len(ocr))
    grounding = json.loads((data_root / "annotations/Grounding/test.json").read_text())
    assert all(isinstance(i["answer_bbox"], str) and i["size"] == [32, 32] for i in grounding)
    with Image.open(data_root / grounding[0]["image"]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"
    # Ids keep COIN's types: ScienceQA pids are strings, VQAv2 question ids integers.
    sqa = json.loads((data_root / "annotations/ScienceQA/test.json").read_text())
    vqa = json.loads((data_root / "annotations/VQAv2/test.json").read_text())
    assert isinstance(sqa[0]["question_id"], str) and isinstance(vqa[0]["question_id"], int)


def test_the_coin_reader_reads_it(bench: SynthCoin, data_root: Path):
    assert [t.name for t in bench.tasks()] == COIN_ORDER
    assert isinstance(bench, Benchmark)
    coin = Coin({"data_root": str(data_root)})
    coin.prepare(None)  # COIN's own data check passes (published counts only warn)
    for task in COIN_ORDER:
        ours, theirs = bench.eval_samples(task), coin.eval_samples(task)
        assert [s.id for s in ours] == [s.id for s in theirs]
        assert [s.answer for s in ours] == [s.answer for s in theirs]
        assert len(bench.train_samples(task)) == SMALL.count("train", SPECS[task])
        sample = bench.train_samples(task)[0]
        assert Path(sample.image).is_file() and sample.prompt and sample.answer
        assert "<image>" not in sample.prompt
    # The scorers' reference files were read: 10 human answers, problems.json answer index.
    assert (
        bench.eval_samples("TextVQA")[0].meta["answers"]
        == [bench.eval_samples("TextVQA")[0].answer] * 10
    )
    first = bench.eval_samples("ScienceQA")[0]
    assert "ABCD"[first.meta["sqa_answer"]] == first.answer


@pytest.mark.parametrize("task", COIN_ORDER)
def test_answers_vary_and_no_image_free_answer_scores_high(bench: SynthCoin, task: str):
    answers = [s.answer for s in bench.eval_samples(task)]
    assert len(set(answers)) >= 4
    baselines = bench.baselines(task)
    assert baselines["majority"] < 35, baselines
    assert baselines["best_constant"] < 35, baselines
    assert baselines["question_only"] < 35, baselines
    assert baselines["chance"] <= baselines["best_constant"]


def test_train_and_test_are_disjoint(bench: SynthCoin):
    for spec in TASKS:
        keys = {"train": set(), "test": set()}
        for split, _, drawn in draw_items(spec, SMALL):
            keys[split].add(drawn.key)
        assert len(keys["train"]) == SMALL.count("train", spec)
        assert len(keys["test"]) == SMALL.eval_per_task
        assert not keys["train"] & keys["test"], spec.name
        train, test = bench.train_samples(spec.name), bench.eval_samples(spec.name)
        assert not {s.image for s in train} & {s.image for s in test}
        assert not {s.id for s in train} & {s.id for s in test}


def test_grounding_boxes_parse_lie_in_the_unit_square_and_frame_the_named_shape(bench: SynthCoin):
    pattern = re.compile(r"^\[(\d\.\d\d), (\d\.\d\d), (\d\.\d\d), (\d\.\d\d)\]$")
    samples = list(bench.eval_samples("Grounding")) + list(bench.train_samples("Grounding"))
    for sample in samples:
        match = pattern.match(sample.answer)
        assert match, sample.answer
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
        assert parse_box(sample.answer, "fixed") == [x1, y1, x2, y2]
        colour = re.search(r"describes: the (\w+) (\w+)\.$", sample.prompt).group(1)
        pixels = np.asarray(Image.open(sample.image).convert("RGB")).astype(int)
        size = pixels.shape[0]
        crop = pixels[round(y1 * size) : round(y2 * size), round(x1 * size) : round(x2 * size)]
        close = np.abs(crop - np.array(COLOURS[colour])).sum(axis=-1) < 70
        assert close.mean() > 0.3, (sample.id, sample.answer, colour)


def test_colour_answers_are_in_the_pixels(bench: SynthCoin):
    """GQA's answer colour is drawn in the named half; ScienceQA's letter names that colour."""
    halves = {
        "left": (slice(None), slice(0, 16)),
        "right": (slice(None), slice(16, 32)),
        "top": (slice(0, 16), slice(None)),
        "bottom": (slice(16, 32), slice(None)),
    }
    for sample in bench.eval_samples("GQA"):
        side = re.search(r"shape (?:on|at) the (\w+)\?", sample.prompt).group(1)
        pixels = np.asarray(Image.open(sample.image)).astype(int)[halves[side]]
        close = np.abs(pixels - np.array(COLOURS[sample.answer])).sum(axis=-1) < 70
        assert close.sum() >= 20, sample.id
    for sample in bench.eval_samples("ScienceQA"):
        options = dict(re.findall(r"^([A-D])\. (\w+)$", sample.prompt, flags=re.M))
        pixels = np.asarray(Image.open(sample.image)).astype(int)
        for letter, colour in options.items():
            close = np.abs(pixels - np.array(COLOURS[colour])).sum(axis=-1) < 70
            assert (close.sum() >= 20) == (letter == sample.answer), (sample.id, letter)


@pytest.mark.parametrize("mode", ["published", "fixed"])
@pytest.mark.parametrize("task", COIN_ORDER)
def test_scorer_gives_gold_answers_100_and_wrong_answers_0(bench: SynthCoin, task: str, mode: str):
    references = bench.eval_samples(task)
    gold = [Prediction(id=s.id, text=s.answer) for s in references]
    assert bench.score(task, gold, references, mode=mode).value == 100.0
    answers = sorted({s.answer for s in references})
    if task == "Grounding":  # a box three cells away never overlaps the gold box
        wrong = [_moved_box(s.answer) for s in references]
    else:
        wrong = [answers[(answers.index(s.answer) + 1) % len(answers)] for s in references]
    predictions = [Prediction(id=s.id, text=w) for s, w in zip(references, wrong)]
    assert bench.score(task, predictions, references, mode=mode).value == 0.0


def _moved_box(box: str) -> str:
    x1, y1, x2, y2 = (float(v) for v in box.strip("[]").split(","))
    shift = -0.5 if x1 >= 0.5 else 0.5
    return f"[{x1 + shift:.2f}, {y1:.2f}, {x2 + shift:.2f}, {y2:.2f}]"


def test_generation_into_the_cache_happens_once(tmp_path: Path):
    config = {"train_per_task": 10, "eval_per_task": 5, "seed": 1}
    bench = SynthCoin(config)
    ctx = RunContext(
        config=RunConfig(bench="synth-coin"),
        run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        benchmark=bench,
        model=None,
    )
    bench.prepare(ctx)
    root = bench.data_root
    assert root.parent == tmp_path / "cache" / "synth-coin"
    stamp = (root / "annotations/GQA/train.json").stat().st_mtime_ns
    again = SynthCoin(config)
    again.prepare(ctx)
    assert again.data_root == root
    assert (root / "annotations/GQA/train.json").stat().st_mtime_ns == stamp
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary leftovers
    other = SynthCoin({**config, "seed": 2})
    other.prepare(ctx)
    assert other.data_root != root
    assert again.identity()["data_seed"] == 1 and other.identity()["data_seed"] == 2
    assert len(again.train_samples("VQAv2")) == 10


def test_an_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch):
    def fail(root, settings, tasks=None, workers=None):
        (Path(root) / "annotations").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "write_dataset", fail)
    with pytest.raises(KeyboardInterrupt):
        generate.generate(tmp_path / "data", SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_data_root_says_how_to_make_one(tmp_path: Path):
    bench = SynthCoin({"data_root": str(tmp_path / "nowhere")})
    with pytest.raises(DataError, match="cvit-bench data synth --out"):
        bench.prepare(None)


def test_data_synth_command(tmp_path: Path, capsys):
    parser = argparse.ArgumentParser(prog="cvit-bench data")
    cli.register(parser.add_subparsers())
    out = tmp_path / "synth"
    args = parser.parse_args(
        ["synth", "--out", str(out), "--seed", "4", "--train", "8", "--eval", "4"]
    )
    assert args.func(args) == 0
    assert "wrote synth-coin" in capsys.readouterr().out
    manifest = json.loads((out / "synth-coin.json").read_text())
    assert (manifest["seed"], manifest["train_per_task"], manifest["eval_per_task"]) == (4, 8, 4)
    assert len(json.loads((out / "annotations/OCRVQA/test.json").read_text())) == 4
    with pytest.raises(UsageError, match="not an empty folder"):
        args.func(args)


def test_pretraining_samples_contract(tmp_path: Path):
    samples = pretraining_samples(24, seed=2, image_size=32, directory=tmp_path / "a")
    assert len(samples) == 24
    kinds = [s.meta["kind"] for s in samples]
    assert kinds[: len(DEFAULT_KINDS)] == list(DEFAULT_KINDS) and "choice" not in kinds
    choices = pretraining_samples(8, seed=2, directory=tmp_path / "d", kinds=KINDS[-1:])
    assert {s.answer for s in choices} <= set("ABCD") and len({s.answer for s in choices}) > 1
    assert len({s.id for s in samples}) == 24
    for sample in samples:
        assert sample.task == "pretrain" and sample.prompt and sample.answer
        with Image.open(sample.image) as image:
            assert image.size == (32, 32)
    again = pretraining_samples(12, seed=2, image_size=32, directory=tmp_path / "b")
    assert [(s.prompt, s.answer) for s in again] == [(s.prompt, s.answer) for s in samples[:12]]
    assert all(
        Path(a.image).read_bytes() == Path(b.image).read_bytes() for a, b in zip(again, samples)
    )
    other = pretraining_samples(12, seed=3, image_size=32, directory=tmp_path / "c")
    assert [s.answer for s in other] != [s.answer for s in again]
    objects = [s for s in samples if s.meta["kind"] == "object"]
    for sample in objects:
        colour = sample.answer.split()[1]
        pixels = np.asarray(Image.open(sample.image)).astype(int)
        assert (np.abs(pixels - np.array(COLOURS[colour])).sum(axis=-1) < 70).sum() >= 20


def test_pretraining_samples_do_not_depend_on_how_many_processes_draw_them(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(pretraining, "CHUNK", 7)  # 20 items: three jobs
    monkeypatch.setenv("CVIT_BENCH_WORKERS", "1")
    alone = pretraining_samples(20, seed=4, directory=tmp_path / "one")
    monkeypatch.setenv("CVIT_BENCH_WORKERS", "2")
    shared = pretraining_samples(20, seed=4, directory=tmp_path / "two")
    assert [(s.id, s.prompt, s.answer, s.meta) for s in alone] == [
        (s.id, s.prompt, s.answer, s.meta) for s in shared
    ]
    assert [Path(s.image).read_bytes() for s in alone] == [
        Path(s.image).read_bytes() for s in shared
    ]
    assert (tmp_path / "one/samples.json").read_bytes() == (
        tmp_path / "two/samples.json"
    ).read_bytes()


def test_pretraining_samples_default_to_a_reused_cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CVIT_BENCH_CACHE", str(tmp_path))
    first = pretraining_samples(8, seed=0)
    folder = Path(first[0].image).parent
    assert folder.parent == tmp_path / "synth-coin"
    stamp = (folder / "samples.json").stat().st_mtime_ns
    second = pretraining_samples(8, seed=0)
    assert second == first and [s.meta for s in second] == [s.meta for s in first]
    assert (folder / "samples.json").stat().st_mtime_ns == stamp
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_data_synth_through_the_main_cli(tmp_path: Path):
    from cvit_bench.harness.cli import main

    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--train", "4", "--eval", "2"]) == 0
    assert json.loads((out / "synth-coin.json").read_text())["train_per_task"] == 4
    assert main(["data", "synth", "--out", str(out)]) == 2  # not empty: a usage error


def test_pretraining_samples_are_exported_lazily():
    import cvit_bench.plugins.benchmarks.synth_coin as package
    from cvit_bench.plugins.benchmarks.synth_coin import pretraining_samples as exported

    assert exported is pretraining_samples
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_region_captions_give_boxes_that_frame_their_shapes(tmp_path: Path):
    samples = pretraining_samples(6, seed=4, directory=tmp_path, kinds=["region"])
    pattern = re.compile(r"a (\w+) \w+ at (\[[^\]]+\])")
    for sample in samples:
        pixels = np.asarray(Image.open(sample.image)).astype(int)
        found = pattern.findall(sample.answer)
        assert len(found) == 2, sample.answer
        for colour, box in found:
            x1, y1, x2, y2 = (round(float(v) * 32) for v in box.strip("[]").split(","))
            crop = pixels[y1:y2, x1:x2]
            close = np.abs(crop - np.array(COLOURS[colour])).sum(axis=-1) < 70
            assert close.mean() > 0.3, (sample.answer, colour)
