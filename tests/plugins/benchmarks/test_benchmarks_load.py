"""Each real benchmark loads a tiny copy written in its published layout, end to end."""

from __future__ import annotations

import json
import math
import os

import pytest

from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.harness.protocols import Benchmark
from cvit_bench.harness.types import Prediction
from cvit_bench.plugins.benchmarks.common.base import BenchmarkBase


def bench(name, root=None, **options):
    instance = get_plugin_manager().benchmark(name)(options or None)
    if root is not None:
        instance.prepare(type("Ctx", (), {"config": type("C", (), {"data_root": str(root)})})())
    return instance


def perfect(samples):
    return [Prediction(s.id, s.answer or "") for s in samples]


@pytest.mark.parametrize(
    "name", ["coin", "coin-asd", "coin-sampled", "ucit", "mllm-dcl", "mllm-acl"]
)
def test_registered_and_conforming(name):
    instance = bench(name)
    assert isinstance(instance, Benchmark)
    assert isinstance(instance, BenchmarkBase)
    assert instance.reference_model == "llava-1.5-7b"
    assert instance.identity()["name"] == name and instance.identity()["version"]
    assert all(t.primary_metric for t in instance.tasks())


def test_coin_end_to_end(coin_root):
    coin = bench("coin", coin_root)
    assert [t.name for t in coin.tasks()] == [
        "ScienceQA",
        "TextVQA",
        "ImageNet",
        "GQA",
        "VizWiz",
        "Grounding",
        "VQAv2",
        "OCRVQA",
    ]
    train = coin.train_samples("ScienceQA")
    assert train[0].prompt == "ScienceQA question 0?" and os.path.isfile(train[0].image)
    sqa = coin.eval_samples("ScienceQA")
    assert sqa[0].meta["sqa_answer"] == 0 and sqa[1].meta["sqa_has_image"] is False
    assert coin.eval_samples("TextVQA")[0].id == 34602  # read from val.json, int id kept
    grounding = coin.eval_samples("Grounding")[0]
    assert grounding.meta["size"] == [640, 480]
    for task in coin.tasks():
        refs = coin.eval_samples(task.name)
        preds = perfect(refs)
        if task.name == "Grounding":
            preds = [Prediction(r.id, r.meta["answer_bbox"]) for r in refs]
        if task.name == "ScienceQA":
            preds = [Prediction("101", "A"), Prediction("102", "B")]
        score = coin.score(task.name, list(reversed(preds)), refs)
        assert score.value == 100.0, task.name
    # CoIN's reading of "It is a B." differs from SEFE's, chosen by config
    preds = [Prediction("101", "A"), Prediction("102", "It is a B.")]
    refs = coin.eval_samples("ScienceQA")
    assert coin.score("ScienceQA", preds, refs).value == 50.0
    sefe = bench("coin", coin_root, scienceqa_parser="sefe")
    assert sefe.score("ScienceQA", preds, sefe.eval_samples("ScienceQA")).value == 50.0
    fixed = coin.score(
        "ScienceQA", [Prediction("101", "(A)"), Prediction("102", "b")], refs, mode="fixed"
    )
    assert fixed.value == 50.0


def test_coin_asd_picks_training_variant_and_names_missing_ones(coin_root):
    asd = bench("coin-asd", coin_root, asd_x=40)
    assert asd.train_samples("GQA")[0].answer == "styled 40"
    assert asd.eval_samples("GQA")[0].id == "201"
    missing = bench("coin-asd", asd_x=60)
    missing.set_data_root(coin_root)
    with pytest.raises(DataError, match=r"train_x60.json.*train_x20.json, train_x40.json"):
        missing.train_samples("GQA")
    assert asd.identity()["asd_x"] == 40


def test_coin_type2_instructions_and_sampled_defaults(coin_root):
    (coin_root / "Instructions_Type2").mkdir()
    os.symlink(coin_root / "annotations" / "GQA", coin_root / "Instructions_Type2" / "GQA")
    type2 = bench("coin", instructions="type2")
    type2.set_data_root(coin_root)
    assert len(type2.eval_samples("GQA")) == 2
    with pytest.raises(DataError, match="Instructions_Type2/VizWiz"):
        type2.eval_samples("VizWiz")
    sampled = bench("coin-sampled", coin_root)
    assert sampled.identity()["scienceqa_parser"] == "sefe"


