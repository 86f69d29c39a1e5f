"""A small lmms-eval task defined here, on local files: procedurally drawn shapes whose colour
is asked for, read by the datasets ``imagefolder`` loader; nothing is downloaded."""

from __future__ import annotations

import json
import random
from pathlib import Path

TASK = "cvit_shapes"
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220)}

# exact match decides the task's score; ``chars`` and ``fingerprint`` (a hash of each answer)
# change whenever any generated answer changes, so equal scores mean equal answers
UTILS = """
import zlib


def process_results(doc, results):
    answer = results[0].strip()
    return {
        "exact_match": float(answer.lower() == doc["answer"].lower()),
        "chars": float(len(answer)),
        "fingerprint": float(zlib.crc32(answer.encode()) % 1000),
    }
"""


def write_shapes_task(root: Path, n: int = 6) -> Path:
    """``root`` becomes an lmms-eval include path holding the task ``cvit_shapes``."""
    from PIL import Image, ImageDraw

    data = root / "data"
    data.mkdir(parents=True)
    rng = random.Random(7)
    rows = []
    for i in range(n):
        name = sorted(COLOURS)[i % len(COLOURS)]
        image = Image.new("RGB", (32, 32), (255, 255, 255))
        x, y = rng.randint(0, 14), rng.randint(0, 14)
        ImageDraw.Draw(image).rectangle([x, y, x + 16, y + 16], fill=COLOURS[name])
        image.save(data / f"{i}.png")
        question = "What colour is the shape?\nAnswer the question using a single word or phrase."
        rows.append({"file_name": f"{i}.png", "question": question, "answer": name})
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "utils.py").write_text(UTILS)
    metrics = "".join(
        f"  - metric: {m}\n    aggregation: mean\n    higher_is_better: true\n"
        for m in ("exact_match", "chars", "fingerprint")
    )
    (root / "shapes.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: imagefolder\n"
        f"dataset_kwargs:\n  data_dir: {data}\n"
        "test_split: train\n"
        "output_type: generate_until\n"
        "doc_to_visual: image\n"
        'doc_to_text: "{{question}}"\n'
        "doc_to_target: answer\n"
        "generation_kwargs:\n  max_new_tokens: 6\n"
        "process_results: !function utils.process_results\n"
        f"metric_list:\n{metrics}"
    )
    return root
