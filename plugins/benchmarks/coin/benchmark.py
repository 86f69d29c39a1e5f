"""COIN (CoIN, NeurIPS 2024) and its variants COIN-ASD (SEFE) and COIN-Sampled (HiDe-LLaVA).

Layout (SEFE's release; CoIN's own ``Instructions_Original`` folder is accepted too)::

    <root>/annotations/<Task>/train.json          LLaVA conversations
    <root>/annotations/<Task>/test.json           (or val.json) COIN test items
    <root>/annotations/<Task>/train_x{X}.json     COIN-ASD training variants
    <root>/Instructions_Type2/<Task>/...          CoIN's second instruction templates
    <root>/ScienceQA/problems.json, pid_splits.json
    <root>/TextVQA/TextVQA_0.5.1_val.json
    <root>/GQA/testdev_balanced_questions.json
    <root>/<Dataset>/...                          images, named relative to <root>
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cvit_bench.harness.config import config_field
from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Sample, TaskInfo

from ..common.check import DataFile
from ..common.llava_format import CoinLayout, Problem, parse_test_entries, read_json_list
from ..common.real import (
    RealBenchmark,
    RealBenchmarkConfig,
    TaskSpec,
    json_file,
    load_reference,
    validate_gqa,
    validate_pid_splits,
    validate_problems,
    validate_textvqa,
    with_meta,
)

_NEW_TOKENS = 128  # HiDe-LLaVA's budget; SEFE evaluates with 1024, CVIT with 200


def _task(name: str, description: str) -> TaskInfo:
    return TaskInfo(
        name=name, primary_metric="accuracy", max_new_tokens=_NEW_TOKENS, description=description
    )


COIN_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(
        _task("ScienceQA", "science multiple choice, letter answers"),
        "scienceqa",
        "ScienceQA",
        test_count=4241,
    ),
    TaskSpec(
        _task("TextVQA", "reading text in images, VQA soft accuracy"),
        "textvqa",
        "TextVQA",
        test_count=5000,
    ),
    TaskSpec(
        _task("ImageNet", "image classification by name, substring match"), "imagenet", "ImageNet"
    ),
    TaskSpec(
        _task("GQA", "compositional questions, balanced test-dev"), "gqa", "GQA", test_count=12578
    ),
    TaskSpec(_task("VizWiz", "questions from blind users, exact match"), "exact", "VizWiz"),
    TaskSpec(
        _task("Grounding", "referring expressions to boxes, IoU > 0.5"), "grounding", "Grounding"
    ),
    TaskSpec(_task("VQAv2", "visual questions, exact match"), "exact", "VQAv2"),
    TaskSpec(_task("OCRVQA", "book-cover OCR questions, exact match"), "ocrvqa", "OCRVQA"),
)
INSTRUCTION_DIRS = {"original": None, "type2": "Instructions_Type2"}


@dataclass
class CoinConfig(RealBenchmarkConfig):
    """Options of ``coin``."""

    scienceqa_parser: str = config_field(
        "coin",
        choices=("coin", "sefe"),
        help="ScienceQA letter parser: CoIN's (first one-letter word) or SEFE/HiDe-LLaVA's "
        "('The answer is X.')",
    )
    instructions: str = config_field(
        "original",
        choices=("original", "type2"),
        help="instruction templates: the original ones, or CoIN's second set "
        "(Instructions_Type2) for instruction-robustness studies",
    )


class Coin(RealBenchmark):
    """CoIN: 8 instruction-tuning tasks, ScienceQA to OCR-VQA."""

    name: ClassVar[str] = "coin"
    version: ClassVar[str] = "1.0"
    config_class: ClassVar[type] = CoinConfig
    SPECS: ClassVar[tuple[TaskSpec, ...]] = COIN_SPECS

    def layout(self, root: Path | None = None) -> CoinLayout:
        root = root or self.require_root()
        return CoinLayout(root, INSTRUCTION_DIRS[getattr(self.config, "instructions", "original")])

    def train_file_name(self, task: str) -> str:
        return "train.json"

    def scorer_options(self, task: str) -> dict[str, Any]:
        if self.spec(task).scorer == "scienceqa":
            return {"parser": self.config.scienceqa_parser}
        return {}

    # -- files --------------------------------------------------------------------------------
    def data_files(self, root: Path) -> list[DataFile]:
        layout = self.layout(root)
        files: list[DataFile] = []
        for spec in self.SPECS:
            name = spec.info.name
            files.append(
                DataFile(
                    layout.train_file(spec.folder, self.train_file_name(name)),
                    "train",
                    task=name,
                    id_field="id",
                )
            )
            files.append(
                DataFile(
                    layout.test_file(spec.folder),
                    "test",
                    task=name,
                    published_count=spec.test_count,
                )
            )
        files += [
            json_file(
                root / "ScienceQA" / "problems.json",
                "ScienceQA problems",
                validate_problems,
                count=21208,
                task="ScienceQA",
            ),
            json_file(
                root / "ScienceQA" / "pid_splits.json",
                "ScienceQA splits",
                validate_pid_splits,
                task="ScienceQA",
            ),
            json_file(
                root / "TextVQA" / "TextVQA_0.5.1_val.json",
                "TextVQA human answers",
                validate_textvqa,
                task="TextVQA",
            ),
            json_file(
                root / "GQA" / "testdev_balanced_questions.json",
                "GQA balanced questions",
                validate_gqa,
                count=12578,
                task="GQA",
            ),
        ]
        return files

    def cross_check(self, root: Path) -> list[Problem]:
        """Test ids the scorers look up in reference files must be there: ScienceQA pids in
        problems.json, TextVQA ids in the human answers (errors); GQA ids missing from the
        balanced questions are not counted by the published scorer (warning)."""
        found: list[Problem] = []
        layout = self.layout(root)
        for spec in self.SPECS:
            lookup = _REFERENCE_KEYS.get(spec.scorer or "")
            if lookup is None:
                continue
            relative, keys_of, severity = lookup
            try:
                keys = keys_of(load_reference(root / relative))
            except (DataError, AttributeError, TypeError):
                continue  # the reference file's own problems are reported already
            test_file = layout.test_file(spec.folder)
            items = read_json_list(test_file, [])
            positions: list[int] = []
            samples = parse_test_entries(
                items or [],
                task=spec.info.name,
                root=root,
                file=str(test_file),
                problems=[],
                positions=positions,
            )
            absent = [(i, s.id) for i, s in zip(positions, samples) if str(s.id) not in keys]
            for index, qid in absent[:20]:
                found.append(
                    Problem(
                        str(test_file),
                        f"id {qid!r} is not in {relative}",
                        index,
                        "question_id",
                        severity,
                    )
                )
            if len(absent) > 20:
                found.append(
                    Problem(
                        str(test_file),
                        f"{len(absent) - 20} more ids are not in {relative}",
                        severity=severity,
                    )
                )
        return found

    def load_train(self, task: str) -> list[Sample]:
        spec = self.spec(task)
        return self.layout().read_train(spec.folder, self.train_file_name(task), task_name=task)

    def load_eval(self, task: str) -> list[Sample]:
        spec = self.spec(task)
        samples = self.layout().read_test(spec.folder, task_name=task)
        root = self.require_root()
        if spec.scorer == "scienceqa":
            return _attach_scienceqa(samples, root)
        if spec.scorer == "textvqa":
            return _attach_textvqa(samples, root)
        if spec.scorer == "gqa":
            return _attach_gqa(samples, root)
        return samples


_REFERENCE_KEYS: dict[str, tuple[str, Callable[[Any], set[str]], str]] = {
    "scienceqa": ("ScienceQA/problems.json", lambda data: set(data), "error"),
    "textvqa": (
        "TextVQA/TextVQA_0.5.1_val.json",
        lambda data: {str(e.get("question_id")) for e in data["data"]},
        "error",
    ),
    "gqa": ("GQA/testdev_balanced_questions.json", lambda data: set(data), "warning"),
}


def _attach_scienceqa(samples: list[Sample], root: Path) -> list[Sample]:
    path = root / "ScienceQA" / "problems.json"
    problems = load_reference(path)
    out = []
    for sample in samples:
        problem = problems.get(str(sample.id)) if isinstance(problems, dict) else None
        if not isinstance(problem, dict):
            raise DataError(f"{path}: ScienceQA test id {sample.id!r} is not a problem id there")
        out.append(
            with_meta(
                sample,
                sqa_answer=problem.get("answer"),
                sqa_n_choices=len(problem.get("choices") or []),
                sqa_has_image=problem.get("image") is not None,
            )
        )
    return out


def _attach_textvqa(samples: list[Sample], root: Path) -> list[Sample]:
    path = root / "TextVQA" / "TextVQA_0.5.1_val.json"
    data = load_reference(path)
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected an object with a 'data' list")
    answers = {str(e.get("question_id")): e.get("answers") for e in entries if isinstance(e, dict)}
    out = []
    for sample in samples:
        if str(sample.id) not in answers:
            raise DataError(f"{path}: TextVQA test id {sample.id!r} has no human answers there")
        out.append(with_meta(sample, answers=answers[str(sample.id)]))
    return out


def _attach_gqa(samples: list[Sample], root: Path) -> list[Sample]:
    questions = load_reference(root / "GQA" / "testdev_balanced_questions.json")
    out = []
    for sample in samples:
        question = questions.get(str(sample.id)) if isinstance(questions, dict) else None
        if isinstance(question, dict):
            out.append(
                with_meta(
                    sample,
                    gqa_answer=question.get("answer"),
                    gqa_balanced=bool(question.get("isBalanced", True)),
                )
            )
        else:  # not a balanced question: the published scorer only counts balanced ones
            out.append(with_meta(sample, gqa_balanced=False))
    return out


@dataclass
class CoinAsdConfig(CoinConfig):
    """Options of ``coin-asd``."""

    asd_x: int = config_field(
        20,
        help="COIN-ASD variant: train on train_x{X}.json, where X% of each task's answers "
        "were rewritten into other styles",
    )


class CoinAsd(Coin):
    """COIN-ASD (SEFE): COIN's tasks and test files, answers of the training files partly
    rewritten into other styles (brief, detailed, multiple choice, yes/no)."""

    name: ClassVar[str] = "coin-asd"
    version: ClassVar[str] = "1.0"
    config_class: ClassVar[type] = CoinAsdConfig

    def train_file_name(self, task: str) -> str:
        return f"train_x{self.config.asd_x}.json"

    def load_train(self, task: str) -> list[Sample]:
        spec = self.spec(task)
        path = self.layout().train_file(spec.folder, self.train_file_name(task))
        if not path.is_file():
            present = sorted(p.name for p in path.parent.glob("train_x*.json"))
            raise DataError(
                f"{path}: file not found (COIN-ASD variant asd_x="
                f"{self.config.asd_x}); variants present: "
                f"{', '.join(present) or 'none'}"
            )
        return super().load_train(task)


@dataclass
class CoinSampledConfig(CoinConfig):
    """Options of ``coin-sampled``: SEFE/HiDe-LLaVA's ScienceQA parser by default."""

    scienceqa_parser: str = config_field(
        "sefe",
        choices=("coin", "sefe"),
        help="ScienceQA letter parser (HiDe-LLaVA's lineage uses 'sefe')",
    )


class CoinSampled(Coin):
    """COIN-Sampled (HiDe-LLaVA): a subsample of COIN's files in COIN's layout, scored with the
    HiDe-LLaVA lineage's ScienceQA parser by default."""

    name: ClassVar[str] = "coin-sampled"
    version: ClassVar[str] = "1.0"
    config_class: ClassVar[type] = CoinSampledConfig
    SPECS: ClassVar[tuple[TaskSpec, ...]] = tuple(
        TaskSpec(s.info, s.scorer, s.folder) for s in COIN_SPECS
    )  # no published counts
