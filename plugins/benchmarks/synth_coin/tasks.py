"""The eight synth-coin tasks: what each draws, asks and answers.

Each task mirrors one COIN task's kind of question and answer format. A task draws one item
from a balanced answer class (``classes``), so every answer is about equally frequent and the
majority answer scores low; the answer always depends on the image, and where the image holds
several things, on the question too.

All geometry scales with the image size; the defaults (32x32 pixels, patch 8) are what a
one-million-parameter LLaVA learns in a couple of hundred steps on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

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
    text_size,
)

SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."
UNANSWERABLE_HINT = "When the provided information is insufficient, respond with 'Unanswerable'."
GROUNDING_GRID = 3
GROUNDING_PROMPT = (
    "Please provide the bounding box coordinate of the region this sentence describes: {phrase}."
)

LETTERS = ("A", "B", "C", "D")
DIGITS = ("2", "3", "4", "5", "6", "7", "8", "9")
COUNTS = (1, 2, 3, 4)
TITLES = ("GO", "UP", "OX", "HI", "ME", "WE", "IT", "BY")
GENRES: dict[str, tuple[int, int, int]] = {
    "travel": (60, 130, 215),
    "history": (135, 85, 45),
    "cooking": (240, 125, 35),
    "science": (55, 165, 95),
}
SIGN_COLOURS = ((250, 250, 250), (30, 30, 30), (40, 80, 225), (215, 35, 35), (35, 165, 55))


@dataclass
class Drawn:
    """One generated item before it is written out.

    Attributes:
        image: the picture.
        question: the question line(s) the prompt starts with.
        instruction: the answer-format line COIN appends.
        answer: the reference answer.
        key: the item's content without noise; no two items of a task share it, which keeps
            training and test items apart.
        extra: task-specific facts the writer needs (choices, box, question type).
    """

    image: Image.Image
    question: str
    instruction: str
    answer: str
    key: tuple[Any, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return f"{self.question}\n{self.instruction}" if self.instruction else self.question


def _u(size: int, pixels: float) -> int:
    """``pixels`` at 32x32 scaled to an image of ``size`` pixels."""
    return max(1, round(pixels * size / 32))


def _object(
    rng: np.random.Generator, size: int, low: float, high: float, region: Box | None = None
) -> Box:
    """A random square box of side in [low, high] (32-pixel units) inside ``region``."""
    side = int(rng.integers(_u(size, low), _u(size, high) + 1))
    x_lo, y_lo, x_hi, y_hi = region if region is not None else (0, 0, size, size)
    x0 = place(rng, side, x_lo + 1, x_hi - 1)
    y0 = place(rng, side, y_lo + 1, y_hi - 1)
    return (x0, y0, x0 + side - 1, y0 + side - 1)


def _colour(rng: np.random.Generator, name: str) -> tuple[int, ...]:
    return jitter_colour(rng, COLOURS[name])


def _pick(rng: np.random.Generator, items: tuple[str, ...], exclude: tuple[str, ...] = ()) -> str:
    pool = [item for item in items if item not in exclude]
    return pool[int(rng.integers(len(pool)))]


# -- ScienceQA: a multiple-choice question answered by a letter --------------------------------
def science_qa(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """Which colour is the shape? Four of the six colours as options; the answer is a letter.

    The options are a random four of the six colours, listed in one fixed order, so the letter
    depends on the image (which colour) and on the question (which colours are listed before
    it). With options in any order the task needs far more training: a two-layer transformer
    classifier trained from scratch needed about 600 steps of 32 to discover the matching
    (this form: about 100).
    """
    listed = sorted(int(i) for i in rng.choice(len(COLOUR_NAMES), size=len(LETTERS), replace=False))
    choices = [COLOUR_NAMES[i] for i in listed]
    colour = choices[cls]
    shape = _pick(rng, SHAPES)
    canvas = Canvas(size, rng)
    box = _object(rng, size, 10, 17)
    canvas.shape(shape, box, _colour(rng, colour))
    question_only = f"Which colour is the {shape} in the picture?"
    question = (
        question_only
        + "\n"
        + "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices))
    )
    return Drawn(
        canvas.finish(),
        question,
        LETTER_ANSWER,
        LETTERS[cls],
        ("sqa", colour, shape, box, tuple(choices)),
        {"choices": choices, "answer_index": cls, "question_only": question_only},
    )


# -- TextVQA: read the text in a scene ---------------------------------------------------------
TEXTVQA_QUESTIONS = (
    "what number is written on the sign?",
    "what is written on the sign?",
    "what number does the sign show?",
)


def draw_sign(canvas: Canvas, rng: np.random.Generator, size: int, digit: str) -> tuple[int, ...]:
    """A sign nearly filling the image with one digit on it; returns what varies
    ``(left, top, sign colour index)``.

    The glyph is large (4 pixels per font dot at 32x32) and moves by at most two pixels: a
    patch-8 vision tower reads it then, where it does not learn glyphs scattered anywhere.
    """
    scale = max(1, round(4 * size / 32))
    width, height = text_size(digit, scale)
    margin = _u(size, 1)
    sign_w, sign_h = width + 2 * margin, height + 2 * margin
    slack = _u(size, 2)
    left = place(
        rng, sign_w, max(0, (size - sign_w) // 2 - slack), min(size, (size + sign_w) // 2 + slack)
    )
    top = place(
        rng, sign_h, max(0, (size - sign_h) // 2 - slack), min(size, (size + sign_h) // 2 + slack)
    )
    sign_index = int(rng.integers(len(SIGN_COLOURS)))
    sign = SIGN_COLOURS[sign_index]
    ink = (20, 20, 20) if sum(sign) > 500 else (245, 245, 245)
    canvas.rectangle((left, top, left + sign_w - 1, top + sign_h - 1), jitter_colour(rng, sign, 8))
    canvas.text(digit, left + margin, top + margin, scale, ink)
    return left, top, sign_index


def text_vqa(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """A sign holding one large digit; read the digit."""
    digit = DIGITS[cls]
    canvas = Canvas(size, rng)
    placed = draw_sign(canvas, rng, size, digit)
    question = TEXTVQA_QUESTIONS[int(rng.integers(len(TEXTVQA_QUESTIONS)))]
    return Drawn(
        canvas.finish(),
        question,
        SHORT_ANSWER,
        digit,
        ("tvqa", digit, placed, question, canvas.background),
    )


# -- ImageNet: name the object -----------------------------------------------------------------
def image_net(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """One large shape of any colour near the centre; name the shape.

    Large and nearly centred, as ImageNet's objects are: scattered shapes of 12-20 pixels
    anywhere left tiny-llava at 36.5% after 150 steps (these: 76%).
    """
    shape = SHAPES[cls]
    colour = _pick(rng, COLOUR_NAMES)
    canvas = Canvas(size, rng)
    side = int(rng.integers(_u(size, 20), _u(size, 26) + 1))
    slack = _u(size, 3)
    x0 = place(rng, side, max(0, (size - side) // 2 - slack), min(size, (size + side) // 2 + slack))
    y0 = place(rng, side, max(0, (size - side) // 2 - slack), min(size, (size + side) // 2 + slack))
    box = (x0, y0, x0 + side - 1, y0 + side - 1)
    canvas.shape(shape, box, _colour(rng, colour))
    return Drawn(
        canvas.finish(),
        "What is the object in the image?",
        SHORT_ANSWER,
        shape,
        ("imagenet", shape, colour, box),
    )


# -- GQA: a question about spatial relations ---------------------------------------------------
SIDES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}


def gqa(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """Two shapes side by side or one above the other; the colour of the one on a named side."""
    colour = COLOUR_NAMES[cls]
    other = _pick(rng, COLOUR_NAMES, exclude=(colour,))
    horizontal = bool(rng.integers(2))
    half = size // 2
    if horizontal:
        regions = {"left": (0, 0, half, size), "right": (half, 0, size, size)}
    else:
        regions = {"top": (0, 0, size, half), "bottom": (0, half, size, size)}
    sides = list(regions)
    side = sides[int(rng.integers(2))]
    other_side = sides[1 - sides.index(side)]
    canvas = Canvas(size, rng)
    target_box = _object(rng, size, 8, 13, regions[side])
    other_box = _object(rng, size, 8, 13, regions[other_side])
    target_shape, other_shape = _pick(rng, SHAPES), _pick(rng, SHAPES)
    canvas.shape(target_shape, target_box, _colour(rng, colour))
    canvas.shape(other_shape, other_box, _colour(rng, other))
    question = f"What colour is the shape {SIDES[side]}?"
    return Drawn(
        canvas.finish(),
        question,
        SHORT_ANSWER,
        colour,
        ("gqa", side, colour, other, target_shape, other_shape, target_box, other_box),
    )


# -- VizWiz: answer, or say the photo cannot answer ---------------------------------------------
UNANSWERABLE = "unanswerable"
VIZWIZ_CLASSES = (*COLOUR_NAMES, "dark", "empty")


def viz_wiz(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """What colour is the shape? Unanswerable when the photo is too dark or shows nothing."""
    kind = VIZWIZ_CLASSES[cls]
    shape = _pick(rng, SHAPES)
    canvas = Canvas(size, rng)
    brightness = 1.0
    if kind == "empty":
        colour, box = None, None
    else:
        colour = _pick(rng, COLOUR_NAMES) if kind == "dark" else kind
        box = _object(rng, size, 10, 18)
        canvas.shape(shape, box, _colour(rng, colour))
        if kind == "dark":
            brightness = float(rng.uniform(0.06, 0.14))
    answer = UNANSWERABLE if kind in ("dark", "empty") else kind
    return Drawn(
        canvas.finish(noise=3 if kind == "dark" else 6, brightness=brightness),
        f"What colour is the {shape}?",
        f"{UNANSWERABLE_HINT}\n{SHORT_ANSWER}",
        answer,
        ("vizwiz", kind, shape, colour, box, round(brightness, 2), canvas.background),
    )


# -- Grounding: the box of a described object --------------------------------------------------
def grid_box(size: int, cell: int, n: int = GROUNDING_GRID) -> Box:
    """The box of a shape centred in, and nearly filling, cell ``cell`` of an ``n`` x ``n``
    grid (cells numbered row by row)."""
    row, col = divmod(cell, n)
    x_lo, x_hi = round(col * size / n), round((col + 1) * size / n)
    y_lo, y_hi = round(row * size / n), round((row + 1) * size / n)
    side = min(x_hi - x_lo, y_hi - y_lo) - _u(size, 2)
    x0 = x_lo + (x_hi - x_lo - side) // 2
    y0 = y_lo + (y_hi - y_lo - side) // 2
    return (x0, y0, x0 + side - 1, y0 + side - 1)


def grounding(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """Two shapes of different colours, each centred in and nearly filling a cell of a 3x3
    grid; the box of the one the phrase names (by colour and shape).

    Shapes do not move inside their cell, so there are nine boxes. Measured on tiny-llava
    (full fine-tuning, 150 steps of 32): with boxes jittered by a pixel or two it learned no
    box strings (11%, the majority-answer score); with fixed boxes 11% at 150 steps and 30% at
    450; with the region captions of ``pretraining.py`` in its pretraining, 41.5% at 150.
    """
    colour = _pick(rng, COLOUR_NAMES)
    other = _pick(rng, COLOUR_NAMES, exclude=(colour,))
    shape, other_shape = _pick(rng, SHAPES), _pick(rng, SHAPES)
    n = GROUNDING_GRID
    cells = [c for c in range(n * n) if c != cls]
    other_cell = cells[int(rng.integers(len(cells)))]
    canvas = Canvas(size, rng)
    boxes = [grid_box(size, cell, n) for cell in (cls, other_cell)]
    canvas.shape(shape, boxes[0], _colour(rng, colour))
    canvas.shape(other_shape, boxes[1], _colour(rng, other))
    phrase = f"the {colour} {shape}"
    answer = normalised_box(boxes[0], size)
    return Drawn(
        canvas.finish(),
        GROUNDING_PROMPT.format(phrase=phrase),
        "",
        answer,
        ("grounding", phrase, other, other_shape, tuple(boxes)),
        {"box": answer},
    )


# -- VQAv2: counting and colour questions ------------------------------------------------------
VQAV2_CLASSES: tuple[Any, ...] = (
    *(("count", n) for n in COUNTS),
    *(("colour", c) for c in COLOUR_NAMES),
)


def vqa_v2(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """One to four equal shapes, one per cell of a 4x4 grid: how many, or what colour."""
    kind, value = VQAV2_CLASSES[cls]
    count = value if kind == "count" else int(rng.integers(1, len(COUNTS) + 1))
    colour = value if kind == "colour" else _pick(rng, COLOUR_NAMES)
    shape = _pick(rng, SHAPES)
    cells = sorted(int(c) for c in rng.choice(16, size=count, replace=False))
    canvas = Canvas(size, rng)
    boxes: list[Box] = []
    for cell in cells:
        row, col = divmod(cell, 4)
        region = (
            round(col * size / 4),
            round(row * size / 4),
            round((col + 1) * size / 4),
            round((row + 1) * size / 4),
        )
        box = _object(rng, size, 5, 6, region)
        canvas.shape(shape, box, _colour(rng, colour))
        boxes.append(box)
    if kind == "count":
        question, answer = f"How many {PLURALS[shape]} are there?", str(count)
    elif count == 1:
        question, answer = f"What colour is the {shape}?", colour
    else:
        question, answer = f"What colour are the {PLURALS[shape]}?", colour
    return Drawn(
        canvas.finish(),
        question,
        SHORT_ANSWER,
        answer,
        ("vqav2", kind, shape, colour, tuple(boxes)),
        {"question_type": kind},
    )


# -- OCR-VQA: a book cover's title and genre ---------------------------------------------------
OCRVQA_CLASSES: tuple[Any, ...] = (
    *(("title", t) for t in TITLES),
    *(("genre", g) for _ in range(len(TITLES) // len(GENRES)) for g in GENRES),
)
"""The eight titles, and each genre twice: half the questions ask for the title, half for the
genre, so neither question is an answer prior the other's answers can ride on."""