def test_subsampling_is_seeded_and_recorded(coin_root):
    small = bench("coin", coin_root, max_eval=1, subsample_seed=5)
    again = bench("coin", coin_root, max_eval=1, subsample_seed=5)
    assert [s.id for s in small.eval_samples("GQA")] == [s.id for s in again.eval_samples("GQA")]
    assert len(small.eval_samples("GQA")) == 1
    assert small.identity()["subsampled"] is True
    refs = small.eval_samples("GQA")
    score = small.score("GQA", perfect(refs), refs)
    assert any("subsample" in n for n in score.notes)


def test_scoring_mode_is_part_of_the_identity(coin_root):
    fixed = bench("ucit", scoring_mode="fixed")
    assert fixed.identity()["scoring_mode"] == "fixed"
    assert bench("ucit").identity() != fixed.identity()
    coin = bench("coin", coin_root, scoring_mode="fixed")
    refs = coin.eval_samples("ImageNet")
    empty = [Prediction(r.id, "") for r in refs]
    assert coin.score("ImageNet", empty, refs).value == 0.0
    assert coin.score("ImageNet", empty, refs, mode="published").value == 100.0


def test_unknown_task_and_bad_option():
    with pytest.raises(UsageError, match="no task 'Nope'"):
        bench("coin").eval_samples("Nope")
    with pytest.raises(UsageError, match="scienceqa_parser"):
        bench("coin", scienceqa_parser="mine")


def test_ucit_end_to_end(ucit_root):
    ucit = bench("ucit", ucit_root)
    assert [t.name for t in ucit.tasks()] == [
        "ImageNet-R",
        "ArxivQA",
        "VizWiz-caption",
        "IconQA",
        "CLEVR-Math",
        "Flickr30k",
    ]
    assert ucit.train_samples("Flickr30k")[0].image.startswith(str(ucit_root / "datasets"))
    clevr = ucit.eval_samples("CLEVR-Math")
    assert clevr[0].answer == "4"
    assert ucit.score("CLEVR-Math", [Prediction(clevr[0].id, "5")], clevr).value == 0.0
    captions = ucit.eval_samples("Flickr30k")
    assert [s.meta["coco_image_id"] for s in captions] == [1, 2]
    assert captions[1].meta["captions"] == ["two men talk", "two men talk in a photo"]
    assert ucit.tasks()[2].primary_metric == "Average"


def test_mllm_dcl_end_to_end(dcl_root):
    dcl = bench("mllm-dcl", dcl_root)
    assert [t.name for t in dcl.tasks()] == ["RS", "Med", "AD", "Sci", "Fin"]
    fin = dcl.eval_samples("Fin")
    assert fin[0].prompt.endswith("Only answer with yes or no directly.")
    assert fin[1].prompt.endswith("Answer with the given letter directly, e.g., A, B, C, D.")
    assert dcl.eval_samples("RS")[0].image == str(dcl_root / "RS" / "images" / "1.png")
    for task in dcl.tasks():
        refs = dcl.eval_samples(task.name)
        assert dcl.score(task.name, perfect(refs), refs).value == 100.0, task.name


def test_mllm_acl_scores_offline_tasks_and_marks_the_rest(acl_root):
    acl = bench("mllm-acl", acl_root)
    assert [t.name for t in acl.tasks()] == ["OCR", "Math", "VP", "APP"]
    ocr = acl.eval_samples("OCR")
    assert ocr[0].image == str(acl_root / "OCR_test" / "images" / "1.png")
    assert ocr[0].meta["answer"] == ["STOP", "stop sign"]
    assert acl.score("OCR", [Prediction("ocr-1", "a stop sign")], ocr).value == 100.0
    for task in ("Math", "APP"):
        refs = acl.eval_samples(task)
        score = acl.score(task, perfect(refs), refs)
        assert math.isnan(score.value) and score.not_scored
    assert acl.train_samples("VP")[0].image == str(acl_root / "VP" / "images" / "train_0.png")


def test_tasks_scored_elsewhere_need_no_answers(acl_root):
    app = acl_root / "APP_test" / "test.json"
    items = json.loads(app.read_text())
    for item in items:
        del item["answer"]
    app.write_text(json.dumps(items))
    acl = bench("mllm-acl", acl_root)  # prepare's data check passes
    refs = acl.eval_samples("APP")
    assert refs[0].answer is None
    assert acl.score("APP", [Prediction("ALL_1", "tap")], refs).not_scored
    ocr = acl_root / "OCR_test" / "test.json"
    ocr.write_text(app.read_text().replace("ALL_1", "ocr-1"))
    with pytest.raises(DataError, match="field 'answer': missing"):
        bench("mllm-acl", acl_root)
