"""The published scorers of COIN, UCIT and MLLM-CL as pure functions.

Every scorer takes the predictions and the references (``Sample`` objects, with whatever the
benchmark attached to ``meta`` from the extra reference files), pairs them by id (see
:func:`~.matching.pair_by_id`) and returns a :class:`TaskScore` on the 0-100 scale.

``mode="published"`` (the default) reproduces the published evaluation code, quirks included;
``mode="fixed"`` corrects the quirks documented on each function. ``missing="wrong"`` counts a
reference without a prediction as wrong instead of raising ``DataError``. Denominators are
always the number of references (the published scorers that divide by the number of
predictions agree whenever no prediction is missing).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.types import Prediction, Sample, TaskScore

from .matching import accuracy, check_mode, pair_by_id
from .vqa_normalize import normalize_answer, soft_scores

OPTIONS = ("A", "B", "C", "D", "E")


def _norm(text: str) -> str:
    """``fixed`` mode's cleaning for exact-match tasks: trim, drop trailing periods, collapse
    white space, lower-case."""
    return " ".join(text.strip().rstrip(".").split()).lower()


def _answer(reference: Sample) -> str:
    if reference.answer is None:
        raise DataError(f"reference {reference.id!r} of task {reference.task!r} has no answer")
    return reference.answer


# -- ScienceQA ----------------------------------------------------------------------------------
_SINGLE_CHAR_WORD = re.compile(r"\b(\w)\b")
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")
_FIXED_LETTER_PATTERNS = (
    re.compile(r"^\(?([A-E])\)?[.:)]?$"),
    re.compile(r"^(?:[Aa]nswer|[Oo]ption)\s*:?\s*\(?([A-E])\b"),
    re.compile(r"^\(?([A-E])[.):]\s"),
)
_FIXED_ANSWER_IS = re.compile(r"\b[Aa]nswer is\s*:?\s*\(?([A-E])\b")


def parse_scienceqa(text: str, parser: str = "coin", mode: str = "published") -> str:
    """The option letter read from a ScienceQA output, or ``"FAILED"``.

    Both published parsers first accept an output that is exactly a letter ``A``-``E``, or
    starts with a letter followed by ``". "``. Then

    * ``coin`` (CoIN): the first one-character word of the output, upper-cased: ``b``, ``(B)``
      and ``Answer: C`` are read, and so is the ``a`` of ``It is a B.`` (read as ``A``);
    * ``sefe`` (SEFE, HiDe-LLaVA, MCITlib): ``The answer is X`` followed by one more
      character, found exactly once (``The answer is B`` at the very end is not read).

    ``fixed`` mode: the whole output as a letter (``B``, ``(B)``, ``B.``), ``Answer: B``,
    ``B) ...``, or ``the answer is B`` anywhere with a single distinct letter; lower-case
    letters are never read (``a`` is an article).
    """
    if parser not in ("coin", "sefe"):
        raise UsageError(f"scienceqa_parser must be 'coin' or 'sefe', got {parser!r}")
    if mode == "fixed":
        stripped = text.strip()
        for pattern in _FIXED_LETTER_PATTERNS:
            match = pattern.search(stripped)
            if match:
                return match.group(1)
        letters = set(_FIXED_ANSWER_IS.findall(stripped))
        return letters.pop() if len(letters) == 1 else "FAILED"
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    if parser == "coin":
        found = _SINGLE_CHAR_WORD.findall(text)
        return found[0].upper() if found else "FAILED"
    found = _ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else "FAILED"


def _sqa_gold(reference: Sample) -> tuple[int, int]:
    """(answer index, number of choices) from problems.json (via meta) or the letter answer."""
    meta = reference.meta
    if "sqa_answer" in meta:
        return int(meta["sqa_answer"]), int(meta.get("sqa_n_choices", len(OPTIONS)))
    letter = _answer(reference).strip().strip("()").rstrip(".")
    if letter not in OPTIONS:
        raise DataError(
            f"ScienceQA reference {reference.id!r}: answer {reference.answer!r} is "
            "not an option letter and problems.json gave no answer index"
        )
    return OPTIONS.index(letter), int(meta.get("sqa_n_choices", len(OPTIONS)))


def _has_image(reference: Sample) -> bool:
    if "sqa_has_image" in reference.meta:
        return bool(reference.meta["sqa_has_image"])
    return reference.image is not None


def score_scienceqa(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
    parser: str = "coin",
) -> TaskScore:
    """ScienceQA accuracy with CoIN's or SEFE's letter parser (see :func:`parse_scienceqa`).

    A letter beyond the question's number of choices is wrong. With ``parser="sefe"`` the
    accuracy on questions with an image (``image_accuracy``) is reported too, decided from the
    reference (problems.json's ``image`` field, else whether the sample has an image); the
    published SEFE code decides it from ``<image>`` in the prediction's prompt.
    """
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold, n_choices = _sqa_gold(reference)
        letter = parse_scienceqa(text, parser, mode)
        index = OPTIONS.index(letter) if letter in OPTIONS[:n_choices] else -1
        return 1.0 if index == gold else 0.0

    score = accuracy(pairs, judge, missing_text="FAILED")
    if parser == "sefe":
        image_scores = [score.per_sample[r.id] or 0.0 for r, _ in pairs if _has_image(r)]
        score.metrics["image_accuracy"] = (
            sum(image_scores) / len(image_scores) if image_scores else math.nan
        )
    return score


# -- TextVQA ------------------------------------------------------------------------------------
def score_textvqa(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """TextVQA soft accuracy against the 10 human answers (``meta["answers"]``, from
    ``TextVQA_0.5.1_val.json``), after the EvalAI answer cleaning.

    Published quirks: an output that cleans to the empty string (``the``, ``a``) matches human
    answers that do too; at most 32 periods are removed. ``fixed``: an empty cleaned output
    scores 0 and every period rule applies without limit.
    """
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)
    limit = mode == "published"

    def judge(reference: Sample, text: str) -> float:
        answers = reference.meta.get("answers")
        if not isinstance(answers, list) or len(answers) != 10:
            found = "none" if not isinstance(answers, list) else f"{len(answers)}"
            raise DataError(
                f"TextVQA reference {reference.id!r} needs exactly 10 human answers "
                f"(from TextVQA_0.5.1_val.json), found {found}"
            )
        cleaned = normalize_answer(text, limit_periods=limit)
        if mode == "fixed" and not cleaned:
            return 0.0
        return soft_scores(answers, limit_periods=limit).get(cleaned, 0.0)

    return accuracy(pairs, judge)


# -- ImageNet -----------------------------------------------------------------------------------
def score_imagenet(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """Correct when the output contains the class name or the class name contains the output,
    case-sensitively. Published quirk: an empty output is contained in every name and counts
    as correct (``fixed``: wrong). The published code pairs by row; this pairs by id."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference)
        if mode == "fixed" and not text.strip():
            return 0.0
        return 1.0 if gold in text or text in gold else 0.0

    return accuracy(pairs, judge)


# -- GQA ----------------------------------------------------------------------------------------
def score_gqa(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """Trailing periods stripped and lower-cased output, exact match against the balanced
    questions' answer (``meta["gqa_answer"]``, else the test file's answer). Only balanced
    questions count (``meta["gqa_balanced"]``, default true). ``fixed``: white space trimmed
    and collapsed on both sides as well."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)
    counted = [(r, p) for r, p in pairs if r.meta.get("gqa_balanced", True)]

    def judge(reference: Sample, text: str) -> float:
        gold = str(reference.meta.get("gqa_answer", _answer(reference)))
        if mode == "fixed":
            return 1.0 if _norm(text) == _norm(gold) else 0.0
        return 1.0 if text.rstrip(".").lower() == gold else 0.0

    score = accuracy(counted, judge)
    if len(counted) < len(pairs):
        score.notes.append(f"{len(pairs) - len(counted)} unbalanced question(s) not counted")
    return score


# -- exact match (VizWiz, VQAv2, UCIT) ----------------------------------------------------------
def score_exact(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """Case-insensitive exact match (VizWiz, VQAv2, ImageNet-R, ArxivQA, IconQA, CLEVR-Math):
    ``Unanswerable.`` with a period is wrong against ``unanswerable``; ``4`` against ``3`` is
    wrong (no substring rule). ``fixed``: trailing periods and extra white space ignored."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference)
        if mode == "fixed":
            return 1.0 if _norm(text) == _norm(gold) else 0.0
        return 1.0 if text.upper() == gold.upper() else 0.0

    return accuracy(pairs, judge)


# -- OCR-VQA ------------------------------------------------------------------------------------
def score_ocrvqa(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """An output containing ``Unanswerable`` (case-sensitive) is wrong; otherwise lower-cased
    exact match. ``fixed``: no special rule, trailing periods and extra white space ignored."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference)
        if mode == "fixed":
            return 1.0 if _norm(text) == _norm(gold) else 0.0
        if "Unanswerable" in text:
            return 0.0
        return 1.0 if text.lower() == gold.lower() else 0.0

    return accuracy(pairs, judge)


# -- Grounding ----------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_box(text: str, mode: str = "published") -> list[float] | None:
    """Four box coordinates read from an output, or ``None`` when unreadable.

    Published: the brackets are removed and then the first and last characters dropped, so
    ``[0.12, 0.34, 0.56, 0.78]`` reads as ``0.12, 0.34, 0.56, 0.7`` (the last coordinate loses
    its final digit) and any text around the box makes it unreadable. ``fixed``: the first
    four numbers of the first ``[...]`` (or of the output), put in order (x1 <= x2, y1 <= y2)
    and clipped to [0, 1].
    """
    if mode == "fixed":
        bracket = re.search(r"\[([^\]]*)\]", text)
        numbers = _NUMBER.findall(bracket.group(1) if bracket else text)
        if len(numbers) < 4:
            return None
        x1, y1, x2, y2 = (min(1.0, max(0.0, float(v))) for v in numbers[:4])
        return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    stripped = text.replace("[", "").replace("]", "")
    try:
        values = [float(part) for part in stripped[1:-1].split(",")]
    except ValueError:
        return None
    return values if len(values) == 4 else None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU as the published scorer computes it: coordinates used as given (a box whose
    corners are swapped has a negative area), 0 when the union is not positive."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0


def _gold_box(reference: Sample) -> list[float]:
    raw = reference.meta.get("answer_bbox", reference.answer)
    try:
        values = [float(v) for v in str(raw).replace("[", "").replace("]", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise DataError(
            f"Grounding reference {reference.id!r}: answer_bbox {raw!r} is not a "
            "box of four numbers"
        )
    return values


def score_grounding(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """Correct when the parsed box (:func:`parse_box`) has IoU > 0.5 (strictly) with
    ``answer_bbox``; both boxes are scaled by the longer side of ``size`` first, as published."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _gold_box(reference)
        box = parse_box(text, mode)
        if box is None:
            return 0.0
        size = reference.meta.get("size")
        scale = float(max(size)) if isinstance(size, (list, tuple)) and size else 1.0
        iou = box_iou([v * scale for v in box], [v * scale for v in gold])
        return 1.0 if iou > 0.5 else 0.0

    return accuracy(pairs, judge)


# -- MLLM-CL ------------------------------------------------------------------------------------
def _whole_words(gold: str, text: str) -> bool:
    gold = _norm(gold)
    if not gold:
        return False
    return re.search(r"(?<!\w)" + re.escape(gold) + r"(?!\w)", text.lower()) is not None


def score_mllm_word(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """MLLM-CL remote sensing and autonomous driving (the published ``eval_ai2d``): an output containing ``Unanswerable`` is wrong; a multi-word answer must
    appear in the lower-cased output; a one-word answer (periods removed) must appear after a
    space or before a space, period or comma when the output has several words, anywhere
    when it has one (``no`` is found in ``north``; ``a`` in ``a banana``). ``fixed``: the
    answer must appear as whole words."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference)
        if mode == "fixed":
            return 1.0 if _whole_words(gold, text) else 0.0
        if "Unanswerable" in text:
            return 0.0
        pred, gold = text.lower(), gold.lower()
        if " " in gold:
            return 1.0 if gold in pred else 0.0
        gold = gold.replace(".", "")
        if " " in pred:
            hit = any(f in pred for f in (" " + gold, gold + " ", gold + ".", gold + ","))
            return 1.0 if hit else 0.0
        return 1.0 if gold in pred else 0.0

    return accuracy(pairs, judge)


def score_mllm_contains(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """MLLM-CL medical (``eval_pvqa``): an output containing ``Unanswerable`` is wrong;
    otherwise correct when the lower-cased answer is a substring of the lower-cased output
    (``no`` is found in ``not sure``). ``fixed``: whole words."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference)
        if mode == "fixed":
            return 1.0 if _whole_words(gold, text) else 0.0
        if "Unanswerable" in text:
            return 0.0
        return 1.0 if gold.lower() in text.lower() else 0.0

    return accuracy(pairs, judge)


_SCI_EXACT_SOURCES = ("AI2D", "TQA", "VQA", "SciVerse")


def _image_name(reference: Sample) -> str:
    return os.path.basename(str(reference.meta.get("image_file") or reference.image or ""))


def score_mllm_science(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """MLLM-CL science (``eval_sci``). ``Unanswerable`` in the output is wrong. Items whose
    image file name starts with ``AI2D_``, ``TQA_``, ``VQA_`` or ``SciVerse_`` need the
    lower-cased output to equal the answer; the rest are MapQA: a question containing
    ``Which states`` earns partial credit (the share of comma-separated answer items found
    among the output's comma-separated items, compared without trimming), any other needs the
    answer inside the output. ``fixed``: trailing periods and white space ignored, and list
    items trimmed."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference)
        if mode == "published" and "Unanswerable" in text:
            return 0.0
        pred, gold = text.lower(), gold.lower()
        source = _image_name(reference).split("_")[0]
        if source in _SCI_EXACT_SOURCES:
            if mode == "fixed":
                return 1.0 if _norm(pred) == _norm(gold) else 0.0
            return 1.0 if gold == pred else 0.0
        if "Which states" in reference.prompt:
            golds = gold.split(",")
            items = pred.split(",")
            if mode == "fixed":
                golds = [g.strip() for g in golds]
                items = [i.strip().rstrip(".") for i in items]
            return sum(1 for g in golds if g in items) / len(golds)
        if mode == "fixed":
            return 1.0 if _whole_words(gold, pred) else 0.0
        return 1.0 if gold in pred else 0.0

    return accuracy(pairs, judge)


def score_mllm_finance(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """MLLM-CL finance (``eval_finvis``): ``Unanswerable`` in the output is wrong; the output
    lower-cased with spaces and periods removed must equal the lower-cased answer. Published
    quirk: the answer keeps its spaces and periods, so ``Yes.`` can never be matched.
    ``fixed``: the answer is cleaned like the output."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def clean(text: str) -> str:
        return text.lower().replace(" ", "").replace(".", "")

    def judge(reference: Sample, text: str) -> float:
        gold = _answer(reference).lower()
        if mode == "fixed":
            return 1.0 if clean(text).strip() == clean(gold).strip() else 0.0
        if "Unanswerable" in text:
            return 0.0
        return 1.0 if clean(text) == gold else 0.0

    return accuracy(pairs, judge)


_HMER = "Handwritten Mathematical Expression Recognition"


def score_mllm_ocr(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """MLLM-CL OCR (``eval_ocr``, OCRBench's rule): correct when any reference answer
    (``answer`` may be a list) is contained in the output, both lower-cased and trimmed with
    newlines removed; for handwritten mathematical expressions case is kept and all spaces
    are removed. Metrics: ``accuracy`` (hits / n x 100), ``final_score`` (hits) and
    ``final_score_norm`` (hits / 10, the published print-out, equal to the accuracy on a
    1000-item test). No quirk is known: ``fixed`` equals ``published``."""
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def judge(reference: Sample, text: str) -> float:
        golds: Any = reference.meta.get("answer", reference.answer)
        if not isinstance(golds, list):
            golds = [golds]
        category = reference.meta.get("answer_type")
        for gold in golds:
            gold = str(gold)
            if category == _HMER:
                g = gold.strip().replace(" ", "").replace("\n", "")
                t = text.strip().replace(" ", "").replace("\n", "")
            else:
                g = gold.lower().strip().replace("\n", "")
                t = text.lower().strip().replace("\n", "")
            if g in t:
                return 1.0
        return 0.0

    score = accuracy(pairs, judge)
    hits = sum(1 for v in score.per_sample.values() if v)
    score.metrics["final_score"] = float(hits)
    score.metrics["final_score_norm"] = hits / 10.0
    return score


def score_mllm_perception(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """MLLM-CL visual perception (``eval_sat``, CV-Bench): output and answer lower-cased with
    spaces, newlines and periods removed; correct when the answer is contained in the output
    (``2`` is found in ``12``). Also ``count_accuracy`` over items whose ``task`` is
    ``Count``. ``fixed``: the output (trimmed, lower-cased, trailing periods dropped) must
    equal the answer or start with it followed by a character that is not a letter or digit.
    """
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)

    def clean(text: str) -> str:
        return text.lower().strip().replace(" ", "").replace("\n", "").replace(".", "")

    def judge(reference: Sample, text: str) -> float:
        if mode == "fixed":
            gold, pred = _norm(_answer(reference)), _norm(text)
            ok = pred == gold or (
                bool(gold) and pred.startswith(gold) and not pred[len(gold)].isalnum()
            )
            return 1.0 if ok else 0.0
        return 1.0 if clean(_answer(reference)) in clean(text) else 0.0

    score = accuracy(pairs, judge)
    counts = [score.per_sample[r.id] or 0.0 for r, _ in pairs if r.meta.get("task") == "Count"]
    if counts:
        score.metrics["count_accuracy"] = sum(counts) / len(counts)
    return score


def not_scored(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    reason: str,
    missing: str = "error",
    metric: str = "accuracy",
) -> TaskScore:
    """A task whose published scorer needs an external service: ids are still checked, the
    primary metric is NaN and ``not_scored`` says why."""
    pair_by_id(predictions, references, missing)
    return TaskScore(
        primary=metric, metrics={metric: math.nan}, n=len(references), not_scored=reason
    )
