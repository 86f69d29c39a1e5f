"""UCIT caption scores with the real pycocoevalcap and Java (a handful of captions)."""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from pathlib import Path

import pytest

from cvit_bench.harness.types import Prediction, Sample
from cvit_bench.plugins.benchmarks.common.captions import (
    CAPTION_METRICS,
    _package_dir,
    environment_ok,
    ptb_tokenize,
    score_captions,
)

pytestmark = pytest.mark.skipif(not environment_ok(), reason="needs Java and pycocoevalcap")

GTS = {
    1: ["A dog runs on the grass.", "a brown dog running outside"],
    2: ["Two people ride bikes down a road.", "people riding bicycles"],
    3: ["A cat sleeps on a red sofa.", "a sleeping cat"],
}
PREDS = {1: "a dog running on grass", 2: "two people riding bikes", 3: "a cat on a sofa"}


def references() -> list[Sample]:
    return [
        Sample(
            id=f"q{k}",
            task="Flickr30k",
            prompt="Describe.",
            answer=v[0],
            meta={"coco_image_id": k, "captions": v, "coco_set_size": 3},
        )
        for k, v in GTS.items()
    ]


def snapshot(folder: Path) -> set[tuple[str, float]]:
    return {(str(p), p.stat().st_mtime) for p in folder.rglob("*") if "__pycache__" not in str(p)}


def published_pipeline(copy_root: Path) -> dict[str, float]:
    """pycocoevalcap's own tokenizer and scorers, run from a private copy of the package (its
    tokenizer writes next to its jar), on the same images; SPICE left out as UCIT does."""
    shutil.copytree(_package_dir(), copy_root / "pycocoevalcap")
    saved = {k: v for k, v in sys.modules.items() if k.startswith("pycocoevalcap")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(copy_root))
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in GTS.items()})
        res = tokenizer.tokenize({k: [{"caption": v}] for k, v in PREDS.items()})
        out = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for i in range(4):
            out[f"Bleu_{i + 1}"] = 100 * bleu[i]
        meteor = Meteor()
        out["METEOR"] = 100 * meteor.compute_score(gts, res)[0]
        del meteor
        out["ROUGE_L"] = 100 * float(Rouge().compute_score(gts, res)[0])
        out["CIDEr"] = 100 * float(Cider().compute_score(gts, res)[0])
        return out
    finally:
        sys.path.remove(str(copy_root))
        for name in [k for k in sys.modules if k.startswith("pycocoevalcap")]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.slow
def test_caption_scores_match_pycocoevalcap_and_ignore_row_order(tmp_path):
    installed = snapshot(_package_dir())
    shuffled = [Prediction(f"q{k}", PREDS[k]) for k in (3, 1, 2)]
    ours = score_captions(shuffled, references())
    assert snapshot(_package_dir()) == installed, "nothing may be written into site-packages"
    expected = published_pipeline(tmp_path)
    assert ours.primary == "Average" and ours.n == 3
    for name in CAPTION_METRICS:
        assert ours.metrics[name] == pytest.approx(expected[name], abs=1e-9), name
    assert ours.metrics["Average"] == pytest.approx(sum(expected.values()) / 7)
    assert ours.notes == []


def test_tokenizer_matches_published_rules():
    out = ptb_tokenize({7: ["A Dog's toy -- (red), isn't it?", "two\nlines"]})
    # brackets survive as -lrb- -rrb-: the filter lists them upper-case, the tokenizer lower-cases
    assert out == {7: ["a dog 's toy -lrb- red -rrb- is n't it", "two lines"]}


def test_newlines_bars_and_missing_predictions_do_not_break_meteor():
    refs = [dataclasses.replace(r, meta={**r.meta, "coco_set_size": 3000}) for r in references()]
    preds = [Prediction("q1", "a dog ||| running\non grass |||"), Prediction("q2", "")]
    score = score_captions(preds, refs, missing="wrong")
    assert score.n == 3
    assert all(math.isfinite(score.metrics[m]) for m in (*CAPTION_METRICS, "Average"))
    assert "scored on 3 of 3000 images" in score.notes[0]
