"""COIN's published scorers pinned on hand-made cases, in both scoring modes."""

from __future__ import annotations

import math

import pytest

from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Prediction, Sample
from cvit_bench.plugins.benchmarks.common import scorers
from cvit_bench.plugins.benchmarks.common.scorers import parse_box, parse_scienceqa
from cvit_bench.plugins.benchmarks.common.vqa_normalize import normalize_answer, soft_scores


def ref(qid, answer, **meta):
    image = meta.pop("image", "/data/x.png")
    return Sample(
        id=qid, task="t", prompt=meta.pop("prompt", "q"), answer=answer, image=image, meta=meta
    )


def one(function, text, reference, **kwargs):
    """The 0-100 score of a single prediction."""
    score = function([Prediction(reference.id, text)], [reference], **kwargs)
    return score.value


# -- ScienceQA ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "coin", "sefe", "fixed"),
    [
        ("B", "B", "B", "B"),
        ("B. Because dogs are mammals.", "B", "B", "B"),
        ("b", "B", "FAILED", "FAILED"),
        ("(B)", "B", "FAILED", "B"),
        ("Answer: C", "C", "FAILED", "C"),
        ("It is a B.", "A", "FAILED", "FAILED"),
        ("The answer is B.", "B", "B", "B"),
        ("The answer is B", "B", "FAILED", "B"),
        ("The answer is A. The answer is B.", "A", "FAILED", "FAILED"),
        ("", "FAILED", "FAILED", "FAILED"),
        ("Mammals have fur", "FAILED", "FAILED", "FAILED"),
    ],
)
def test_scienceqa_parsers(text, coin, sefe, fixed):
    assert parse_scienceqa(text, "coin") == coin
    assert parse_scienceqa(text, "sefe") == sefe
    assert parse_scienceqa(text, "coin", mode="fixed") == fixed
    assert parse_scienceqa(text, "sefe", mode="fixed") == fixed


def test_scienceqa_accuracy_uses_problem_answer_and_choice_count():
    with_image = ref("101", "A", sqa_answer=1, sqa_n_choices=3, sqa_has_image=True)
    text_only = ref("102", "B", sqa_answer=1, sqa_n_choices=2, sqa_has_image=False, image=None)
    preds = [Prediction("101", "The answer is B."), Prediction("102", "It is a B.")]
    coin = scorers.score_scienceqa(preds, [with_image, text_only], parser="coin")
    assert coin.value == 50.0  # 101 right; 102 reads "a" -> A -> wrong
    assert "image_accuracy" not in coin.metrics
    sefe = scorers.score_scienceqa(preds, [with_image, text_only], parser="sefe")
    assert sefe.value == 50.0 and sefe.metrics["image_accuracy"] == 100.0
    # a letter beyond the number of choices is wrong even if it is the "answer" letter
    assert one(scorers.score_scienceqa, "C", ref("9", "C", sqa_answer=2, sqa_n_choices=2)) == 0


def test_scienceqa_missing_counts_as_wrong_only_when_asked():
    refs = [
        ref("1", "A", sqa_answer=0, sqa_n_choices=2),
        ref("2", "B", sqa_answer=1, sqa_n_choices=2),
    ]
    with pytest.raises(DataError, match="1 of 2 reference"):
        scorers.score_scienceqa([Prediction("1", "A")], refs)
    score = scorers.score_scienceqa([Prediction("1", "A")], refs, missing="wrong")
    assert score.value == 50.0 and score.n == 2 and score.per_sample == {"1": 100.0, "2": 0.0}


# -- TextVQA ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("The Nokia", "nokia"),
        ("an apple", "apple"),
        ("the", ""),
        ("a", ""),
        ("dont", "don't"),
        ("isnt it", "isn't it"),
        ("somebody'd", "somebodyd"),
        ("Hello, world!", "hello world"),
        ("3.5 kg.", "3.5 kg"),
        ("1,000", "1000"),
        ("it's red", "it 's red"),
        ("left-hand", "left hand"),
        ("left-hand - right", "lefthand right"),
        ("(yes)", "yes"),
        ("new\nyork", "new york"),
    ],
)
def test_evalai_normalisation(raw, clean):
    assert normalize_answer(raw) == clean


