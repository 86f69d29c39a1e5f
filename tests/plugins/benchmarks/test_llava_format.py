from __future__ import annotations

import json
import os

import pytest

from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Turn
from cvit_bench.plugins.benchmarks.common.base import BenchmarkBase, BenchmarkConfig, subsample
from cvit_bench.plugins.benchmarks.common.llava_format import (
    CoinLayout,
    read_test,
    read_train,
    strip_image_token,
)


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


TRAIN = [
    {
        "id": "a1",
        "image": "ScienceQA/train/1.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhich is red?\nA. x\nB. y"},
            {"from": "gpt", "value": "A"},
        ],
    },
    {
        "id": 7,
        "conversations": [
            {"from": "human", "value": "What is 2+2?"},
            {"from": "gpt", "value": "4"},
        ],
        "source": "text-only",
    },
    {
        "id": "m",
        "image": "a/b.jpg",
        "conversations": [
            {"from": "human", "value": "Describe.\n<image>"},
            {"from": "gpt", "value": "A cat."},
            {"from": "human", "value": "Colour?"},
            {"from": "gpt", "value": "Black."},
        ],
    },
]


def test_train_reader_builds_samples(tmp_path):
    path = write(tmp_path / "annotations" / "T" / "train.json", TRAIN)
    samples = read_train(path, task="T", root=tmp_path)
    assert [s.id for s in samples] == ["a1", 7, "m"]
    first = samples[0]
    assert first.prompt == "Which is red?\nA. x\nB. y"
    assert first.answer == "A"
    assert first.image == os.path.join(str(tmp_path), "ScienceQA/train/1.png")
    assert os.path.isabs(first.image)
    assert first.turns == ()
    assert samples[1].image is None and samples[1].meta == {"source": "text-only"}
    multi = samples[2]
    assert multi.prompt == "Describe."
    assert multi.turns == (Turn("Describe.", "A cat."), Turn("Colour?", "Black."))
    assert multi.conversation()[1].gpt == "Black."


def test_test_reader_keeps_id_types_and_extra_fields(tmp_path):
    items = [
        {
            "question_id": "q1",
            "image": "COCO/1.jpg",
            "text": "Where is the dog?",
            "answer": "[0.1, 0.2, 0.5, 0.6]",
            "answer_bbox": "[0.1, 0.2, 0.5, 0.6]",
            "size": [640, 480],
        },
        {"question_id": 12, "image": "COCO/2.jpg", "text": "<image>\nHow many?", "answer": 3},
    ]
    path = write(tmp_path / "test.json", items)
    samples = read_test(path, task="G", root=tmp_path)
    assert samples[0].id == "q1" and samples[1].id == 12
    assert samples[0].meta["answer_bbox"] == "[0.1, 0.2, 0.5, 0.6]"
    assert samples[0].meta["size"] == [640, 480]
    assert samples[1].prompt == "How many?"
    assert samples[1].answer == "3" and samples[1].meta["answer"] == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"id": "a", "conversations": [', "not valid JSON"),
        ({"id": "a"}, "expected a JSON list"),
        ([{"id": "a", "conversation": []}], "entry 0: field 'conversations': missing"),
        (
            [
                TRAIN[0],
                {
                    "id": "b",
                    "conversations": [
                        {"from": "gpt", "value": "x"},
                        {"from": "human", "value": "y"},
                    ],
                },
            ],
            "entry 1: field 'conversations[0].from'",
        ),
        (
            [{"id": "a", "conversations": [{"from": "human", "value": "x"}]}],
            "entry 0: field 'conversations'",
        ),
    ],
)
def test_train_reader_errors_name_file_entry_field(tmp_path, content, expected):
    path = write(tmp_path / "train.json", content)
    with pytest.raises(DataError) as info:
        read_train(path, task="T", root=tmp_path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_test_reader_wrong_field_name(tmp_path):
    path = write(
        tmp_path / "test.json",
        [
            {"question_id": 1, "text": "q", "answer": "a"},
            {"questionid": 2, "text": "q", "answer": "a"},
        ],
    )
    with pytest.raises(DataError, match=r"entry 1: field 'question_id': missing"):
        read_test(path, task="T", root=tmp_path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_test(tmp_path / "nope.json", task="T", root=tmp_path)


def test_coin_layout_accepts_val_json_and_rejects_duplicate_ids(tmp_path):
    layout = CoinLayout(tmp_path)
    write(tmp_path / "annotations" / "GQA" / "train.json", TRAIN[:1])
    write(
        tmp_path / "annotations" / "GQA" / "val.json",
        [{"question_id": "1", "image": "GQA/1.jpg", "text": "q", "answer": "yes"}],
    )
    assert layout.test_file("GQA").name == "val.json"
    assert [s.id for s in layout.read_test("GQA")] == ["1"]
    assert len(layout.read_train("GQA")) == 1
    assert layout.tasks_present() == ["GQA"]
    write(
        tmp_path / "annotations" / "GQA" / "test.json",
        [
            {"question_id": 1, "text": "q", "answer": "a"},
            {"question_id": 1, "text": "q", "answer": "b"},
        ],
    )
    assert layout.test_file("GQA").name == "test.json"
    with pytest.raises(DataError, match="id 1 repeats entry 0"):
        layout.read_test("GQA")


def test_strip_image_token():
    assert strip_image_token("<image>\nWhat?") == "What?"
    assert strip_image_token("What?\n<image>") == "What?"
    assert strip_image_token("No image here ") == "No image here"


class Toy(BenchmarkBase):
    name = "toy"
    version = "1"

    def load_train(self, task):
        return CoinLayout(self.require_root()).read_train(task)

    def load_eval(self, task):
        return CoinLayout(self.require_root()).read_test(task)


def test_benchmark_base_config_root_and_subsampling(tmp_path, monkeypatch):
    from cvit_bench.harness.types import TaskInfo

    Toy.TASKS = (TaskInfo("GQA"),)
    items = [{"question_id": i, "text": "q", "answer": "a"} for i in range(20)]
    write(tmp_path / "annotations" / "GQA" / "test.json", items)
    monkeypatch.setenv("CVIT_BENCH_DATA_ROOT", str(tmp_path))
    bench = Toy({"max_eval": 5, "subsample_seed": 3})
    assert isinstance(bench.config, BenchmarkConfig)
    bench.prepare(None)
    assert bench.data_root == tmp_path
    first = [s.id for s in bench.eval_samples("GQA")]
    same = Toy({"max_eval": 5, "subsample_seed": 3, "data_root": str(tmp_path)})
    same.prepare(None)
    again = [s.id for s in same.eval_samples("GQA")]
    assert len(first) == 5 and first == sorted(first) and first == again
    other = Toy({"max_eval": 5, "subsample_seed": 4})
    other.set_data_root(tmp_path)
    assert [s.id for s in other.eval_samples("GQA")] != first
    ident = bench.identity()
    assert ident["name"] == "toy" and ident["version"] == "1"
    assert ident["subsampled"] is True and ident["scoring_mode"] == "published"
    assert Toy().identity()["subsampled"] is False


def test_benchmark_base_without_root_says_how(monkeypatch):
    monkeypatch.delenv("CVIT_BENCH_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="--data-root"):
        Toy().prepare(None)


def test_subsample_is_stable():
    items = list(range(100))
    assert subsample(items, 10, 0, "k") == subsample(items, 10, 0, "k")
    assert subsample(items, None, 0, "k") == items
