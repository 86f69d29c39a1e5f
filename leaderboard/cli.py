"""``cvit-bench leaderboard build`` and ``cvit-bench publish``.

Only argparse wiring lives here: the site builder (and pyarrow) is imported when a command runs,
so ``cvit-bench list`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

BUILD_HELP = "build the static leaderboard site from run directories"
PUBLISH_HELP = "validate a finished run and copy it into a results tree for the leaderboard"


def register(cli: Any) -> None:
    """Add the commands to ``cli`` (a :class:`cvit_bench.harness.cli.CommandGroups`)."""
    group = cli.group("leaderboard", help="the static leaderboard site")
    p = group.add_parser(
        "build",
        help=BUILD_HELP,
        description="Turn run directories into a static site (index, one page per benchmark "
        "version and scoring mode, one page per run, CSV/Parquet/JSON downloads) that works "
        "from file:// and on any file server. Only published runs are shown unless "
        "--include-scratch is given.",
    )
    p.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="a run directory, or a folder searched for run directories",
    )
    p.add_argument("--out", required=True, metavar="SITE_DIR", help="where to write the site")
    p.add_argument(
        "--include-scratch",
        action="store_true",
        help="also show runs not published with 'cvit-bench publish' (badged as scratch)",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=1000,
        metavar="N",
        help="per-sample predictions embedded per (stage, task) cell (0: all; default 1000)",
    )
    p.add_argument("--title", default="cvit-bench leaderboard", help="the site's title")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes rendering run pages (default: one per CPU)",
    )
    p.set_defaults(func=cmd_build)

    p = cli.add_parser(
        "publish",
        help=PUBLISH_HELP,
        description="Check that a run is finished (complete matrix), was made from a clean "
        "source tree, uses the installed benchmark's canonical version and the canonical "
        "protocol, then copy it (without checkpoints) into RESULTS_DIR/<benchmark>/.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to publish")
    p.add_argument(
        "--to", required=True, dest="results_dir", metavar="RESULTS_DIR", help="results tree"
    )
    p.set_defaults(func=cmd_publish)


def cmd_build(args: argparse.Namespace) -> int:
    from .site import build_site

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    report = build_site(
        args.results_dirs,
        args.out,
        include_scratch=args.include_scratch,
        max_samples=args.max_samples,
        title=args.title,
        log=log,
        jobs=args.jobs,
    )
    print(
        f"built {report.out}: {report.runs} run(s) on {report.benchmarks} benchmark page(s), "
        f"{report.pages} pages in {report.seconds:.1f} s"
    )
    if report.scratch_skipped:
        print(
            f"{report.scratch_skipped} scratch run(s) not shown (not published); "
            "pass --include-scratch to show them"
        )
    if report.unreadable:
        print(f"{len(report.unreadable)} run(s) could not be read (listed on the index page)")
    print(f"open {report.out / 'index.html'}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from .publish import publish

    dest = publish(args.run_dir, args.results_dir)
    print(f"published {args.run_dir} -> {dest}")
    return 0
