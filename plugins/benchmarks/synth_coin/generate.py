"""Writing synth-coin to disk in COIN's layout, deterministically from a seed.

Layout (the same as a real COIN release in SEFE's layout, so the same reader reads both)::

    <root>/synth-coin.json                       what was generated, and with which settings
    <root>/annotations/<Task>/train.json         LLaVA conversation format
    <root>/annotations/<Task>/test.json          COIN test format
    <root>/ScienceQA/{train,test}/<pid>/image.png, problems.json, pid_splits.json
    <root>/TextVQA/train_images/<image_id>.png, TextVQA_0.5.1_val.json
    <root>/ImageNet/{train,test}/<n>.png
    <root>/GQA/images/<name>.png, testdev_balanced_questions.json
    <root>/VizWiz/{train,test}/VizWiz_<split>_<n>.png
    <root>/COCO/{train,test}2014/COCO_<split>2014_<n>.png   (Grounding and VQAv2)
    <root>/OCRVQA/images/<split>_<n>.png

Item ``i`` of a task and split is drawn from its own random generator seeded by
``(seed, task, split, i)``, so the first items stay the same when more are asked for; its answer
class comes from a seeded permutation of each block of classes, so the classes are balanced.
Test items whose content (everything but noise and colour jitter) equals a training item's are
redrawn, so the splits are disjoint. Tasks are written in parallel processes, one task per job
(``cvit_bench.harness.parallel``); the files do not depend on how many.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.parallel import map_jobs

from .tasks import SPECS, TASKS, Drawn, TaskSpec

GENERATOR_VERSION = "11"
"""Changes whenever the same settings would produce different files."""

MANIFEST = "synth-coin.json"
SPLITS = ("train", "test")
_SPLIT_CODE = {"train": 0, "test": 1}
_MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class SynthSettings:
    """Everything the generated files depend on."""

    seed: int = 0
    train_per_task: int = 1000
    eval_per_task: int = 200
    image_size: int = 32

    def __post_init__(self) -> None:
        if self.train_per_task < 1 or self.eval_per_task < 1:
            raise UsageError(
                "synth-coin needs at least one training and one test item per task "
                f"(got train={self.train_per_task}, eval={self.eval_per_task})"
            )
        if self.image_size < 16:
            raise UsageError(
                f"synth-coin images must be at least 16 pixels wide (got {self.image_size})"
            )

    def count(self, split: str, spec: TaskSpec | None = None) -> int:
        """Items of ``split`` for the task ``spec`` (training items scale with its
        ``train_scale``; without a task, the per-task setting itself)."""
        if split != "train":
            return self.eval_per_task
        return self.train_per_task * (spec.train_scale if spec is not None else 1)

    def manifest(self) -> dict[str, Any]:
        return {
            "generator": "synth-coin",
            "generator_version": GENERATOR_VERSION,
            **asdict(self),
            "tasks": [t.name for t in TASKS],
            "train_items": {t.name: self.count("train", t) for t in TASKS},
        }

    def digest(self) -> str:
        """A short hash naming these settings (the cache folder's name)."""
        blob = json.dumps(self.manifest(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng(list(words))


def _balanced_class(
    settings: SynthSettings,
    task_index: int,
    split: str,
    index: int,
    classes: int,
    cache: dict[int, np.ndarray],
) -> int:
    block = index // classes
    if block not in cache:
        cache[block] = _rng(settings.seed, task_index, _SPLIT_CODE[split], 1, block).permutation(
            classes
        )
    return int(cache[block][index % classes])


def draw_items(spec: TaskSpec, settings: SynthSettings) -> Iterator[tuple[str, int, Drawn]]:
    """Every item of one task: ``(split, index, drawn)``, training items first."""
    task_index = TASKS.index(spec)
    seen: set[tuple[Any, ...]] = set()
    for split in SPLITS:
        blocks: dict[int, np.ndarray] = {}
        for index in range(settings.count(split, spec)):
            cls = _balanced_class(settings, task_index, split, index, spec.classes, blocks)
            for attempt in range(_MAX_ATTEMPTS):
                rng = _rng(settings.seed, task_index, _SPLIT_CODE[split], 0, index, attempt)
                drawn = spec.draw(rng, settings.image_size, cls)
                if drawn.key not in seen:
                    break
            else:
                raise DataError(
                    f"synth-coin {spec.name}: could not draw {settings.count(split, spec)} "
                    f"distinct {split} items at image size {settings.image_size}; "
                    "ask for fewer items or larger images"
                )
            seen.add(drawn.key)
            yield split, index, drawn


def _human(prompt: str) -> str:
    return f"<image>\n{prompt}"


class _TaskWriter:
    """Collects one task's annotation entries and the reference files its scorer reads."""

    def __init__(self, root: Path, spec: TaskSpec, settings: SynthSettings) -> None:
        self.root = root
        self.spec = spec
        self.settings = settings
        self.entries: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
        self.references: dict[str, Any] = {}

    def names(self, split: str, index: int) -> tuple[Any, str]:
        """(id, image path relative to the root) of item ``index`` of ``split``."""
        name, train_n = self.spec.name, self.settings.count("train", self.spec)
        if name == "ScienceQA":
            pid = str(index + 1 + (train_n if split == "test" else 0))
            return pid, f"ScienceQA/{split}/{pid}/image.png"
        if name == "TextVQA":
            image = f"TextVQA/train_images/{split}{index:07d}.png"
            return (30_000 + index if split == "test" else f"textvqa_{index}"), image
        if name == "ImageNet":
            return (
                index if split == "test" else f"imagenet_{index}",
                f"ImageNet/{split}/{index:06d}.png",
            )
        if name == "GQA":
            qid = str(20_000_000 + _SPLIT_CODE[split] * 1_000_000 + index)
            return qid, f"GQA/images/{split}{index:07d}.png"
        if name == "VizWiz":
            file = f"VizWiz_{split}_{index:08d}.png"
            return file, f"VizWiz/{split}/{file}"
        if name in ("Grounding", "VQAv2"):
            number = (100_000 if name == "Grounding" else 200_000) + index
            path = f"COCO/{split}2014/COCO_{split}2014_{number:012d}.png"
            if split == "test":
                return (index if name == "Grounding" else number * 10), path
            return f"{name.lower()}_{index}", path
        if name == "OCRVQA":
            return f"{split}_{index:06d}", f"OCRVQA/images/{split}_{index:06d}.png"
        raise AssertionError(name)

    def add(self, split: str, index: int, drawn: Drawn) -> str:
        item_id, image = self.names(split, index)
        if split == "train":
            self.entries[split].append(
                {
                    "id": item_id,
                    "image": image,
                    "conversations": [
                        {"from": "human", "value": _human(drawn.prompt)},
                        {"from": "gpt", "value": drawn.answer},
                    ],
                }
            )
        else:
            entry: dict[str, Any] = {
                "question_id": item_id,
                "image": image,
                "text": drawn.prompt,
                "answer": drawn.answer,
            }
            if self.spec.name == "Grounding":
                entry["answer_bbox"] = drawn.answer
                entry["size"] = [self.settings.image_size, self.settings.image_size]
            elif "question_type" in drawn.extra:
                entry["question_type"] = drawn.extra["question_type"]
            self.entries[split].append(entry)
        self._reference(split, index, item_id, image, drawn)
        return image

    def _reference(self, split: str, index: int, item_id: Any, image: str, drawn: Drawn) -> None:
        name = self.spec.name
        if name == "ScienceQA":
            problems = self.references.setdefault("ScienceQA/problems.json", {})
            problems[item_id] = {
                "question": drawn.extra["question_only"],
                "choices": drawn.extra["choices"],
                "answer": drawn.extra["answer_index"],
                "hint": "",
                "image": "image.png",
                "task": "closed choice",
                "grade": "grade1",
                "subject": "natural science",
                "topic": "colours",
                "category": "Identify colours",
                "skill": "colour naming",
                "lecture": "",
                "solution": "",
                "split": split,
            }
            splits = self.references.setdefault(
                "ScienceQA/pid_splits.json",
                {
                    "train": [],
                    "val": [],
                    "test": [],
                    "trainval": [],
                    "minival": [],
                    "minitrain": [],
                },
            )
            splits[split].append(item_id)
            if split == "train":
                splits["trainval"].append(item_id)
        elif name == "TextVQA" and split == "test":
            data = self.references.setdefault(
                "TextVQA/TextVQA_0.5.1_val.json",
                {
                    "dataset_type": "val",
                    "dataset_name": "textvqa",
                    "dataset_version": "0.5.1",
                    "data": [],
                },
            )
            question = drawn.question
            data["data"].append(
                {
                    "question": question,
                    "image_id": Path(image).stem,
                    "image_classes": [],
                    "flickr_original_url": "",
                    "flickr_300k_url": "",
                    "image_width": self.settings.image_size,
                    "image_height": self.settings.image_size,
                    "answers": [drawn.answer] * 10,
                    "question_tokens": question.rstrip("?").split(),
                    "question_id": item_id,
                    "set_name": "val",
                }
            )
        elif name == "GQA" and split == "test":
            questions = self.references.setdefault("GQA/testdev_balanced_questions.json", {})
            questions[item_id] = {
                "question": drawn.question,
                "answer": drawn.answer,
                "fullAnswer": f"The shape is {drawn.answer}.",
                "imageId": Path(image).stem,
                "isBalanced": True,
                "types": {"structural": "query", "semantic": "attr", "detailed": "colorSide"},
            }


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_dataset(
    root: str | os.PathLike[str],
    settings: SynthSettings,
    tasks: Sequence[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Write synth-coin into ``root`` (created; expected empty) and return it, drawing tasks
    in up to ``workers`` processes (default: the usable CPUs, or ``$CVIT_BENCH_WORKERS``).

    Not atomic: use :func:`generate` for that.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wanted = [spec for spec in TASKS if tasks is None or spec.name in tasks]
    # the largest tasks first, so that no worker starts one as the others run out of work
    jobs = sorted(wanted, key=lambda spec: -settings.count("train", spec))
    map_jobs(_write_task, [(root, spec.name, settings) for spec in jobs], workers)
    manifest = settings.manifest()
    manifest["tasks"] = [spec.name for spec in wanted]
    _dump(root / MANIFEST, manifest)
    return root


def _write_task(job: tuple[Path, str, SynthSettings]) -> None:
    """Every image, annotation and reference file of one task."""
    root, name, settings = job
    spec = SPECS[name]
    writer = _TaskWriter(root, spec, settings)
    made_dirs: set[Path] = set()
    for split, index, drawn in draw_items(spec, settings):
        image = root / writer.add(split, index, drawn)
        if image.parent not in made_dirs:
            image.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(image.parent)
        drawn.image.save(image, format="PNG")
    _write_annotations(root, spec, writer)


def _write_annotations(root: Path, spec: TaskSpec, writer: _TaskWriter) -> None:
    for split in SPLITS:
        _dump(root / "annotations" / spec.name / f"{split}.json", writer.entries[split])
    for relative, obj in writer.references.items():
        _dump(root / relative, obj)


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings a synth-coin folder was generated with, or ``None`` if it is not one."""
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == "synth-coin" else None


def generate(
    root: str | os.PathLike[str], settings: SynthSettings, workers: int | None = None
) -> Path:
    """Write synth-coin to ``root`` atomically and return it.

    Files are written to a temporary sibling folder that is renamed to ``root`` only when
    complete, so an interrupted generation leaves nothing at ``root``. ``root`` must be missing
    or an empty folder; if another process finished the same folder first, its copy is kept.
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not an empty folder: choose a new output folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        write_dataset(tmp, settings, workers=workers)
        try:
            os.replace(tmp, root)
        except OSError:
            if read_manifest(root) == settings.manifest():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
