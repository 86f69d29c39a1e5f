"""Captioned images of synth-coin's visual primitives, for a model's short "pretraining" stage.

Real LLaVA starting points have seen millions of captioned images before instruction tuning; a
randomly initialised tiny model has seen nothing. These samples give it the same kind of start:
it learns to see the colours, shapes, places, counts and glyphs the tasks ask about, without
seeing any task's questions or files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.parallel import map_jobs
from cvit_bench.harness.types import Sample

from .drawing import (
    COLOUR_NAMES,
    COLOURS,
    PLURALS,
    SHAPES,
    Box,
    Canvas,
    jitter_colour,
    normalised_box,
    place,
)
from .drawing import text_size as _text_size
from .tasks import DIGITS, GROUNDING_GRID, TITLES, draw_sign, grid_box

KINDS = ("object", "pair", "count", "sign", "book", "region", "box", "choice")
"""Every kind of sample there is:

* ``object``: one shape: ``"a red circle at the top left"``, ``"... in the middle"``;
* ``pair``: two shapes side by side or one above the other: ``"a red circle on the left and a
  blue square on the right"``, ``"... at the top and ... at the bottom"``;
* ``count``: one to four equal shapes: ``"3 green triangles"``;
* ``sign``: a sign with a digit: ``"a sign with the number 7"``;
* ``book``: a book cover with a two-letter title: ``"a book titled GO"``;
* ``region``: two shapes in cells of a 3x3 grid, each described with its box:
  ``"a red circle at [0.03, 0.03, 0.31, 0.31] and a blue cross at [...]"``: region-level
  captions, as grounding pretraining data has them. Without box captions tiny-llava learns no
  box strings within a task's budget (see ``tasks.grounding``);
* ``box``: one shape in a cell of that grid and its box: ``"a red circle at [0.03, 0.03,
  0.31, 0.31]"``. Region and box captions answer their own prompt (:data:`BOX_PROMPT`), so a
  picture never has two right captions;
* ``choice``: the object's colour as a four-option question answered by a letter, options
  shuffled. It teaches what a language model's own pretraining gives a real starting point:
  picking the option that matches and answering with its letter. A small transformer takes
  about 600 steps to discover that from scratch, far more than a task's budget; colour is the
  attribute it learns this for fastest (shapes or places: not within 1,000 steps). The
  template differs from ScienceQA's (``(A) red`` lines, another question and instruction).