def test_period_limit_quirk():
    text = "x." * 40
    assert normalize_answer(text).count(".") == 8  # 32 periods removed, 8 left
    assert normalize_answer(text, limit_periods=False).count(".") == 0


def test_soft_scores_leave_one_out():
    humans = ["nokia"] * 7 + ["nokia phone", "Nokia.", "samsung"]
    scores = soft_scores(humans)
    assert scores["nokia"] == 1.0
    assert scores["samsung"] == pytest.approx(0.3)
    two = soft_scores(["x", "x"] + ["y"] * 8)["x"]
    three = soft_scores(["x"] * 3 + ["y"] * 7)["x"]
    assert (two, three) == (pytest.approx(0.6), pytest.approx(0.9))


def test_textvqa_scores_and_empty_answer_quirk():
    humans = ["2", "two", "2", "2", "3", "2", "two", "2", "2", "2"]
    reference = ref(34603, "2", answers=humans)
    assert one(scorers.score_textvqa, "Two", reference) == 100.0
    assert one(scorers.score_textvqa, "Three.", reference) == pytest.approx(30.0)
    articles = ref(1, "a", answers=["a", "the", "an"] + ["cat"] * 7)
    assert one(scorers.score_textvqa, "The", articles) == pytest.approx(90.0)
    assert one(scorers.score_textvqa, "The", articles, mode="fixed") == 0.0


def test_textvqa_needs_exactly_ten_answers():
    with pytest.raises(DataError, match="exactly 10 human answers"):
        one(scorers.score_textvqa, "x", ref(1, "x", answers=["x"] * 9))


# -- ImageNet, GQA, exact match, OCR-VQA --------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "published", "fixed"),
    [
        ("golden retriever", 100, 100),
        ("a golden retriever dog", 100, 100),
        ("golden", 100, 100),
        ("Golden Retriever", 0, 0),
        ("", 100, 0),
        ("tabby cat", 0, 0),
    ],
)
def test_imagenet_substring_rule(text, published, fixed):
    reference = ref("in-1", "golden retriever")
    assert one(scorers.score_imagenet, text, reference) == published
    assert one(scorers.score_imagenet, text, reference, mode="fixed") == fixed


def test_gqa_rules_and_balanced_only():
    balanced = ref("201", "ignored", gqa_answer="yes", gqa_balanced=True)
    assert one(scorers.score_gqa, "Yes..", balanced) == 100
    assert one(scorers.score_gqa, " yes", balanced) == 0
    assert one(scorers.score_gqa, " yes", balanced, mode="fixed") == 100
    unbalanced = ref("202", "red", gqa_balanced=False)
    score = scorers.score_gqa(
        [Prediction("201", "no"), Prediction("202", "red")], [balanced, unbalanced]
    )
    assert score.n == 1 and score.value == 0.0 and "unbalanced" in score.notes[0]


@pytest.mark.parametrize(
    ("text", "gold", "published", "fixed"),
    [
        ("unanswerable", "unanswerable", 100, 100),
        ("UNANSWERABLE", "unanswerable", 100, 100),
        ("Unanswerable.", "unanswerable", 0, 100),
        ("4", "3", 0, 0),
        ("34", "3", 0, 0),
        ("yes ", "yes", 0, 100),
    ],
)
def test_exact_match(text, gold, published, fixed):
    reference = ref(5001, gold)
    assert one(scorers.score_exact, text, reference) == published
    assert one(scorers.score_exact, text, reference, mode="fixed") == fixed


@pytest.mark.parametrize(
    ("text", "gold", "published", "fixed"),
    [
        ("jane austen", "Jane Austen", 100, 100),
        ("Jane Austen.", "Jane Austen", 0, 100),
        ("Unanswerable", "Jane Austen", 0, 0),
        ("Unanswerable Questions", "Unanswerable Questions", 0, 100),
    ],
)
def test_ocrvqa_unanswerable_rule(text, gold, published, fixed):
    reference = ref("ocr-1", gold)
    assert one(scorers.score_ocrvqa, text, reference) == published
    assert one(scorers.score_ocrvqa, text, reference, mode="fixed") == fixed