def ocr_vqa(rng: np.random.Generator, size: int, cls: int) -> Drawn:
    """A cover whose colour tells the genre, with a two-letter title on a band."""
    kind, value = OCRVQA_CLASSES[cls]
    title = value if kind == "title" else TITLES[int(rng.integers(len(TITLES)))]
    genre = value if kind == "genre" else list(GENRES)[int(rng.integers(len(GENRES)))]
    canvas = Canvas(size, rng, background=jitter_colour(rng, GENRES[genre], 14))
    scale = max(1, round(2 * size / 32))
    width, height = text_size(title, scale)
    pad = max(1, scale)
    band_top = place(rng, height + 2 * pad, 0, size)
    canvas.rectangle(
        (0, band_top, size - 1, band_top + height + 2 * pad - 1),
        jitter_colour(rng, (240, 240, 235), 6),
    )
    left = place(rng, width, 0, size)
    canvas.text(title, left, band_top + pad, scale, (20, 20, 20))
    if kind == "title":
        question, answer = "What is the title of this book?", title
    else:
        question, answer = "What is the genre of this book?", genre
    return Drawn(
        canvas.finish(),
        question,
        SHORT_ANSWER,
        answer,
        ("ocrvqa", kind, title, genre, band_top, left),
        {"question_type": kind},
    )


