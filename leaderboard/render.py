"""HTML and SVG pieces of the site. Every value that reaches HTML goes through :func:`esc`
(text and attributes) or :func:`json_script` (data blocks); nothing from a result file is
ever written raw."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any


def esc(value: Any) -> str:
    """Escape text for HTML element content and quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def clean_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``None`` (valid JSON) and tuples as lists."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def json_for_script(obj: Any, clean: bool = True) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``</script>``,
    ``<!--`` or ``&`` can appear in it (they are written as JSON ``\\u`` escapes, which
    ``JSON.parse`` turns back into the same characters). ``clean=False`` skips the NaN
    clean-up for data built without NaN (a NaN left in raises ``ValueError``)."""
    text = json.dumps(
        clean_json(obj) if clean else obj,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def json_script(element_id: str, obj: Any, clean: bool = True) -> str:
    data = json_for_script(obj, clean)
    return f'<script type="application/json" id="{esc(element_id)}">{data}</script>'


# -- numbers --------------------------------------------------------------------------------


def isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_score(value: Any, digits: int = 2) -> str:
    return "–" if isnan(value) else f"{float(value):.{digits}f}"


def fmt_signed(value: Any, digits: int = 2) -> str:
    return "–" if isnan(value) else f"{float(value):+.{digits}f}"


def fmt_count(value: Any) -> str:
    """``4.19M``, ``12.3k``, ``512``."""
    if isnan(value):
        return "–"
    n = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def fmt_duration(seconds: Any) -> str:
    if isnan(seconds):
        return "–"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 90:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_memory(mb: Any) -> str:
    if isnan(mb):
        return "–"
    mb = float(mb)
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def data_value(value: Any) -> str:
    """A ``data-v`` attribute value for sorting: the full-precision number, empty for none."""
    if isnan(value):
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


# -- pages ----------------------------------------------------------------------------------


@cache
def asset(name: str) -> str:
    """A file of the ``templates`` package (page shell, stylesheet, script)."""
    return (resources.files("cvit_bench.leaderboard.templates") / name).read_text("utf-8")


def page(
    *,
    title: str,
    body: str,
    root: str,
    crumbs: Sequence[tuple[str, str | None]] = (),
    footer: str = "",
    site_title: str = "cvit-bench leaderboard",
) -> str:
    """A complete page. ``title``, ``crumbs`` and ``site_title`` are plain text (escaped here);
    ``body`` and ``footer`` are HTML already escaped by their builders."""
    nav = ' <span aria-hidden="true">›</span> '.join(
        f'<a href="{esc(href)}">{esc(text)}</a>' if href else f"<span>{esc(text)}</span>"
        for text, href in crumbs
    )
    return Template(asset("page.html")).substitute(
        title=esc(title),
        site_title=esc(site_title),
        root=esc(root),
        nav=nav,
        body=body,
        footer=footer,
    )


def badge(kind: str, label: str, detail: str = "") -> str:
    title = f' title="{esc(detail)}"' if detail else ""
    return f'<span class="badge badge-{esc(kind)}"{title}>{esc(label)}</span>'


def table_html(
    headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "plain", numeric_from: int = 1
) -> str:
    """A plain table; ``headers`` are text, ``rows`` hold HTML cells."""
    head = "".join(
        f"<th{' class=num' if i >= numeric_from else ''}>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i >= numeric_from else ''}>{c}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- charts ---------------------------------------------------------------------------------

# a blue sequential scale (light to dark), interpolated linearly
_STOPS = [
    (0.0, (247, 251, 255)),
    (0.25, (198, 219, 239)),
    (0.5, (107, 174, 214)),
    (0.75, (33, 113, 181)),
    (1.0, (8, 48, 107)),
]


def heat_colour(value: float) -> str:
    """The fill of a heat-map cell scoring ``value`` (0-100)."""
    return _heat_colour(round(min(max(value, 0.0), 100.0), 1))


@cache
def _heat_colour(value: float) -> str:
    x = value / 100.0
    for (x0, c0), (x1, c1) in zip(_STOPS, _STOPS[1:]):
        if x <= x1:
            f = (x - x0) / (x1 - x0) if x1 > x0 else 0.0
            rgb = [round(a + (b - a) * f) for a, b in zip(c0, c1)]
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#08306b"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def heatmap_svg(
    tasks: Sequence[str],
    stages: Sequence[int],
    stage_label: Callable[[int], str],
    value: Callable[[int, str], float],
    link: Callable[[int, int], str] | None = None,
    detail: Callable[[int, str], str] | None = None,
    diagonal: Callable[[int, int], bool] | None = None,
) -> str:
    """The accuracy matrix as an SVG heat map: a row per stage, a column per evaluated task."""
    cw, ch = 58, 30
    label_w = min(max([len(_clip(stage_label(s), 26)) for s in stages] + [8]) * 7 + 16, 200)
    longest = max([len(_clip(t, 16)) for t in tasks] + [4])
    top = int(min(max(16 + 4.8 * longest, 40), 100))  # room for the rotated task labels
    legend_w = min(cw * len(tasks), 240)
    # room for the last rotated label and the legend's caption
    width = max(label_w + cw * len(tasks) + 70, label_w + legend_w + 190)
    height = top + ch * len(stages) + 40
    out = [
        f'<svg class="heatmap" role="img" aria-label="accuracy matrix" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
    ]
    for j, task in enumerate(tasks):
        x = label_w + cw * j + cw / 2
        out.append(
            f'<text class="col-label" transform="translate({x + 4:.0f},{top - 8}) rotate(-40)">'
            f"<title>{esc(task)}</title>{esc(_clip(task, 16))}</text>"
        )
    for i, stage in enumerate(stages):
        y = top + ch * i
        label = stage_label(stage)
        out.append(
            f'<text class="row-label" x="{label_w - 8}" y="{y + ch / 2 + 4:.0f}" text-anchor="end">'
            f"<title>{esc(label)}</title>{esc(_clip(label, 26))}</text>"
        )
        for j, task in enumerate(tasks):
            x = label_w + cw * j
            v = value(stage, task)
            missing = isnan(v)
            fill = "#eceff3" if missing else heat_colour(v)
            ink = "#9aa3ad" if missing else ("#ffffff" if v >= 55 else "#0b1f33")
            text = "–" if missing else f"{v:.1f}"
            tip = detail(stage, task) if detail else f"{task} after {label}: {text}"
            stroke = (
                ' stroke="#111827" stroke-width="2"'
                if diagonal and diagonal(stage, j + 1)
                else ' stroke="#ffffff" stroke-width="1"'
            )
            cell = (
                f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{fill}"{stroke}/>'
                f'<text x="{x + cw / 2:.0f}" y="{y + ch / 2 + 4:.0f}" text-anchor="middle" '
                f'fill="{ink}" class="cell-text">{esc(text)}</text>'
                f"<title>{esc(tip)}</title>"
            )
            href = link(stage, j + 1) if link and not missing else None
            if href:
                out.append(f'<a class="cell" href="{esc(href)}">{cell}</a>')
            else:
                out.append(f'<g class="cell">{cell}</g>')
    # legend
    ly = top + ch * len(stages) + 14
    lx = label_w
    lw = legend_w
    out.append(
        '<defs><linearGradient id="heat-legend" x1="0" x2="1" y1="0" y2="0">'
        + "".join(
            f'<stop offset="{p:.2f}" stop-color="{heat_colour(p * 100)}"/>' for p, _ in _STOPS
        )
        + "</linearGradient></defs>"
    )
    out.append(
        f'<rect x="{lx}" y="{ly}" width="{lw}" height="10" fill="url(#heat-legend)" '
        'stroke="#cbd5e1"/>'
        f'<text class="legend" x="{lx}" y="{ly + 24}">0</text>'
        f'<text class="legend" x="{lx + lw}" y="{ly + 24}" text-anchor="end">100</text>'
        f'<text class="legend" x="{lx + lw + 10}" y="{ly + 9}">outlined: task just trained</text>'
    )
    out.append("</svg>")
    return "".join(out)


def curve_svg(
    stages: Sequence[int],
    values: Sequence[float],
    trained_at: int | None,
    stage_label: Callable[[int], str],
    title: str,
) -> str:
    """A small line chart of one task's score across stages (gaps where not evaluated)."""
    w, h = 220, 110
    left, right, top, bottom = 30, 8, 8, 20
    pw, ph = w - left - right, h - top - bottom
    n = max(len(stages) - 1, 1)

    def px(i: int) -> float:
        return left + pw * i / n

    def py(v: float) -> float:
        return top + ph * (1 - min(max(v, 0.0), 100.0) / 100.0)

    out = [
        f'<svg class="curve" role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
    ]
    for v in (0, 50, 100):
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{py(v) + 3:.1f}" text-anchor="end" class="axis">{v}</text>'
        )
    if trained_at is not None and trained_at in stages:
        x = px(list(stages).index(trained_at))
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="trained">'
            "<title>stage that trained this task</title></line>"
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, v in enumerate(values):
        if isnan(v):
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{px(i):.1f},{py(v):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        out.append(f'<polyline points="{" ".join(seg)}" class="line"/>')
    for i, (stage, v) in enumerate(zip(stages, values)):
        if isnan(v):
            continue
        out.append(
            f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="2.6" class="dot">'
            f"<title>{esc(stage_label(stage))}: {v:.2f}</title></circle>"
        )
    out.append(
        f'<text x="{left}" y="{h - 4}" class="axis">{esc(stages[0] if stages else "")}</text>'
        f'<text x="{w - right}" y="{h - 4}" class="axis" text-anchor="end">'
        f"stage {esc(stages[-1] if stages else '')}</text>"
    )
    out.append("</svg>")
    return "".join(out)