"""

SIDES = ("on the left", "on the right", "at the top", "at the bottom")
DEFAULT_KINDS = ("object", "pair", "count", "sign", "book", "box")
"""The kinds :func:`pretraining_samples` cycles through by default: captions only, as the
real starting points' projector pretraining is. ``choice`` is there for models that need the
letter-answer skill taught before ScienceQA. ``box`` rather than ``region``: a region caption
is 43 tokens, three times any other kind's, and nearly every batch of 32 holds one, so every
batch was padded to its length (a step on batches padded to 81 tokens took 0.18 s, to 51
tokens 0.12 s); a box caption is 21. Grounding after 250 steps in sequence: 36.5 and 23.0
(seeds 0 and 1) on a base with box captions, 30.0 and 34.5 on one with region captions, a
difference within the seed spread."""

CAPTION_PROMPTS = ("Describe the image briefly.", "What is in the picture?")
BOX_PROMPT = "Describe the image with a box for each object."
SIGN_NAMES = ("white", "black", "blue", "red", "green")
PLACES = (
    ("at the top left", "at the top", "at the top right"),
    ("on the left", "in the middle", "on the right"),
    ("at the bottom left", "at the bottom", "at the bottom right"),
)
PRETRAIN_VERSION = "6"


def _u(size: int, pixels: float) -> int:
    return max(1, round(pixels * size / 32))


def _square(
    rng: np.random.Generator, size: int, low: float, high: float, region: Box | None = None
) -> Box:
    side = int(rng.integers(_u(size, low), _u(size, high) + 1))
    x_lo, y_lo, x_hi, y_hi = region if region is not None else (0, 0, size, size)
    x0 = place(rng, side, x_lo + 1, x_hi - 1)
    y0 = place(rng, side, y_lo + 1, y_hi - 1)
    return (x0, y0, x0 + side - 1, y0 + side - 1)


def _where(box: Box, size: int) -> str:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return PLACES[min(2, int(3 * cy / size))][min(2, int(3 * cx / size))]


def _pick(rng: np.random.Generator, items: Sequence[str], exclude: Sequence[str] = ()) -> str:
    pool = [i for i in items if i not in exclude]
    return pool[int(rng.integers(len(pool)))]


def draw_pretraining_item(rng: np.random.Generator, size: int, kind: str):
    """One ``(image, prompt, answer)`` of ``kind`` (see :data:`KINDS`)."""
    canvas = Canvas(size, rng)
    prompt = CAPTION_PROMPTS[int(rng.integers(len(CAPTION_PROMPTS)))]
    if kind == "object":
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
        box = _square(rng, size, 9, 18)
        canvas.shape(shape, box, jitter_colour(rng, COLOURS[colour]))
        answer = f"a {colour} {shape} {_where(box, size)}"
    elif kind == "choice":
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
        canvas.shape(shape, _square(rng, size, 9, 18), jitter_colour(rng, COLOURS[colour]))
        options = [c for c in COLOUR_NAMES if c != colour]
        rng.shuffle(options)
        options = options[:3]
        correct = int(rng.integers(4))
        options.insert(correct, colour)
        prompt = (
            "What colour is the object?\n"
            + "\n".join(f"({letter}) {option}" for letter, option in zip("ABCD", options))
            + "\nAnswer with the letter of the right option."
        )
        answer = "ABCD"[correct]
    elif kind == "pair":
        first, second = _pick(rng, COLOUR_NAMES), _pick(rng, COLOUR_NAMES)
        shapes = (_pick(rng, SHAPES), _pick(rng, SHAPES))
        half = size // 2
        if rng.integers(2):
            regions, words = ((0, 0, half, size), (half, 0, size, size)), SIDES[:2]
        else:
            regions, words = ((0, 0, size, half), (0, half, size, size)), SIDES[2:]
        for colour, shape, region in zip((first, second), shapes, regions):
            canvas.shape(
                shape, _square(rng, size, 8, 13, region), jitter_colour(rng, COLOURS[colour])
            )
        answer = f"a {first} {shapes[0]} {words[0]} and a {second} {shapes[1]} {words[1]}"
    elif kind == "count":
        count = int(rng.integers(1, 5))
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
        for cell in sorted(int(c) for c in rng.choice(16, size=count, replace=False)):
            row, col = divmod(cell, 4)
            region = (
                round(col * size / 4),
                round(row * size / 4),
                round((col + 1) * size / 4),
                round((row + 1) * size / 4),
            )
            canvas.shape(
                shape, _square(rng, size, 5, 6, region), jitter_colour(rng, COLOURS[colour])
            )
        answer = f"{count} {colour} {shape if count == 1 else PLURALS[shape]}"
    elif kind == "sign":
        digit = DIGITS[int(rng.integers(len(DIGITS)))]
        _, _, index = draw_sign(canvas, rng, size, digit)
        answer = f"a {SIGN_NAMES[index]} sign with the number {digit}"
    elif kind == "region":
        prompt = BOX_PROMPT
        cells = rng.choice(GROUNDING_GRID**2, size=2, replace=False)
        parts = []
        for cell in cells:
            colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
            box = grid_box(size, int(cell))
            canvas.shape(shape, box, jitter_colour(rng, COLOURS[colour]))
            parts.append(f"a {colour} {shape} at {normalised_box(box, size)}")
        answer = " and ".join(parts)
    elif kind == "box":
        prompt = BOX_PROMPT
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
        box = grid_box(size, int(rng.integers(GROUNDING_GRID**2)))
        canvas.shape(shape, box, jitter_colour(rng, COLOURS[colour]))
        answer = f"a {colour} {shape} at {normalised_box(box, size)}"
    elif kind == "book":
        title = TITLES[int(rng.integers(len(TITLES)))]
        grey = int(rng.integers(60, 200))
        canvas = Canvas(size, rng, background=jitter_colour(rng, (grey, grey, grey), 30))
        scale = max(1, round(2 * size / 32))
        width, height = _text_size(title, scale)
        band = place(rng, height + 2 * scale, 0, size)
        canvas.rectangle((0, band, size - 1, band + height + 2 * scale - 1), (240, 240, 235))
        canvas.text(title, place(rng, width, 0, size), band + scale, scale, (20, 20, 20))
        answer = f"a book titled {title}"
    else:
        raise UsageError(f"unknown pretraining kind {kind!r}; known: {', '.join(KINDS)}")
    return canvas.finish(), prompt, answer


def _default_cache() -> Path:
    return Path(os.environ.get("CVIT_BENCH_CACHE") or Path.home() / ".cache" / "cvit-bench")


def pretraining_samples(
    n: int,
    seed: int,
    image_size: int = 32,
    directory: str | os.PathLike[str] | None = None,
    kinds: Sequence[str] = DEFAULT_KINDS,
) -> list[Sample]:
    """``n`` captioned images of the primitives synth-coin's tasks use.

    Contract:

    * Returns ``n`` :class:`Sample` objects with ``task="pretrain"``, ids
      ``"pretrain_<i>"``, ``prompt`` the user message (without ``<image>``), ``answer`` the
      target reply, ``image`` the absolute path of a PNG of ``image_size`` x ``image_size``
      pixels, and ``meta["kind"]`` one of ``kinds``.
    * Deterministic: the same ``(n, seed, image_size, kinds)`` give the same samples and the
      same image bytes; sample ``i`` does not depend on ``n``. Kinds cycle in the order
      given, so every kind is equally frequent.
    * Images are written under ``directory`` (created); with ``None``, under
      ``$CVIT_BENCH_CACHE`` (default ``~/.cache/cvit-bench``) in
      ``synth-coin/pretrain-<seed>-<size>-<n>-<kinds>``, generated once, atomically (a
      temporary folder renamed when complete), and reused on later calls.
    * Nothing in them is a synth-coin task item: captions describe what is drawn, and the
      only question (``choice``) asks about shapes in ScienceQA's answer format.
    """
    if n < 1:
        raise UsageError(f"pretraining_samples needs n >= 1, got {n}")
    kinds = tuple(kinds)
    for kind in kinds:
        if kind not in KINDS:
            raise UsageError(f"unknown pretraining kind {kind!r}; known: {', '.join(KINDS)}")
    if directory is None:
        folder = (
            _default_cache()
            / "synth-coin"
            / f"pretrain-v{PRETRAIN_VERSION}-{seed}-{image_size}-{n}-{'.'.join(kinds)}"
        )
        if not (folder / "samples.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
            try:
                _write(tmp, n, seed, image_size, kinds)
                try:
                    os.replace(tmp, folder)
                except OSError:  # another process finished first: keep its copy
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return _load(folder)
    return _write(Path(directory), n, seed, image_size, kinds)


CHUNK = 500
"""Images per job when drawing in parallel (``cvit_bench.harness.parallel``)."""


def _write(folder: Path, n: int, seed: int, size: int, kinds: tuple[str, ...]) -> list[Sample]:
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.absolute()
    jobs = [
        (folder, seed, size, kinds, start, min(n, start + CHUNK)) for start in range(0, n, CHUNK)
    ]
    records = [record for part in map_jobs(_write_range, jobs) for record in part]
    (folder / "samples.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return _samples(folder, records)


def _write_range(job: tuple[Path, int, int, tuple[str, ...], int, int]) -> list[dict[str, str]]:
    """Draw and save items ``start`` to ``stop - 1``; their ``samples.json`` records."""
    folder, seed, size, kinds, start, stop = job
    records = []
    for index in range(start, stop):
        kind = kinds[index % len(kinds)]
        rng = np.random.default_rng([seed, 99, index])
        image, prompt, answer = draw_pretraining_item(rng, size, kind)
        path = folder / f"{index:06d}.png"
        image.save(path, format="PNG")
        records.append(
            {
                "id": f"pretrain_{index}",
                "image": path.name,
                "prompt": prompt,
                "answer": answer,
                "kind": kind,
            }
        )
    return records


def _load(folder: Path) -> list[Sample]:
    return _samples(folder, json.loads((folder / "samples.json").read_text(encoding="utf-8")))


def _samples(folder: Path, records: list[dict[str, str]]) -> list[Sample]:
    return [
        Sample(
            id=r["id"],
            task="pretrain",
            prompt=r["prompt"],
            answer=r["answer"],
            image=str(folder / r["image"]),
            meta={"kind": r["kind"]},
        )
        for r in records
    ]
