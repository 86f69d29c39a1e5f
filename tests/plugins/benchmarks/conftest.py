"""Tiny copies of each benchmark in its exact published file layout, written per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), colour).save(path)


def conversation(question: str, answer: str, image: bool = True) -> list[dict[str, str]]:
    prefix = "<image>\n" if image else ""
    return [{"from": "human", "value": prefix + question}, {"from": "gpt", "value": answer}]


def train_items(task: str, image_dir: str, answers: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{task}-train-{i}",
            "image": f"{image_dir}/train_{i}.png",
            "conversations": conversation(f"{task} question {i}?", a),
        }
        for i, a in enumerate(answers)
    ]


COIN_TESTS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # folder: (image dataset folder, test items)
    "ScienceQA": (
        "ScienceQA",
        [
            {
                "question_id": "101",
                "image": "ScienceQA/test/101.png",
                "text": "Which is red?\nA. apple\nB. sky\nAnswer with the option's letter.",
                "answer": "A",
            },
            {
                "question_id": "102",
                "text": "Which is a mammal?\nA. frog\nB. dog\nC. fish",
                "answer": "B",
            },
        ],
    ),
    "TextVQA": (
        "TextVQA",
        [
            {
                "question_id": 34602,
                "image": "TextVQA/train_images/a.png",
                "text": "What brand is this?\nAnswer the question using a single word or phrase.",
                "answer": "nokia",
            },
            {
                "question_id": 34603,
                "image": "TextVQA/train_images/b.png",
                "text": "How many?\nAnswer briefly.",
                "answer": "2",
            },
        ],
    ),
    "ImageNet": (
        "ImageNet",
        [
            {
                "question_id": "in-1",
                "image": "ImageNet/val/1.png",
                "text": "What is this?",
                "answer": "golden retriever",
            },
            {
                "question_id": "in-2",
                "image": "ImageNet/val/2.png",
                "text": "What is this?",
                "answer": "tabby cat",
            },
        ],
    ),
    "GQA": (
        "GQA",
        [
            {
                "question_id": "201",
                "image": "GQA/images/1.png",
                "text": "Is it left?",
                "answer": "yes",
            },
            {
                "question_id": "202",
                "image": "GQA/images/2.png",
                "text": "What colour?",
                "answer": "red",
            },
        ],
    ),
    "VizWiz": (
        "VizWiz",
        [
            {
                "question_id": "VizWiz_val_1.jpg",
                "image": "VizWiz/val/1.png",
                "text": "What is it?",
                "answer": "unanswerable",
            },
        ],
    ),
    "Grounding": (
        "COCO",
        [
            {
                "question_id": 9001,
                "image": "COCO/train2014/1.png",
                "text": "Please provide the bounding box coordinate of the region: the dog",
                "answer": "[0.10, 0.20, 0.50, 0.60]",
                "answer_bbox": "[0.10, 0.20, 0.50, 0.60]",
                "size": [640, 480],
            },
        ],
    ),
    "VQAv2": (
        "COCO",
        [
            {
                "question_id": 5001,
                "image": "COCO/val2014/2.png",
                "text": "How many dogs?",
                "answer": "2",
            },
        ],
    ),
    "OCRVQA": (
        "OCRVQA",
        [
            {
                "question_id": "ocr-1",
                "image": "OCRVQA/images/1.png",
                "text": "Who wrote this book?",
                "answer": "Jane Austen",
            },
        ],
    ),
}


def make_coin(
    root: Path,
    *,
    val_json: tuple[str, ...] = ("TextVQA", "VizWiz", "VQAv2"),
    asd: tuple[int, ...] = (),
) -> Path:
    for folder, (dataset, tests) in COIN_TESTS.items():
        name = "val.json" if folder in val_json else "test.json"
        write_json(root / "annotations" / folder / name, tests)
        train = train_items(folder, f"{dataset}/train", ["A", "B"])
        write_json(root / "annotations" / folder / "train.json", train)
        for x in asd:
            restyled = [dict(t, conversations=conversation("q?", f"styled {x}")) for t in train]
            write_json(root / "annotations" / folder / f"train_x{x}.json", restyled)
        for item in tests + train:
            if "image" in item:
                write_image(root / item["image"])
    problems = {
        "101": {"choices": ["apple", "sky"], "answer": 0, "image": "image.png"},
        "102": {"choices": ["frog", "dog", "fish"], "answer": 1, "image": None},
    }
    write_json(root / "ScienceQA" / "problems.json", problems)
    write_json(root / "ScienceQA" / "pid_splits.json", {"test": ["101", "102"], "train": []})
    answers_a = ["nokia"] * 7 + ["nokia phone", "nokia.", "samsung"]
    answers_b = ["2", "two", "2", "2", "3", "2", "two", "2", "2", "2"]
    write_json(
        root / "TextVQA" / "TextVQA_0.5.1_val.json",
        {
            "data": [
                {"question_id": 34602, "answers": answers_a},
                {"question_id": 34603, "answers": answers_b},
            ]
        },
    )
    write_json(
        root / "GQA" / "testdev_balanced_questions.json",
        {
            "201": {"answer": "yes", "isBalanced": True},
            "202": {"answer": "red", "isBalanced": True},
        },
    )
    return root


UCIT_TASKS = {  # folder: (train file, dataset folder, test rows)
    "ImageNet-R": ("train.json", "ImageNet-R", [("What is this?", "goldfish")]),
    "ArxivQA": ("train_4w.json", "ArxivQA", [("Which option?", "C")]),
    "VizWiz": (
        "train.json",
        "VizWiz",
        [("Describe.", "a can of soup"), ("Describe.", "a laptop keyboard")],
    ),
    "IconQA": ("train.json", "IconQA", [("How many?", "3")]),
    "CLEVR": ("train_4w.json", "CLEVR", [("Subtract 2 balls. How many left?", 4)]),
    "Flickr30k": (
        "train_brief_4w.json",
        "Flickr30k",
        [("Describe briefly.", "a dog runs"), ("Describe briefly.", "two men talk")],
    ),
}


def make_ucit(root: Path) -> Path:
    for folder, (train_name, dataset, rows) in UCIT_TASKS.items():
        base = root / "instructions" / folder
        train = train_items(folder, f"{dataset}/train", ["x", "y"])
        write_json(base / train_name, train)
        tests = [
            {
                "question_id": f"{folder}_{i}",
                "image": f"{dataset}/test/{i}.png",
                "text": q,
                "answer": a,
            }
            for i, (q, a) in enumerate(rows)
        ]
        write_json(base / "test_3000.json", tests)
        for item in train + tests:
            write_image(root / "datasets" / item["image"])
        if folder in ("VizWiz", "Flickr30k"):
            annotations = []
            for i, (_, answer) in enumerate(rows):
                for variant in (answer, f"{answer} in a photo"):
                    annotations.append(
                        {"image_id": i + 1, "id": len(annotations), "caption": variant}
                    )
            write_json(
                base / "val_coco_type_3000.json",
                {"images": [{"id": i + 1} for i in range(len(rows))], "annotations": annotations},
            )
    return root


DCL_TESTS = {
    "RS": [
        {
            "question_id": "rs-1",
            "image": "images/1.png",
            "text": "What is the land use?",
            "answer": "farmland",
        }
    ],
    "Med": [
        {"question_id": "med-1", "image": "images/1.png", "text": "Is this normal?", "answer": "no"}
    ],
    "AD": [
        {
            "question_id": "ad-1",
            "image": "images/1.png",
            "text": "Should the car stop?",
            "answer": "yes",
        }
    ],
    "Sci": [
        {
            "question_id": "sci-1",
            "image": "images/AI2D_1.png",
            "text": "Which stage?",
            "answer": "B",
        },
        {
            "question_id": "sci-2",
            "image": "images/MapQA_2.png",
            "text": "Which states have the highest value?",
            "answer": "ohio,texas",
        },
    ],
    "Fin": [
        {
            "question_id": "fin-1",
            "image": "images/1.png",
            "text": "Did revenue grow?",
            "answer": "Yes",
        },
        {
            "question_id": "fin-2",
            "image": "images/2.png",
            "text": "Which year?\nA. 2019\nB. 2020",
            "answer": "B",
        },
    ],
}
ACL_TESTS = {
    "OCR": [
        {
            "question_id": "ocr-1",
            "image": "images/1.png",
            "text": "What is written?",
            "answer": ["STOP", "stop sign"],
            "answer_type": "Regular Text Recognition",
        }
    ],
    "Math": [
        {"question_id": "testmini_1", "image": "images/1.png", "text": "What is x?", "answer": "3"}
    ],
    "VP": [
        {
            "question_id": "vp-1",
            "image": "images/1.png",
            "text": "How many cars?",
            "answer": "(B)",
            "task": "Count",
        }
    ],
    "APP": [
        {"question_id": "ALL_1", "image": "images/1.png", "text": "Where to tap?", "answer": "A"}
    ],
}


def make_mllm(root: Path, kind: str) -> Path:
    tests = DCL_TESTS if kind == "dcl" else ACL_TESTS
    for folder, items in tests.items():
        train_dir = root / folder
        test_dir = root / (folder if kind == "dcl" else f"{folder}_test")
        train = train_items(folder, "images", ["a", "b"])
        write_json(train_dir / "train.json", train)
        write_json(test_dir / "test.json", items)
        for item in train:
            write_image(train_dir / item["image"])
        for item in items:
            write_image(test_dir / item["image"])
    return root


@pytest.fixture
def coin_root(tmp_path: Path) -> Path:
    return make_coin(tmp_path / "coin", asd=(20, 40))


@pytest.fixture
def ucit_root(tmp_path: Path) -> Path:
    return make_ucit(tmp_path / "ucit")


@pytest.fixture
def dcl_root(tmp_path: Path) -> Path:
    return make_mllm(tmp_path / "dcl", "dcl")


@pytest.fixture
def acl_root(tmp_path: Path) -> Path:
    return make_mllm(tmp_path / "acl", "acl")