# -- Grounding ----------------------------------------------------------------------------------
def test_published_box_parser_drops_first_and_last_character():
    assert parse_box("[0.12, 0.34, 0.56, 0.78]") == [0.12, 0.34, 0.56, 0.7]
    assert parse_box("[0.1, 0.2, 0.5, 0.6]") == [0.1, 0.2, 0.5, 0.0]
    assert parse_box("The box is [0.1, 0.2, 0.5, 0.6].") is None
    assert parse_box("[0.1, 0.2, 0.5]") is None
    assert parse_box("") is None
    assert parse_box("The box is [0.5, 0.6, 0.1, 0.2].", mode="fixed") == [0.1, 0.2, 0.5, 0.6]
    assert parse_box("[-0.2, 0.2, 1.5, 0.6]", mode="fixed") == [0.0, 0.2, 1.0, 0.6]


@pytest.mark.parametrize(
    ("text", "published", "fixed"),
    [
        ("[0.10, 0.20, 0.50, 0.60]", 100, 100),
        ("[0.1, 0.2, 0.5, 0.6]", 0, 100),  # last coordinate read as 0.0
        ("The dog is at [0.10, 0.20, 0.50, 0.60].", 0, 100),
        ("[0.50, 0.60, 0.10, 0.20]", 0, 100),  # corners swapped
        ("[-0.10, 0.20, 0.50, 0.60]", 100, 100),  # the sign is the dropped first character
        ("[0.30, 0.40, 0.90, 0.95]", 0, 0),
        ("", 0, 0),
    ],
)
def test_grounding(text, published, fixed):
    reference = ref(9001, "", answer_bbox="[0.10, 0.20, 0.50, 0.60]", size=[640, 480])
    assert one(scorers.score_grounding, text, reference) == published
    assert one(scorers.score_grounding, text, reference, mode="fixed") == fixed


def test_grounding_iou_must_exceed_half():
    reference = ref(1, "", answer_bbox="[0.0, 0.0, 1.0, 1.0]", size=[100, 100])
    assert one(scorers.score_grounding, "[0.0, 0.0, 0.5, 1.00]", reference) == 0  # IoU = 0.5
    assert one(scorers.score_grounding, "[0.0, 0.0, 0.6, 1.00]", reference) == 100


# -- matching -----------------------------------------------------------------------------------
def test_predictions_are_matched_by_id_not_row():
    refs = [ref(1, "a"), ref(2, "b"), ref(3, "c")]
    ordered = [Prediction(1, "a"), Prediction(2, "x"), Prediction(3, "c")]
    shuffled = [ordered[2], ordered[0], ordered[1]]
    first = scorers.score_exact(ordered, refs)
    second = scorers.score_exact(shuffled, refs)
    assert first.value == second.value == pytest.approx(200 / 3)
    assert second.per_sample == {1: 100.0, 2: 0.0, 3: 100.0}


def test_duplicate_and_unknown_ids_are_errors():
    refs = [ref(1, "a"), ref(2, "b")]
    with pytest.raises(DataError, match="id 1 appears more than once"):
        scorers.score_exact([Prediction(1, "a"), Prediction(1, "a"), Prediction(2, "b")], refs)
    with pytest.raises(DataError, match="match no reference.*7"):
        scorers.score_exact([Prediction(1, "a"), Prediction(2, "b"), Prediction(7, "c")], refs)
    with pytest.raises(DataError, match="another type"):
        scorers.score_exact([Prediction("1", "a"), Prediction(2, "b")], refs)
    with pytest.raises(DataError, match="appears more than once in the references"):
        scorers.score_exact([Prediction(1, "a")], [ref(1, "a"), ref(1, "b")])


def test_bad_mode_is_a_usage_error():
    from cvit_bench.harness.errors import UsageError

    with pytest.raises(UsageError):
        scorers.score_exact([], [], mode="lenient")
    assert math.isnan(scorers.score_exact([], []).value)
