"""Pairing predictions with references by id, never by row position."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.types import Prediction, Sample, SampleId, TaskScore

Missing = Literal["error", "wrong"]
Mode = Literal["published", "fixed"]
MODES = ("published", "fixed")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"scoring mode must be one of {list(MODES)}, got {mode!r}")


def pair_by_id(
    predictions: Sequence[Prediction], references: Sequence[Sample], missing: str = "error"
) -> list[tuple[Sample, Prediction | None]]:
    """Each reference with its prediction, in reference order.

    A prediction id that repeats, or that no reference has, is a ``DataError``; a reference
    without a prediction is a ``DataError`` unless ``missing == "wrong"`` (then it is paired
    with ``None`` and scores as wrong). Ids are compared exactly: ``1`` and ``"1"`` differ.
    """
    if missing not in ("error", "wrong"):
        raise UsageError(f"missing must be 'error' or 'wrong', got {missing!r}")
    by_id: dict[SampleId, Prediction] = {}
    for index, prediction in enumerate(predictions):
        key = _key(prediction.id)
        if key in by_id:
            raise DataError(
                f"prediction {index}: id {prediction.id!r} appears more than once "
                "in the predictions"
            )
        by_id[key] = prediction
    known: set[tuple[type, SampleId]] = set()
    for index, reference in enumerate(references):
        key = _key(reference.id)
        if key in known:
            raise DataError(
                f"reference {index}: id {reference.id!r} appears more than once in the references"
            )
        known.add(key)
    unknown = [p.id for k, p in by_id.items() if k not in known]
    if unknown:
        hint = ""
        if any(_key(_flip(i)) in known for i in unknown):
            hint = (
                " (the same id exists with another type: ids are matched exactly, keep "
                "question_id as the annotation file spells it)"
            )
        raise DataError(
            f"{len(unknown)} prediction id(s) match no reference, e.g. "
            f"{', '.join(repr(i) for i in unknown[:5])}{hint}"
        )
    pairs = [(reference, by_id.get(_key(reference.id))) for reference in references]
    absent = [r.id for r, p in pairs if p is None]
    if absent and missing == "error":
        raise DataError(
            f"{len(absent)} of {len(references)} reference(s) have no prediction, "
            f"e.g. {', '.join(repr(i) for i in absent[:5])}; pass missing='wrong' "
            "(--missing wrong) to count them as wrong"
        )
    return pairs


def _key(value: SampleId) -> tuple[type, SampleId]:
    return (type(value), value)


def _flip(value: SampleId) -> SampleId:
    if isinstance(value, int):
        return str(value)
    return int(value) if value.lstrip("-").isdigit() else value


def accuracy(
    pairs: list[tuple[Sample, Prediction | None]],
    judge: Callable[[Sample, str], float],
    *,
    metric: str = "accuracy",
    missing_text: str | None = None,
) -> TaskScore:
    """Mean of ``judge(reference, text)`` (each in [0, 1]) x 100 over every reference.

    A reference without a prediction scores 0, unless ``missing_text`` is given: then it is
    judged as if the model had written that text (a published scorer's placeholder).
    """
    per_sample: dict[SampleId, float | None] = {}
    total = 0.0
    for reference, prediction in pairs:
        if prediction is None and missing_text is None:
            value = 0.0
        else:
            text = prediction.text if prediction is not None else missing_text
            value = float(judge(reference, text or ""))
        per_sample[reference.id] = 100.0 * value
        total += value
    n = len(pairs)
    score = 100.0 * total / n if n else float("nan")
    return TaskScore(primary=metric, metrics={metric: score}, n=n, per_sample=per_sample)
