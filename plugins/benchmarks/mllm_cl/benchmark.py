"""MLLM-CL (Zhao et al., 2025): domain continual learning (``mllm-dcl``) and ability continual
learning (``mllm-acl``), with the published per-domain matching rules.

Layouts of the published release::

    DCL: <root>/{RS,Med,AD,Sci,Fin}/{train.json,test.json,images/}   images relative to <root>/<D>
    ACL: <root>/{OCR,Math,VP,APP}/{train.json,images/}                 images relative to <root>/<A>
         <root>/{OCR,Math,VP,APP}_test/{test.json,images/}             images relative to the _test folder

Scoring that needs an external service is not called: Math & Logic (the published scorer
asks an LLM judge to extract answers) and GUI agent (predictions are submitted to an
evaluation server) are reported as not scored, with the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from cvit_bench.harness.types import Sample, TaskInfo

from ..common.check import DataFile
from ..common.llava_format import check_unique_ids, read_test, read_train
from ..common.real import RealBenchmark, TaskSpec


def _task(name: str, description: str, tokens: int = 128) -> TaskInfo:
    return TaskInfo(
        name=name, primary_metric="accuracy", max_new_tokens=tokens, description=description
    )


DCL_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(_task("RS", "remote sensing, word-boundary answer match"), "mllm_word", "RS"),
    TaskSpec(_task("Med", "medical VQA, answer contained in the output"), "mllm_contains", "Med"),
    TaskSpec(_task("AD", "autonomous driving, word-boundary answer match"), "mllm_word", "AD"),
    TaskSpec(
        _task("Sci", "science diagrams and maps, exact match and MapQA partial credit"),
        "mllm_science",
        "Sci",
    ),
    TaskSpec(
        _task("Fin", "financial charts, exact match of letter or yes/no"), "mllm_finance", "Fin"
    ),
)
ACL_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(_task("OCR", "text recognition and OCR VQA (OCRBench rule)", 2048), "mllm_ocr", "OCR"),
    TaskSpec(
        _task("Math", "math and logic (MathVista)", 2048),
        None,
        "Math",
        not_scored="the published Math & Logic scorer asks an external LLM judge "
        "(gpt-4o-mini) to extract answers; no faithful offline rule exists",
    ),
    TaskSpec(
        _task("VP", "visual perception (CV-Bench), answer contained in the output", 64),
        "mllm_perception",
        "VP",
    ),
    TaskSpec(
        _task("APP", "GUI agent", 128),
        None,
        "APP",
        not_scored="the published GUI agent score comes from an external evaluation "
        "server (predictions submitted as a TSV); it is not called",
    ),
)
FINANCE_YES_NO = " Only answer with yes or no directly."
FINANCE_LETTER = " Answer with the given letter directly, e.g., A, B, C, D."


class MllmDcl(RealBenchmark):
    """MLLM-CL domain continual learning: RS -> Med -> AD -> Sci -> Fin."""

    name: ClassVar[str] = "mllm-dcl"
    version: ClassVar[str] = "1.0"
    SPECS: ClassVar[tuple[TaskSpec, ...]] = DCL_SPECS

    def train_folder(self, task: str, root: Path | None = None) -> Path:
        return (root or self.require_root()) / self.spec(task).folder

    def test_folder(self, task: str, root: Path | None = None) -> Path:
        return self.train_folder(task, root)

    def data_files(self, root: Path) -> list[DataFile]:
        files = []
        for spec in self.SPECS:
            name = spec.info.name
            train, test = self.train_folder(name, root), self.test_folder(name, root)
            files.append(
                DataFile(train / "train.json", "train", task=name, image_root=train, id_field="id")
            )
            files.append(
                DataFile(
                    test / "test.json",
                    "test",
                    task=name,
                    image_root=test,
                    published_count=spec.test_count,
                    require_answer=spec.scorer is not None,
                )
            )
        return files

    def load_train(self, task: str) -> list[Sample]:
        folder = self.train_folder(task)
        return read_train(folder / "train.json", task=task, root=folder)

    def load_eval(self, task: str) -> list[Sample]:
        folder = self.test_folder(task)
        path = folder / "test.json"
        scored = self.spec(task).scorer is not None
        samples = read_test(path, task=task, root=folder, require_answer=scored)
        check_unique_ids(samples, str(path))
        if self.spec(task).scorer == "mllm_finance":
            # the published generator appends an instruction chosen by the answer's kind
            samples = [_finance_prompt(s) for s in samples]
        return samples


def _finance_prompt(sample: Sample) -> Sample:
    suffix = FINANCE_YES_NO if sample.answer in ("Yes", "No") else FINANCE_LETTER
    return dataclasses.replace(sample, prompt=sample.prompt + suffix)


class MllmAcl(MllmDcl):
    """MLLM-CL ability continual learning: OCR -> Math & Logic -> visual perception -> GUI."""

    name: ClassVar[str] = "mllm-acl"
    version: ClassVar[str] = "1.0"
    SPECS: ClassVar[tuple[TaskSpec, ...]] = ACL_SPECS

    def test_folder(self, task: str, root: Path | None = None) -> Path:
        return (root or self.require_root()) / f"{self.spec(task).folder}_test"
