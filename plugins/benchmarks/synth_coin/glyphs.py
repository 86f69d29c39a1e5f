"""A 5x7 bitmap font for the characters synth-coin renders.

Drawn from bitmaps in this file rather than a system font, so that the same seed gives the same
pixels on every machine whatever fonts (or FreeType version) it has.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

GLYPH_WIDTH = 5
GLYPH_HEIGHT = 7

_FONT: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###."),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#"),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
}

CHARACTERS = frozenset(_FONT)


@cache
def glyph_mask(char: str, scale: int) -> np.ndarray:
    """Boolean mask of ``char`` magnified ``scale`` times: shape ``(7*scale, 5*scale)``."""
    rows = _FONT[char]
    base = np.array([[cell == "#" for cell in row] for row in rows], dtype=bool)
    return np.kron(base, np.ones((scale, scale), dtype=bool))


@cache
def text_mask(text: str, scale: int, spacing: int = 1) -> np.ndarray:
    """Boolean mask of ``text`` on one line, characters ``spacing * scale`` pixels apart."""
    masks = [glyph_mask(char, scale) for char in text]
    gap = np.zeros((GLYPH_HEIGHT * scale, spacing * scale), dtype=bool)
    parts: list[np.ndarray] = []
    for index, mask in enumerate(masks):
        if index:
            parts.append(gap)
        parts.append(mask)
    return np.concatenate(parts, axis=1)


@cache
def text_image(text: str, scale: int, spacing: int = 1) -> Image.Image:
    """:func:`text_mask` as a mode ``L`` image (255 where ink goes), for ``Image.paste``."""
    return Image.fromarray(text_mask(text, scale, spacing).astype(np.uint8) * 255, mode="L")
