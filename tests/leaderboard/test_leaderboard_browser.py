"""The built site in a real browser: Debian's Chromium, driven by Playwright, from file://.

Needs the ``chromium`` Debian package (``apt-get install chromium``); Playwright's own browser
download is never used.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lb_helpers import HOSTILE, HOSTILE_PREDICTION, HOSTILE_PROMPT, HOSTILE_TAG, Tree, make_run

from cvit_bench.harness.results import RunResults
from cvit_bench.leaderboard.collect import read_run
from cvit_bench.leaderboard.site import build_site

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
)

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Visitor:
    """A page that records dialogs (an executed ``alert``) and script errors."""

    def __init__(self, browser: Any):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: Path, fragment: str = "") -> Any:
        self.page.goto(path.resolve().as_uri() + fragment)
        self.page.wait_for_selector("html[data-ready='1']")
        return self.page


@pytest.fixture
def visitor(browser: Any) -> Iterator[Visitor]:
    v = Visitor(browser)
    yield v
    assert not v.errors, f"script errors in the page: {v.errors}"
    assert not v.dialogs, f"a dialog opened: a script from a result file ran: {v.dialogs}"
    v.page.close()


def _bench_page(site: Path) -> Path:
    return next((site / "b").iterdir()) / "index.html"


def _column(page: Any, cls: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#board tbody tr:not([hidden]) td.{cls}", "cells => cells.map(c => c.textContent.trim())"
    )


def _number(text: str) -> float:
    head = text.replace("★", "").split("±")[0].strip()
    return math.nan if head in ("–", "") else float(head)


def test_sorting_changes_row_order(site: Path, visitor: Visitor) -> None:
    page = visitor.open(_bench_page(site))
    header = page.locator("#board thead th", has_text="MAA")
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    down = [_number(t) for t in _column(page, "c-MAA")]
    present = [v for v in down if not math.isnan(v)]
    assert present == sorted(present, reverse=True) and len(set(present)) > 1
    header.locator("button").click()
    up = [_number(t) for t in _column(page, "c-MAA")]
    assert [v for v in up if not math.isnan(v)] == sorted(present)
    page.locator("#board thead th", has_text="Method").locator("button").click()
    methods = _column(page, "c-method")
    assert methods == sorted(methods, key=str.lower) and methods != down


def test_filters_hide_rows(site: Path, visitor: Visitor) -> None:
    page = visitor.open(_bench_page(site))
    total = len(_column(page, "c-method"))
    page.select_option("#filter-method", "fake-replay")
    shown = _column(page, "c-method")
    assert shown and set(shown) == {"fake-replay"} and len(shown) < total
    assert page.locator("form.filters .count").text_content() == f"{len(shown)} of {total} shown"
    page.select_option("#filter-method", "")
    page.select_option("#filter-tag", HOSTILE_TAG)
    assert _column(page, "c-method") == ["fake-replay"]
    page.select_option("#filter-tag", "")
    page.select_option("#filter-status", "flagged")
    statuses = page.eval_on_selector_all(
        "#board tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.status)"
    )
    assert statuses == ["flagged", "flagged"]
    page.select_option("#filter-status", "")
    page.fill("#filter-text", "fake-oracle")
    assert _column(page, "c-method") == ["fake-oracle"]
    page.fill("#filter-text", "")
    assert len(_column(page, "c-method")) == total


def test_hostile_names_show_as_text_and_run_nothing(
    site: Path, tree: Tree, visitor: Visitor
) -> None:
    page = visitor.open(_bench_page(site))
    assert HOSTILE in _column(page, "c-method")
    assert page.locator("#board td.c-tags .badge", has_text=HOSTILE_TAG).count() == 1
    record = read_run(tree.published["hostile-s0"])
    run_page = visitor.open(site / "r" / record.slug / "index.html")
    assert run_page.locator("h1").text_content().startswith(HOSTILE)
    drill = visitor.open(site / "r" / record.slug / "task-1.html", "#stage=1")
    first = drill.locator("#drill-table tbody tr").first
    assert first.locator("td.prediction").text_content() == HOSTILE_PREDICTION
    assert first.locator("td").nth(1).text_content() == HOSTILE_PROMPT
    assert drill.locator("#drill-table img").count() == 0
    visitor.open(site / "index.html")
    # the visitor fixture fails the test if any dialog opened or any script error occurred


def test_run_page_shows_the_heat_map_and_curves(site: Path, tree: Tree, visitor: Visitor) -> None:
    record = read_run(tree.published["seq-s0"])
    results = RunResults(tree.published["seq-s0"])
    page = visitor.open(site / "r" / record.slug / "index.html")
    heat = page.locator("svg.heatmap")
    assert heat.is_visible()
    texts = page.eval_on_selector_all(
        "svg.heatmap .cell text", "cells => cells.map(c => c.textContent)"
    )
    expected = [f"{results.score(s, t):.1f}" for s in results.stages for t in results.tasks]
    assert texts == expected
    assert page.locator("svg.curve").count() == len(results.tasks)
    mfn = page.locator('.card .v[data-metric="MFN"]').text_content()
    assert float(mfn) == pytest.approx(results.metrics()["MFN"], abs=0.005)


def test_heat_map_cell_opens_the_drilldown_at_that_stage(
    site: Path, tree: Tree, visitor: Visitor
) -> None:
    record = read_run(tree.published["seq-s0"])
    results = RunResults(tree.published["seq-s0"])
    page = visitor.open(site / "r" / record.slug / "index.html")
    page.locator('svg.heatmap a[href="task-2.html#stage=3"]').click()
    page.wait_for_selector("html[data-ready='1']")
    assert page.url.endswith("task-2.html#stage=3")
    assert page.locator("#drill-stage").input_value() == "3"
    predictions = results.predictions(3, "task2")
    rows = page.eval_on_selector_all(
        "#drill-table tbody tr",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))",
    )
    assert [r[0] for r in rows] == [p["id"] for p in predictions]
    assert [r[2] for r in rows] == [p["prediction"] for p in predictions]
    assert [r[3] for r in rows] == [p["reference"] for p in predictions]
    assert [float(r[4]) for r in rows] == [p["score"] for p in predictions]
    # only the wrong answers
    page.select_option("#drill-show", "wrong")
    wrong = page.eval_on_selector_all("#drill-table tbody tr", "rows => rows.length")
    assert wrong == sum(1 for p in predictions if p["score"] < 100)
    # another stage, then a search
    page.select_option("#drill-show", "all")
    page.select_option("#drill-stage", "0")
    first = page.locator("#drill-table tbody tr td.prediction").first.text_content()
    assert first == results.predictions(0, "task2")[0]["prediction"]
    page.fill("#drill-search", "question 11")
    assert page.eval_on_selector_all("#drill-table tbody tr", "rows => rows.length") == 1


def test_drilldown_pages_through_large_tasks(browser: Any, tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", questions=130)
    site = tmp_path / "site"
    build_site([run_dir], site, include_scratch=True, jobs=1)
    visitor = Visitor(browser)
    page = visitor.open(next((site / "r").iterdir()) / "task-1.html")
    count = "#drill-table tbody tr"
    assert page.eval_on_selector_all(count, "r => r.length") == 50
    assert "1–50 of 130" in page.locator("#drill-info").text_content()
    page.click("#drill-next")
    page.click("#drill-next")
    assert page.eval_on_selector_all(count, "r => r.length") == 30
    assert page.locator("#drill-next").is_disabled()
    page.fill("#drill-search", "question 12")  # 12, 120..129
    assert page.eval_on_selector_all(count, "r => r.length") == 11
    assert not visitor.errors and not visitor.dialogs
    page.close()


def test_downloads_hold_the_numbers_in_the_table(site: Path, visitor: Visitor) -> None:
    page = visitor.open(_bench_page(site))
    shown = {
        "method": _column(page, "c-method"),
        **{
            m: [_number(t) for t in _column(page, f"c-{m}")]
            for m in ("MFT", "MFN", "MAA", "BWT", "FWT")
        },
    }
    href = page.locator("a", has_text="CSV").first.get_attribute("href")
    target = (_bench_page(site).parent / href).resolve()
    assert target.exists() and target.is_relative_to(site.resolve())
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"].lstrip("'") for r in rows] == shown["method"]
    for metric in ("MFT", "MFN", "MAA", "BWT", "FWT"):
        from_file = [math.nan if r[metric] == "" else round(float(r[metric]), 2) for r in rows]
        assert len(from_file) == len(shown[metric])
        for a, b in zip(from_file, shown[metric]):
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=0.006), metric
    parquet_href = page.locator("a", has_text="Parquet").first.get_attribute("href")
    assert (_bench_page(site).parent / parquet_href).resolve().exists()
    board_href = page.locator("a", has_text="board.json").first.get_attribute("href")
    assert (_bench_page(site).parent / board_href).resolve() == (site / "board.json").resolve()