@dataclass(frozen=True)
class TaskSpec:
    """A synth-coin task and how it is laid out like its COIN counterpart.

    Attributes:
        name: the annotation folder and task name (COIN's).
        image_dir: where its images live under the data root (COIN's dataset folders).
        draw: the generator of one item from an answer class.
        classes: the number of balanced answer classes.
        scorer: the COIN scoring rule that applies (a key of ``common.real.SCORERS``).
        max_new_tokens: the generation budget (answers are at most a box string).
        description: one line for ``cvit-bench show``.
        train_scale: training items relative to ``train_per_task``: more for the three
            tasks tiny-llava (LoRA r16, lr 2e-3, batch 8) does not learn in 250 steps,
            measured on the caption-pretrained base. ScienceQA, the first task, from a fresh
            adapter: 45.7 +- 3.0 at 250 steps, 72.0 +- 7.3 at 500 (seeds 0-2; majority 25).
            Grounding and OCR-VQA from the adapter seqlora leaves after the tasks before them
            (one seed each, on earlier bases): Grounding 30.5 -> 37.0, OCR-VQA 16.0 -> 57.5
            (its genre questions answered with titles at 250 steps). Grounding gets three
            times as many: at 500 steps it scored 30.5, 38.0 and 36.5 (seeds 0-2, majority
            11.0), at 750 46.0, 43.5 and 43.0. COIN's task sizes differ by an order of
            magnitude too.
    """

    name: str
    image_dir: str
    draw: Callable[[np.random.Generator, int, int], Drawn]
    classes: int
    scorer: str
    max_new_tokens: int
    description: str
    train_scale: int = 1


