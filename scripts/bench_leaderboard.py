"""How long building the leaderboard takes for many runs.

Writes synthetic run directories (``cvit_bench.leaderboard.synthetic``: valid result files
written by the harness's own writer, predictions included) and times
``cvit-bench leaderboard build`` over them::

    python scripts/bench_leaderboard.py --runs 1000 --tasks 8
    python scripts/bench_leaderboard.py --runs 1000 --work /dev/shm/lb --keep --jobs 1

Generating the runs is not timed (on a disk, the atomic writer's fsync per file makes it take
minutes; ``--work /dev/shm/...`` avoids that). The build is timed from scratch, every page and
download included, with ``--jobs`` worker processes (default: one per CPU), then once more over
the finished site, when every run's pages are reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _build(build_site: Any, results: Path, site: Path, jobs: int | None, label: str) -> float:
    cpu = time.process_time()
    report = build_site([results], site, include_scratch=True, jobs=jobs)
    print(
        f"{label}: {report.pages} pages for {report.runs} runs in {report.seconds:.1f} s wall "
        f"({time.process_time() - cpu:.1f} s CPU in the main process)"
    )
    return report.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--samples", type=int, default=20, help="eval samples per task")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per configuration")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes")
    parser.add_argument("--repeat", type=int, default=1, help="time the build this many times")
    parser.add_argument("--work", help="folder for runs and site (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the runs")
    args = parser.parse_args()

    from cvit_bench.leaderboard.site import build_site
    from cvit_bench.leaderboard.synthetic import generate

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cvit-board-bench-"))
    results = work / "results"
    marker = work / f"runs-{args.runs}x{args.tasks}x{args.samples}"
    if not marker.exists():
        shutil.rmtree(results, ignore_errors=True)
        started = time.perf_counter()
        generate(results, args.runs, args.tasks, args.samples, args.seeds, flagged_every=50)
        marker.touch()
        print(f"generated {args.runs} runs in {time.perf_counter() - started:.1f} s")
    files = sum(len(f) for _, _, f in os.walk(results))
    print(f"{args.runs} runs of {args.tasks} tasks, {args.samples} samples per cell: {files} files")
    times = []
    for _ in range(args.repeat):
        shutil.rmtree(work / "site", ignore_errors=True)
        times.append(_build(build_site, results, work / "site", args.jobs, "from scratch"))
    rebuild = _build(build_site, results, work / "site", args.jobs, "again, nothing changed")
    size = sum(f.stat().st_size for f in (work / "site").rglob("*") if f.is_file())
    print(
        f"site: {size / 1e6:.0f} MB; from scratch, best of {len(times)}: {min(times):.1f} s; "
        f"rebuild reusing unchanged run pages: {rebuild:.1f} s"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
