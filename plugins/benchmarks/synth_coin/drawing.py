"""The visual primitives synth-coin draws: colours, shapes, glyphs on a noisy background.

Every random choice comes from a ``numpy.random.Generator`` passed in, and shapes are drawn
without anti-aliasing, so an image is a pure function of its generator's seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .glyphs import GLYPH_HEIGHT, GLYPH_WIDTH, text_image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (40, 80, 225),
    "yellow": (235, 210, 30),
    "purple": (145, 55, 190),
    "black": (25, 25, 25),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
PLURALS = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "diamond": "diamonds",
    "cross": "crosses",
}

Box = tuple[int, int, int, int]
"""A shape's pixel box ``(x0, y0, x1, y1)``, both ends included."""


def jitter_colour(
    rng: np.random.Generator, rgb: Sequence[int], amount: int = 12
) -> tuple[int, ...]:
    """``rgb`` moved by up to ``amount`` per channel, so that no two images share exact colours."""
    noise = rng.integers(-amount, amount + 1, size=3).tolist()
    return tuple(min(255, max(0, v + n)) for v, n in zip(rgb, noise))


class Canvas:
    """An RGB image being drawn: a plain background, shapes and text, then sensor noise."""

    def __init__(
        self, size: int, rng: np.random.Generator, background: Sequence[int] | None = None
    ) -> None:
        self.size = size
        self.rng = rng
        if background is None:
            grey = int(rng.integers(185, 231))
            background = tuple(grey + t for t in rng.integers(-8, 9, size=3).tolist())
        self.background = tuple(background)
        self.image = Image.new("RGB", (size, size), tuple(background))
        self.draw = ImageDraw.Draw(self.image)

    def shape(self, shape: str, box: Box, colour: Sequence[int]) -> None:
        """Draw ``shape`` filling ``box`` (inclusive pixel coordinates)."""
        x0, y0, x1, y1 = box
        fill = tuple(colour)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if shape == "circle":
            self.draw.ellipse([x0, y0, x1, y1], fill=fill)
        elif shape == "square":
            self.draw.rectangle([x0, y0, x1, y1], fill=fill)
        elif shape == "triangle":
            self.draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
        elif shape == "diamond":
            self.draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
        elif shape == "cross":
            arm = max(1, round((x1 - x0 + 1) / 3))
            hx0 = round(cx - arm / 2)
            hy0 = round(cy - arm / 2)
            self.draw.rectangle([x0, hy0, x1, hy0 + arm - 1], fill=fill)
            self.draw.rectangle([hx0, y0, hx0 + arm - 1, y1], fill=fill)
        else:
            raise ValueError(f"unknown shape {shape!r}")

    def rectangle(self, box: Box, colour: Sequence[int]) -> None:
        self.draw.rectangle(list(box), fill=tuple(colour))

    def text(self, text: str, left: int, top: int, scale: int, colour: Sequence[int]) -> None:
        """Draw ``text`` in the built-in bitmap font with its top-left corner at (left, top)."""
        self.image.paste(tuple(colour), (left, top), mask=text_image(text, scale))

    def finish(self, noise: int = 6, brightness: float = 1.0) -> Image.Image:
        """The final image: scaled by ``brightness`` (dark photos) plus uniform noise."""
        pixels = np.asarray(self.image).astype(np.int16)
        if brightness != 1.0:
            pixels = np.round(pixels * brightness).astype(np.int16)
        if noise:
            pixels = pixels + self.rng.integers(
                -noise, noise + 1, size=pixels.shape, dtype=np.int16
            )
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def text_size(text: str, scale: int, spacing: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` drawn by :meth:`Canvas.text`."""
    n = len(text)
    return (n * GLYPH_WIDTH + (n - 1) * spacing) * scale, GLYPH_HEIGHT * scale


def place(rng: np.random.Generator, size: int, low: int, high: int) -> int:
    """A random start coordinate for an extent of ``size`` pixels inside [low, high)."""
    return int(rng.integers(low, max(low, high - size) + 1))


def normalised_box(box: Box, size: int) -> str:
    """The box as COIN writes it: ``"[x1, y1, x2, y2]"``, 0-1 coordinates with two decimals."""
    x0, y0, x1, y1 = box
    coords = (x0 / size, y0 / size, (x1 + 1) / size, (y1 + 1) / size)
    return "[" + ", ".join(f"{c:.2f}" for c in coords) + "]"
