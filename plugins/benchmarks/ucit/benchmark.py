"""UCIT (HiDe-LLaVA, ACL 2025): six tasks with little overlap with LLaVA's instruction data.

Layout of the published release::

    <root>/datasets/<Dataset>/...                       images, named relative to datasets/
    <root>/instructions/<Task>/train.json | train_4w.json   (Flickr30k: train_brief_4w.json)
    <root>/instructions/<Task>/test_3000.json
    <root>/instructions/{VizWiz,Flickr30k}/val_coco_type_3000.json   COCO-style captions

Version notes: 1.0 pairs caption predictions with COCO image ids by id (row index of
``test_3000.json`` plus one). A VizWiz caption file once held 2999 image ids for 3000 test
rows (fixed upstream); the data check reports such a file.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Sample, TaskInfo

from ..common.check import DataFile
from ..common.llava_format import Problem, check_unique_ids, read_test, read_train
from ..common.real import RealBenchmark, TaskSpec, json_file, load_reference, with_meta

_NEW_TOKENS = 128


def _task(name: str, metric: str, description: str) -> TaskInfo:
    return TaskInfo(
        name=name, primary_metric=metric, max_new_tokens=_NEW_TOKENS, description=description
    )


UCIT_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(
        _task("ImageNet-R", "accuracy", "renditions of ImageNet classes, exact match"),
        "exact",
        "ImageNet-R",
        test_count=3000,
    ),
    TaskSpec(
        _task("ArxivQA", "accuracy", "questions on scientific figures, exact match"),
        "exact",
        "ArxivQA",
        test_count=3000,
    ),
    TaskSpec(
        _task("VizWiz-caption", "Average", "captions of blind users' photos"),
        "captions",
        "VizWiz",
        test_count=3000,
    ),
    TaskSpec(
        _task("IconQA", "accuracy", "icon and diagram questions, exact match"),
        "exact",
        "IconQA",
        test_count=3000,
    ),
    TaskSpec(
        _task("CLEVR-Math", "accuracy", "arithmetic on CLEVR scenes, exact match"),
        "exact",
        "CLEVR",
        test_count=3000,
    ),
    TaskSpec(
        _task("Flickr30k", "Average", "brief captions of Flickr photos"),
        "captions",
        "Flickr30k",
        test_count=3000,
    ),
)
TRAIN_NAMES = {
    "Flickr30k": ("train_brief_4w.json", "train.json"),
    "ArxivQA": ("train_4w.json", "train.json"),
    "CLEVR": ("train_4w.json", "train.json"),
}
DEFAULT_TRAIN_NAMES = ("train.json", "train_4w.json")
TEST_NAME = "test_3000.json"
COCO_NAME = "val_coco_type_3000.json"


def _validate_coco(data: Any, file: str, problems: list[Problem]) -> int:
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        problems.append(
            Problem(
                file, "expected a COCO-style object with an 'annotations' list", field="annotations"
            )
        )
        return 0
    for index, entry in enumerate(data["annotations"]):
        if not isinstance(entry, dict):
            problems.append(Problem(file, "expected an object", index))
            continue
        for key in ("image_id", "caption"):
            if key not in entry:
                problems.append(Problem(file, "missing", index, key))
    images = data.get("images")
    return (
        len(images)
        if isinstance(images, list)
        else len({e.get("image_id") for e in data["annotations"] if isinstance(e, dict)})
    )


class Ucit(RealBenchmark):
    """UCIT: ImageNet-R, ArxivQA, VizWiz-caption, IconQA, CLEVR-Math, Flickr30k."""

    name: ClassVar[str] = "ucit"
    version: ClassVar[str] = "1.0"
    SPECS: ClassVar[tuple[TaskSpec, ...]] = UCIT_SPECS

    def folder(self, task: str, root: Path | None = None) -> Path:
        return (root or self.require_root()) / "instructions" / self.spec(task).folder

    def image_root(self, root: Path | None = None) -> Path:
        return (root or self.require_root()) / "datasets"

    def train_file(self, task: str, root: Path | None = None) -> Path:
        folder = self.folder(task, root)
        names = TRAIN_NAMES.get(self.spec(task).folder, DEFAULT_TRAIN_NAMES)
        for name in names:
            if (folder / name).is_file():
                return folder / name
        return folder / names[0]

    def data_files(self, root: Path) -> list[DataFile]:
        files: list[DataFile] = []
        for spec in self.SPECS:
            name = spec.info.name
            folder = self.folder(name, root)
            files.append(
                DataFile(
                    self.train_file(name, root),
                    "train",
                    task=name,
                    image_root=self.image_root(root),
                    id_field="id",
                )
            )
            files.append(
                DataFile(
                    folder / TEST_NAME,
                    "test",
                    task=name,
                    image_root=self.image_root(root),
                    published_count=spec.test_count,
                )
            )
            if spec.scorer == "captions":
                files.append(
                    json_file(
                        folder / COCO_NAME,
                        f"{name} COCO-style captions",
                        _validate_coco,
                        count=spec.test_count,
                        task=name,
                    )
                )
        return files

    def cross_check(self, root: Path) -> list[Problem]:
        """Each caption test row i must have captions under COCO image id i + 1."""
        problems: list[Problem] = []
        for spec in self.SPECS:
            if spec.scorer != "captions":
                continue
            folder = self.folder(spec.info.name, root)
            try:
                rows = read_test(folder / TEST_NAME, task=spec.info.name, root=root)
                captions = _captions_by_image(load_reference(folder / COCO_NAME))
            except DataError:
                continue  # already reported for the file itself
            missing = [i + 1 for i in range(len(rows)) if i + 1 not in captions]
            if missing:
                problems.append(
                    Problem(
                        str(folder / COCO_NAME),
                        f"{len(missing)} of {len(rows)} test rows have no captions (image ids "
                        f"{', '.join(map(str, missing[:5]))}); their test answer is used instead",
                        severity="warning",
                    )
                )
        return problems

    def load_train(self, task: str) -> list[Sample]:
        return read_train(self.train_file(task), task=task, root=self.image_root())

    def load_eval(self, task: str) -> list[Sample]:
        path = self.folder(task) / TEST_NAME
        samples = read_test(path, task=task, root=self.image_root())
        check_unique_ids(samples, str(path))
        if self.spec(task).scorer != "captions":
            return samples
        coco = load_reference(self.folder(task) / COCO_NAME)
        captions = _captions_by_image(coco)
        size = len(coco["images"]) if isinstance(coco.get("images"), list) else len(captions)
        return [
            with_meta(s, coco_image_id=i + 1, captions=captions.get(i + 1, []), coco_set_size=size)
            for i, s in enumerate(samples)
        ]


def _captions_by_image(coco: Any) -> dict[int, list[str]]:
    if not isinstance(coco, dict) or not isinstance(coco.get("annotations"), list):
        raise DataError("COCO-style caption file without an 'annotations' list")
    captions: dict[int, list[str]] = defaultdict(list)
    for entry in coco["annotations"]:
        if isinstance(entry, dict) and "image_id" in entry and "caption" in entry:
            captions[int(entry["image_id"])].append(str(entry["caption"]))
    return dict(captions)