SHORT_BUDGET = 16
"""Generation budget of the one-word tasks: the longest answer (``unanswerable``) is 12
characters, so even a character-level tokenizer finishes it."""
BOX_BUDGET = 32
"""Generation budget of Grounding: a box string is 24 characters."""

TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "ScienceQA",
        "ScienceQA",
        science_qa,
        len(LETTERS),
        "scienceqa",
        SHORT_BUDGET,
        "multiple choice: the letter of the shape's colour among four shuffled options",
        train_scale=2,
    ),
    TaskSpec(
        "TextVQA",
        "TextVQA",
        text_vqa,
        len(DIGITS),
        "textvqa",
        SHORT_BUDGET,
        "read the digit written on a sign",
    ),
    TaskSpec(
        "ImageNet",
        "ImageNet",
        image_net,
        len(SHAPES),
        "imagenet",
        SHORT_BUDGET,
        "name the shape in the image (5 classes)",
    ),
    TaskSpec(
        "GQA",
        "GQA",
        gqa,
        len(COLOUR_NAMES),
        "gqa",
        SHORT_BUDGET,
        "the colour of the shape on a named side of two",
    ),
    TaskSpec(
        "VizWiz",
        "VizWiz",
        viz_wiz,
        len(VIZWIZ_CLASSES),
        "exact",
        SHORT_BUDGET,
        "the shape's colour, or 'unanswerable' when the photo is dark or empty",
    ),
    TaskSpec(
        "Grounding",
        "COCO",
        grounding,
        GROUNDING_GRID**2,
        "grounding",
        BOX_BUDGET,
        "the bounding box of the shape a phrase names (two shapes on a 3x3 grid)",
        train_scale=3,
    ),
    TaskSpec(
        "VQAv2",
        "COCO",
        vqa_v2,
        len(VQAV2_CLASSES),
        "exact",
        SHORT_BUDGET,
        "count one to four shapes, or name their colour",
    ),
    TaskSpec(
        "OCRVQA",
        "OCRVQA",
        ocr_vqa,
        len(OCRVQA_CLASSES),
        "ocrvqa",
        SHORT_BUDGET,
        "a book cover's two-letter title, or its genre from the cover colour",
        train_scale=2,
    ),
)
TASK_NAMES: tuple[str, ...] = tuple(t.name for t in TASKS)
SPECS: dict[str, TaskSpec] = {t.name: t for t in TASKS}
