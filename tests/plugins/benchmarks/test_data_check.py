"""``check_benchmark`` reports planted faults precisely (file, entry, field)."""

from __future__ import annotations

import json

import pytest

from cvit_bench.harness.errors import DataError
from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.plugins.benchmarks.common.check import check_benchmark


def bench(name, **options):
    return get_plugin_manager().benchmark(name)(options or None)


def errors(report):
    return [(p.file, p.entry, p.field, p.message) for p in report.errors]


@pytest.mark.parametrize(
    ("name", "root"),
    [
        ("coin", "coin_root"),
        ("ucit", "ucit_root"),
        ("mllm-dcl", "dcl_root"),
        ("mllm-acl", "acl_root"),
    ],
)
def test_clean_copies_pass(name, root, request):
    report = check_benchmark(bench(name), request.getfixturevalue(root), fast=False)
    assert report.ok, report.format()
    assert report.images_checked > 0
    data = json.loads(report.to_json())
    assert data["ok"] is True and data["counts"]


def test_missing_image_names_file_and_entry(coin_root):
    (coin_root / "GQA" / "images" / "2.png").unlink()
    report = check_benchmark(bench("coin"), coin_root, fast=True)
    assert not report.ok
    [(file, entry, field, message)] = errors(report)
    assert file.endswith("annotations/GQA/test.json") and entry == 1 and field == "image"
    assert message.startswith("image not found") and message.endswith("GQA/images/2.png")
    assert "FAILED" in report.format() and "entry 1: field 'image'" in report.format()


def test_truncated_json(coin_root):
    path = coin_root / "annotations" / "OCRVQA" / "train.json"
    path.write_text(path.read_text()[:40])
    report = check_benchmark(bench("coin"), coin_root, fast=True)
    [(file, entry, field, message)] = errors(report)
    assert file == str(path) and entry is None and "not valid JSON" in message


def test_wrong_field_name(ucit_root):
    path = ucit_root / "instructions" / "IconQA" / "test_3000.json"
    items = json.loads(path.read_text())
    items[0]["questionId"] = items[0].pop("question_id")
    path.write_text(json.dumps(items))
    report = check_benchmark(bench("ucit"), ucit_root, fast=True)
    [(file, entry, field, message)] = errors(report)
    assert (file, entry, field) == (str(path), 0, "question_id")
    assert "missing" in message and "questionId" in message


def test_reference_files_and_counts(coin_root):
    textvqa = coin_root / "TextVQA" / "TextVQA_0.5.1_val.json"
    data = json.loads(textvqa.read_text())
    data["data"][1]["answers"] = data["data"][1]["answers"][:9]
    textvqa.write_text(json.dumps(data))
    (coin_root / "GQA" / "testdev_balanced_questions.json").unlink()
    report = check_benchmark(bench("coin"), coin_root, fast=True)
    found = errors(report)
    assert (str(textvqa), 1, "answers", "exactly 10 human answers required, found 9") in found
    assert any(
        f.endswith("testdev_balanced_questions.json") and m == "file not found"
        for f, _, _, m in found
    )
    # a copy smaller than the published release is a warning, not an error
    sqa_test = [w for w in report.warnings if w.file.endswith("ScienceQA/test.json")]
    assert sqa_test and "2 entries, fewer than the 4241" in sqa_test[0].message


def test_full_check_decodes_images(dcl_root):
    (dcl_root / "Med" / "images" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert check_benchmark(bench("mllm-dcl"), dcl_root, fast=True).ok
    report = check_benchmark(bench("mllm-dcl"), dcl_root, fast=False)
    [(file, entry, field, message)] = errors(report)
    assert file.endswith("Med/test.json") and entry == 0 and "cannot be decoded" in message


def test_caption_file_missing_image_ids_is_a_warning(ucit_root):
    coco = ucit_root / "instructions" / "VizWiz" / "val_coco_type_3000.json"
    data = json.loads(coco.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]
    coco.write_text(json.dumps(data))
    report = check_benchmark(bench("ucit"), ucit_root, fast=True)
    assert report.ok
    assert any("1 of 2 test rows have no captions" in w.message for w in report.warnings)


def test_prepare_runs_the_fast_check(coin_root, monkeypatch):
    (coin_root / "annotations" / "VizWiz" / "val.json").unlink()
    monkeypatch.setenv("CVIT_BENCH_DATA_ROOT", str(coin_root))
    with pytest.raises(DataError, match=r"annotations/VizWiz/test.json: file not found"):
        bench("coin").prepare(None)


def test_missing_data_root(tmp_path):
    report = check_benchmark(bench("ucit"), tmp_path / "nope")
    assert not report.ok and "not a directory" in report.format()


def test_test_ids_must_be_in_reference_files(coin_root):
    problems = json.loads((coin_root / "ScienceQA" / "problems.json").read_text())
    del problems["102"]
    (coin_root / "ScienceQA" / "problems.json").write_text(json.dumps(problems))
    gqa = coin_root / "GQA" / "testdev_balanced_questions.json"
    gqa.write_text(json.dumps({"201": {"answer": "yes"}}))
    report = check_benchmark(bench("coin"), coin_root, fast=True)
    [(file, entry, field, message)] = errors(report)
    assert file.endswith("ScienceQA/test.json") and (entry, field) == (1, "question_id")
    assert message == "id '102' is not in ScienceQA/problems.json"
    assert any(w.entry == 1 and "GQA/testdev_balanced" in w.message for w in report.warnings)
