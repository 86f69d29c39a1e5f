"""UCIT's caption scores: PTB tokenizer, then BLEU-1..4, METEOR, ROUGE-L and CIDEr from
pycocoevalcap 1.2, each x 100, and their mean (``Average``, the task's primary metric).

What differs from calling ``COCOEvalCap.evaluate()`` and why:

* SPICE is never run (it downloads Stanford CoreNLP; the published README has users patch it
  out), so the scorers are called one by one;
* pycocoevalcap's tokenizer writes its temporary file next to its jar, inside site-packages;
  here the same Java tokenizer (same jar, flags and punctuation filter) reads a file in a
  private temporary folder;
* METEOR's line protocol breaks on newlines and on ``|||`` inside a caption, so both are
  replaced by spaces in every caption before METEOR sees it;
* images are paired by id: the benchmark gives each reference its COCO image id (the row
  index in ``test_3000.json`` plus one), where the published scorer numbers the prediction
  rows 1..N and so scores a reordered file wrongly and crashes on a missing row.

CIDEr's document frequencies come from the evaluated set itself, so a score on a subset is
not comparable with one on the full 3000 images: the score carries a note saying so.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import CvitError, DataError
from cvit_bench.harness.types import Prediction, Sample, TaskScore

from .matching import check_mode, pair_by_id

CAPTION_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
PTB_PUNCTUATION = frozenset(
    {
        "''",
        "'",
        "``",
        "`",
        "-LRB-",
        "-RRB-",
        "-LCB-",
        "-RCB-",
        ".",
        "?",
        "!",
        ",",
        ":",
        "-",
        "--",
        "...",
        ";",
    }
)


class CaptionToolError(CvitError):
    """Java or pycocoevalcap is missing or failed."""


def _package_dir() -> Path:
    try:
        import pycocoevalcap
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise CaptionToolError(
            "caption scoring needs pycocoevalcap (pip install pycocoevalcap==1.2)"
        ) from exc
    return Path(list(pycocoevalcap.__path__)[0])


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise CaptionToolError(
            "caption scoring needs Java (8 or newer) on PATH for the PTB tokenizer and METEOR"
        )
    return java


def ptb_tokenize(captions: dict[Any, list[str]]) -> dict[Any, list[str]]:
    """Stanford PTB tokenization, lower-cased, punctuation tokens removed (pycocoevalcap's
    rules), without writing inside the installed package."""
    jar = _package_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    keys = [k for k, caps in captions.items() for _ in caps]
    text = "\n".join(c.replace("\n", " ") for caps in captions.values() for c in caps)
    with tempfile.TemporaryDirectory(prefix="cvit-ptb-") as folder:
        source = Path(folder) / "captions.txt"
        source.write_bytes(text.encode())
        cmd = [
            _java(),
            "-cp",
            str(jar),
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            source.name,
        ]
        done = subprocess.run(cmd, cwd=folder, capture_output=True, check=False)
    if done.returncode != 0:
        raise CaptionToolError(f"the PTB tokenizer failed: {done.stderr.decode()[-500:]}")
    lines = done.stdout.decode().split("\n")
    out: dict[Any, list[str]] = {}
    for key, line in zip(keys, lines):
        words = [w for w in line.rstrip().split(" ") if w not in PTB_PUNCTUATION]
        out.setdefault(key, []).append(" ".join(words))
    return out


def _meteor_safe(text: str) -> str:
    return " ".join(text.replace("|||", " ").split())


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    _java()
    safe_gts = {k: [_meteor_safe(c) for c in v] for k, v in gts.items()}
    safe_res = {k: [_meteor_safe(c) for c in v] for k, v in res.items()}
    meteor = Meteor()
    try:
        score, _ = meteor.compute_score(safe_gts, safe_res)
    finally:
        process = meteor.meteor_p
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
        process.kill()
        process.wait()
    return float(score)


def caption_metrics(gts: dict[int, list[str]], res: dict[int, list[str]]) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (x 100) and their mean ``Average`` for raw captions:
    ``gts`` maps an image id to its reference captions, ``res`` to a one-caption list."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    # one tokenizer run for both sides (one Java start-up); the output is the same
    both = ptb_tokenize(
        {**{("gts", k): v for k, v in gts.items()}, **{("res", k): v for k, v in res.items()}}
    )
    tok_gts = {k: both[("gts", k)] for k in gts}
    tok_res = {k: both[("res", k)] for k in res}
    bleu, _ = Bleu(4).compute_score(tok_gts, tok_res, verbose=0)
    values = {f"Bleu_{i + 1}": float(bleu[i]) for i in range(4)}
    values["METEOR"] = _meteor(tok_gts, tok_res)
    values["ROUGE_L"] = float(Rouge().compute_score(tok_gts, tok_res)[0])
    values["CIDEr"] = float(Cider().compute_score(tok_gts, tok_res)[0])
    metrics = {name: 100.0 * values[name] for name in CAPTION_METRICS}
    metrics["Average"] = sum(metrics.values()) / len(CAPTION_METRICS)
    return metrics


def score_captions(
    predictions: Sequence[Prediction],
    references: Sequence[Sample],
    *,
    mode: str = "published",
    missing: str = "error",
) -> TaskScore:
    """Caption metrics over the references' images.

    Each reference carries ``meta["coco_image_id"]`` and ``meta["captions"]`` (the COCO-style
    file's captions of that image; the test file's ``answer`` when absent). An empty
    prediction is scored as an empty caption. ``missing="wrong"`` scores a missing
    prediction as an empty caption. Both modes compute the same numbers (the published
    pipeline's only quirks are its row pairing and METEOR's protocol, fixed in both).
    """
    check_mode(mode)
    pairs = pair_by_id(predictions, references, missing)
    if not pairs:
        return TaskScore(primary="Average", metrics={m: math.nan for m in CAPTION_METRICS}, n=0)
    gts: dict[int, list[str]] = {}
    res: dict[int, list[str]] = {}
    for reference, prediction in pairs:
        image_id = reference.meta.get("coco_image_id", len(gts) + 1)
        if image_id in gts:
            raise DataError(
                f"caption reference {reference.id!r}: COCO image id {image_id} is "
                "used by two references"
            )
        captions = reference.meta.get("captions") or (
            [reference.answer] if reference.answer else []
        )
        if not captions:
            raise DataError(f"caption reference {reference.id!r} has no reference caption")
        gts[image_id] = [str(c) for c in captions]
        res[image_id] = [prediction.text if prediction is not None else ""]
    metrics = caption_metrics(gts, res)
    score = TaskScore(
        primary="Average", metrics=metrics, n=len(pairs), per_sample={r.id: None for r, _ in pairs}
    )
    full = references[0].meta.get("coco_set_size") if references else None
    if isinstance(full, int) and len(pairs) < full:
        score.notes.append(
            f"scored on {len(pairs)} of {full} images: CIDEr depends on the "
            "evaluated set, so this score is not comparable with full runs"
        )
    return score


def environment_ok() -> bool:
    """True when Java and pycocoevalcap are available (for tests and the data check)."""
    try:
        _package_dir()
        _java()
    except CaptionToolError:
        return False
    return os.access(_package_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar", os.R_OK)
