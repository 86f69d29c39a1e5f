"""Screenshots of the leaderboard for the documentation, taken with headless Chromium.

    python scripts/screenshots.py results/ --out docs/img
    python scripts/screenshots.py runs/synth-coin --include-scratch --out docs/img

Builds the site from RESULTS_DIR... into a temporary folder, then saves

* ``leaderboard-benchmark.png``: the benchmark page with the most runs (its table);
* ``leaderboard-run.png``: the run page of that benchmark's best-ranked run (metrics, heat map,
  curves).

Needs Debian's Chromium (``/usr/bin/chromium``, or ``--chromium PATH``) and the ``playwright``
Python package; Playwright's own browser download is not used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR")
    parser.add_argument("--out", default="docs/img", help="folder for the PNG files")
    parser.add_argument("--include-scratch", action="store_true", help="show unpublished runs")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser binary")
    parser.add_argument("--width", type=int, default=1320)
    parser.add_argument("--bench-height", type=int, default=720)
    parser.add_argument("--run-height", type=int, default=1080)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from cvit_bench.leaderboard.board import make_board
    from cvit_bench.leaderboard.collect import collect
    from cvit_bench.leaderboard.site import build_site

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site(args.results_dirs, site, include_scratch=args.include_scratch)
        board = make_board(collect(args.results_dirs, include_scratch=args.include_scratch))
        if not board.benchmarks:
            print("no runs found (pass --include-scratch for unpublished runs)", file=sys.stderr)
            return 1
        bench = max(board.benchmarks, key=lambda b: len(b.runs))
        row = bench.ranked_rows[0] if bench.ranked_rows else bench.rows[0]
        run = row.first
        shots = [
            (
                site / "b" / bench.slug / "index.html",
                "leaderboard-benchmark.png",
                args.bench_height,
            ),
            (site / "r" / run.slug / "index.html", "leaderboard-run.png", args.run_height),
        ]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for page_path, name, height in shots:
                page = browser.new_page(viewport={"width": args.width, "height": height})
                page.goto(page_path.resolve().as_uri())
                page.wait_for_selector("html[data-ready='1']")
                page.screenshot(path=str(out / name))
                page.close()
                size = (out / name).stat().st_size
                print(f"{out / name}: {size / 1024:.0f} KB ({page_path.relative_to(site)})")
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
