"""What the real benchmarks (COIN and variants, UCIT, MLLM-CL) share: per-task specs, the
scoring options, dispatch to the published scorers, and the reference-file checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cvit_bench.harness.config import config_field
from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Prediction, Sample, TaskInfo, TaskScore

from . import scorers
from .base import BenchmarkBase, BenchmarkConfig
from .captions import score_captions
from .check import DataFile
from .llava_format import Problem, read_json

Scorer = Callable[..., TaskScore]

SCORERS: dict[str, Scorer] = {
    "scienceqa": scorers.score_scienceqa,
    "textvqa": scorers.score_textvqa,
    "imagenet": scorers.score_imagenet,
    "gqa": scorers.score_gqa,
    "exact": scorers.score_exact,
    "grounding": scorers.score_grounding,
    "ocrvqa": scorers.score_ocrvqa,
    "captions": score_captions,
    "mllm_word": scorers.score_mllm_word,
    "mllm_contains": scorers.score_mllm_contains,
    "mllm_science": scorers.score_mllm_science,
    "mllm_finance": scorers.score_mllm_finance,
    "mllm_ocr": scorers.score_mllm_ocr,
    "mllm_perception": scorers.score_mllm_perception,
}


@dataclass(frozen=True)
class TaskSpec:
    """How one task of a real benchmark is stored and scored.

    Attributes:
        info: the task as the runner sees it.
        scorer: a key of ``SCORERS``, or ``None`` with ``not_scored`` giving the reason.
        folder: the task's folder name in the published layout.
        test_count: the published number of test items, when known.
        not_scored: why the task cannot be scored offline.
    """

    info: TaskInfo
    scorer: str | None
    folder: str
    test_count: int | None = None
    not_scored: str = ""


@dataclass
class RealBenchmarkConfig(BenchmarkConfig):
    """Options of the real benchmarks."""

    scoring_mode: str = config_field(
        "published",
        choices=("published", "fixed"),
        help="published: reproduce the published scorers, quirks included; fixed: correct "
        "them (runs scored in different modes are never ranked together)",
    )


class RealBenchmark(BenchmarkBase):
    """A benchmark read from a published layout and scored by the published rules."""

    SPECS: ClassVar[tuple[TaskSpec, ...]] = ()
    config_class: ClassVar[type] = RealBenchmarkConfig
    reference_model: ClassVar[str | None] = "llava-1.5-7b"

    @classmethod
    def _specs(cls) -> dict[str, TaskSpec]:
        return {spec.info.name: spec for spec in cls.SPECS}

    def tasks(self) -> list[TaskInfo]:
        return [spec.info for spec in self.SPECS]

    def spec(self, task: str) -> TaskSpec:
        self.task_info(task)
        return self._specs()[task]

    def scorer_options(self, task: str) -> dict[str, Any]:
        """Extra keyword arguments for the task's scorer (ScienceQA's parser, ...)."""
        return {}

    def score(
        self,
        task: str,
        predictions: Sequence[Prediction],
        references: Sequence[Sample],
        *,
        missing: str = "error",
        mode: str | None = None,
    ) -> TaskScore:
        """Score ``task`` with its published rule in ``mode`` (default: the configured
        ``scoring_mode``); see :mod:`..scorers` for each rule and its quirks."""
        spec = self.spec(task)
        if spec.scorer is None:
            return scorers.not_scored(
                predictions,
                references,
                missing=missing,
                reason=spec.not_scored,
                metric=spec.info.primary_metric,
            )
        function = SCORERS[spec.scorer]
        score = function(
            predictions,
            references,
            mode=mode or self.scoring_mode,
            missing=missing,
            **self.scorer_options(task),
        )
        score.primary = spec.info.primary_metric
        if getattr(self.config, "max_eval", None) is not None:
            score.notes.append(f"evaluated on a subsample (max_eval={self.config.max_eval})")
        return score

    def identity_options(self) -> tuple[str, ...]:
        names = {f.name for f in dataclasses.fields(self.config)}
        base = {f.name for f in dataclasses.fields(RealBenchmarkConfig)}
        return tuple(sorted(names - base))


# -- reference files --------------------------------------------------------------------------
def json_file(
    path: Path,
    description: str,
    validate: Callable[[Any, str, list[Problem]], int],
    count: int | None = None,
    task: str | None = None,
) -> DataFile:
    return DataFile(
        path=path,
        kind="json",
        task=task,
        published_count=count,
        validate=validate,
        description=description,
    )


def validate_problems(data: Any, file: str, problems: list[Problem]) -> int:
    """ScienceQA ``problems.json``: ``{pid: {"choices": [...], "answer": int, ...}}``."""
    if not isinstance(data, dict):
        problems.append(Problem(file, "expected an object mapping problem ids to problems"))
        return 0
    for number, (pid, problem) in enumerate(data.items()):
        if not isinstance(problem, dict):
            problems.append(Problem(file, f"problem {pid!r} is not an object", number))
            continue
        for key, kind in (("choices", list), ("answer", int)):
            if not isinstance(problem.get(key), kind):
                problems.append(
                    Problem(file, f"problem {pid!r}: missing or not a {kind.__name__}", number, key)
                )
    return len(data)


def validate_pid_splits(data: Any, file: str, problems: list[Problem]) -> int:
    """ScienceQA ``pid_splits.json``: ``{"test": [pid, ...], ...}``."""
    if not isinstance(data, dict) or not isinstance(data.get("test"), list):
        problems.append(
            Problem(file, "expected an object with a 'test' list of problem ids", field="test")
        )
        return 0
    return len(data["test"])


def validate_textvqa(data: Any, file: str, problems: list[Problem]) -> int:
    """TextVQA ``TextVQA_0.5.1_val.json``: ``{"data": [{"question_id", "answers": 10}]}``."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        problems.append(Problem(file, "expected an object with a 'data' list", field="data"))
        return 0
    for index, entry in enumerate(data["data"]):
        if not isinstance(entry, dict) or "question_id" not in entry:
            problems.append(Problem(file, "missing", index, "question_id"))
            continue
        answers = entry.get("answers")
        if not isinstance(answers, list) or len(answers) != 10:
            found = len(answers) if isinstance(answers, list) else "no list"
            problems.append(
                Problem(file, f"exactly 10 human answers required, found {found}", index, "answers")
            )
    return len(data["data"])


def validate_gqa(data: Any, file: str, problems: list[Problem]) -> int:
    """GQA ``testdev_balanced_questions.json``: ``{question_id: {"answer", ...}}``."""
    if not isinstance(data, dict):
        problems.append(Problem(file, "expected an object mapping question ids to questions"))
        return 0
    for number, (qid, question) in enumerate(data.items()):
        if not isinstance(question, dict) or "answer" not in question:
            problems.append(Problem(file, f"question {qid!r}: missing", number, "answer"))
    return len(data)


def load_reference(path: Path) -> Any:
    """Read a reference file a scorer needs; a missing or malformed one is a ``DataError``."""
    data = read_json(path)
    if data is None:  # pragma: no cover - read_json raises without a problems list
        raise DataError(f"{path}: could not be read")
    return data


def with_meta(sample: Sample, **extra: Any) -> Sample:
    """A copy of ``sample`` with ``extra`` merged into its ``meta``."""
    return dataclasses.replace(sample, meta={**sample.meta, **extra})
