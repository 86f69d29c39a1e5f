"""MLLM-CL's per-domain published rules pinned on hand-made cases, in both modes."""

from __future__ import annotations

import math

import pytest

from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Prediction, Sample
from cvit_bench.plugins.benchmarks.common import scorers


def ref(qid, answer, image="/d/images/1.png", prompt="q", **meta):
    return Sample(id=qid, task="t", prompt=prompt, answer=answer, image=image, meta=meta)


def one(function, text, reference, **kwargs):
    return function([Prediction(reference.id, text)], [reference], **kwargs).value


@pytest.mark.parametrize(
    ("text", "gold", "published", "fixed"),
    [
        ("farmland", "farmland", 100, 100),
        ("It is farmland.", "farmland", 100, 100),
        ("farmlands", "farmland", 100, 0),  # one-word output: plain substring
        ("north", "no", 100, 0),
        ("yesterday it rained", "yes", 0, 0),  # several words: needs a boundary
        ("I would say yes", "yes", 100, 100),
        ("a big parking lot here", "parking lot", 100, 100),
        ("Unanswerable", "unanswerable", 0, 100),
        ("FARMLAND", "Farmland.", 100, 100),
    ],
)
def test_remote_sensing_and_driving_rule(text, gold, published, fixed):
    reference = ref("rs-1", gold)
    assert one(scorers.score_mllm_word, text, reference) == published
    assert one(scorers.score_mllm_word, text, reference, mode="fixed") == fixed


@pytest.mark.parametrize(
    ("text", "gold", "published", "fixed"),
    [("No", "no", 100, 100), ("not sure", "no", 100, 0), ("Unanswerable no", "no", 0, 100)],
)
def test_medical_rule(text, gold, published, fixed):
    reference = ref("med-1", gold)
    assert one(scorers.score_mllm_contains, text, reference) == published
    assert one(scorers.score_mllm_contains, text, reference, mode="fixed") == fixed


def test_science_rule_by_image_source_and_mapqa_partial_credit():
    ai2d = ref("s1", "B", image="/d/Sci/images/AI2D_12.png")
    assert one(scorers.score_mllm_science, "b", ai2d) == 100
    assert one(scorers.score_mllm_science, "B.", ai2d) == 0
    assert one(scorers.score_mllm_science, "B.", ai2d, mode="fixed") == 100
    states = ref(
        "s2",
        "ohio,texas",
        image="/d/Sci/images/MapQA_3.png",
        prompt="Which states have the highest value?",
    )
    assert one(scorers.score_mllm_science, "ohio, texas", states) == 50
    assert one(scorers.score_mllm_science, "ohio, texas", states, mode="fixed") == 100
    assert one(scorers.score_mllm_science, "Ohio,Texas,Utah", states) == 100
    other = ref("s3", "ohio", image="/d/Sci/images/MapQA_4.png", prompt="Which state is red?")
    assert one(scorers.score_mllm_science, "It is Ohio", other) == 100


@pytest.mark.parametrize(
    ("text", "gold", "published", "fixed"),
    [
        ("yes.", "Yes", 100, 100),
        ("Yes, it did", "Yes", 0, 0),
        ("B", "B", 100, 100),
        ("Yes.", "Yes.", 0, 100),  # the answer keeps its period in the published rule
        ("Unanswerable", "B", 0, 0),
    ],
)
def test_finance_rule(text, gold, published, fixed):
    reference = ref("fin-1", gold)
    assert one(scorers.score_mllm_finance, text, reference) == published
    assert one(scorers.score_mllm_finance, text, reference, mode="fixed") == fixed


def test_ocr_rule_and_published_totals():
    regular = Sample(
        id="o1",
        task="OCR",
        prompt="q",
        answer="STOP",
        meta={"answer": ["STOP", "stop sign"], "answer_type": "Regular Text Recognition"},
    )
    hmer = ref("o2", "X ^ 2", answer_type="Handwritten Mathematical Expression Recognition")
    score = scorers.score_mllm_ocr(
        [Prediction("o1", "The sign says Stop"), Prediction("o2", "x^2+1")], [regular, hmer]
    )
    assert score.per_sample == {"o1": 100.0, "o2": 0.0}  # formulas keep their case
    assert score.value == 50.0
    assert score.metrics["final_score"] == 1 and score.metrics["final_score_norm"] == 0.1
    assert one(scorers.score_mllm_ocr, "X^2+1", hmer) == 100


def test_perception_rule_and_count_accuracy():
    count = ref("v1", "(B)", task="Count")
    depth = ref("v2", "2", task="Depth")
    preds = [Prediction("v1", "(B) two cars"), Prediction("v2", "12")]
    published = scorers.score_mllm_perception(preds, [count, depth])
    assert published.value == 100.0 and published.metrics["count_accuracy"] == 100.0
    fixed = scorers.score_mllm_perception(preds, [count, depth], mode="fixed")
    assert fixed.per_sample == {"v1": 100.0, "v2": 0.0}


def test_not_scored_still_checks_ids():
    refs = [ref("testmini_1", "3")]
    score = scorers.not_scored([Prediction("testmini_1", "x")], refs, reason="judge")
    assert math.isnan(score.value) and score.not_scored == "judge" and score.n == 1
    with pytest.raises(DataError):
        scorers.not_scored([Prediction("other", "x")], refs, reason="judge")
