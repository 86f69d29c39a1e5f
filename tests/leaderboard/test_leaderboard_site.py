"""The built site, read as files: pages, escaping, downloads, CLI."""

from __future__ import annotations

import csv
import html
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lb_helpers import HOSTILE, HOSTILE_TAG, Tree, manager

from cvit_bench.harness.cli import main
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.metrics import continual_metrics, read_matrix_csv
from cvit_bench.harness.results import RunResults, prediction_path, read_table, write_table
from cvit_bench.leaderboard.collect import read_run
from cvit_bench.leaderboard.render import json_for_script
from cvit_bench.leaderboard.site import build_site
from cvit_bench.testing import plugin_manager


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_site_has_index_benchmark_run_and_drilldown_pages(site: Path, tree: Tree) -> None:
    assert (site / "index.html").exists()
    assert (site / "assets" / "board.css").exists() and (site / "assets" / "board.js").exists()
    (bench_dir,) = (site / "b").iterdir()
    assert (bench_dir / "index.html").exists()
    runs = list((site / "r").iterdir())
    assert len(runs) == len(tree.published) + len(tree.scratch_runs)
    for run in runs:
        assert (run / "index.html").exists()
        assert sorted(p.name for p in run.glob("task-*.html")) == [
            f"task-{k}.html" for k in (1, 2, 3, 4)
        ]
        assert (run / "matrix.csv").exists() and (run / "matrix.parquet").exists()


def test_no_page_loads_anything_from_outside_the_site(site: Path) -> None:
    for page in _pages(site):
        text = page.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), page
        assert "fetch(" not in text
    assert "fetch(" not in (site / "assets" / "board.js").read_text()


def test_hostile_strings_are_escaped_everywhere(site: Path) -> None:
    for page in _pages(site):
        text = page.read_text()
        assert "<script>alert" not in text, page
        assert "<img src=x" not in text, page
        # the only scripts are the site's own file and JSON data blocks
        for tag in re.findall(r"<script[^>]*>", text):
            assert tag in (
                '<script src="../../assets/board.js">',
                '<script src="assets/board.js">',
            ) or ('type="application/json"' in tag), (page, tag)
    bench_page = next((site / "b").iterdir()) / "index.html"
    text = bench_page.read_text()
    assert html.escape(HOSTILE) in text
    assert html.escape(HOSTILE_TAG) in text


def test_json_blocks_cannot_close_their_script_element() -> None:
    nasty = {"a": "</script><script>alert(1)</script>", "b": "<!-- & \u2028 \u2029", "c": math.nan}
    text = json_for_script(nasty)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": nasty["a"], "b": nasty["b"], "c": None}


def test_drilldown_data_holds_every_stage_of_the_task(site: Path, tree: Tree) -> None:
    record = read_run(tree.published["seq-s0"])
    page = site / "r" / record.slug / "task-2.html"
    block = re.search(
        r'<script type="application/json" id="drill-data">(.*?)</script>', page.read_text(), re.S
    )
    assert block
    data = json.loads(block.group(1))
    assert data["task"] == "task2"
    assert [s["stage"] for s in data["stages"]] == [0, 1, 2, 3, 4]
    predictions = RunResults(tree.published["seq-s0"]).predictions(3, "task2")
    assert [s[0] for s in data["samples"]] == [p["id"] for p in predictions]
    assert data["preds"]["3"]["p"] == [p["prediction"] for p in predictions]
    assert data["preds"]["3"]["s"] == [p["score"] for p in predictions]
    # the cell's score is the mean of its per-sample scores
    mean = sum(data["preds"]["3"]["s"]) / len(data["preds"]["3"]["s"])
    assert mean == pytest.approx(RunResults(tree.published["seq-s0"]).score(3, "task2"))


def test_large_cells_are_capped_and_say_so(tree: Tree, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site([tree.published["seq-s0"]], out, max_samples=5, jobs=1)
    (run,) = (out / "r").iterdir()
    text = (run / "task-1.html").read_text()
    data = json.loads(
        re.search(r'id="drill-data">(.*?)</script>', text, re.S).group(1)  # type: ignore[union-attr]
    )
    assert len(data["samples"]) == 5 and all(len(v["p"]) == 5 for v in data["preds"].values())
    assert data["stages"][0]["total"] == 12
    assert "Only the first 5 samples" in text


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_downloads_agree_with_each_other_and_with_the_metric_code(site: Path, tree: Tree) -> None:
    bench_dir = next((site / "b").iterdir())
    for stem in ("table", "runs"):
        rows = _csv_rows(bench_dir / f"{stem}.csv")
        table = pq.read_table(bench_dir / f"{stem}.parquet").to_pylist()
        assert len(rows) == len(table)
        for a, b in zip(rows, table):
            for name in ("MFT", "MFN", "MAA", "BWT", "FWT"):
                if b[name] is None or math.isnan(b[name]):
                    assert a[name] == ""
                else:
                    assert float(a[name]) == pytest.approx(b[name])
    runs = {r["run"]: r for r in pq.read_table(bench_dir / "runs.parquet").to_pylist()}
    board = json.loads((site / "board.json").read_text())
    by_slug = {r["run"]: r for b in board["benchmarks"] for r in b["runs"]}
    for key, path in tree.published.items():
        record = read_run(path)
        expected = RunResults(path).metrics()
        for name in ("MFT", "MFN", "MAA", "BWT", "FWT"):
            assert runs[record.slug][name] == pytest.approx(expected[name]), (key, name)
            assert by_slug[record.slug]["metrics"][name] == pytest.approx(expected[name])


def test_matrix_download_feeds_the_metrics_command(site: Path, tree: Tree) -> None:
    record = read_run(tree.published["replay-s0"])
    tasks, rows, zero_shot = read_matrix_csv(str(site / "r" / record.slug / "matrix.csv"))
    assert tasks == record.tasks
    again = continual_metrics(rows, zero_shot)
    for name, value in record.metrics.items():
        assert again[name] == pytest.approx(value, nan_ok=True)
    parquet = pq.read_table(site / "r" / record.slug / "matrix.parquet").to_pylist()
    assert [r["after"] for r in parquet] == ["zero-shot", "task1", "task2", "task3", "task4"]
    stages = pq.read_table(site / "r" / record.slug / "stages.parquet").to_pylist()
    assert [r["stored_samples"] for r in stages] == [0, 2, 4, 6, 8]
    rows = _csv_rows(site / "r" / record.slug / "stages.csv")
    assert [float(r["wall_s"]) for r in rows] == pytest.approx([r["wall_s"] for r in stages])


def test_incomplete_and_dirty_runs_are_badged_on_the_benchmark_page(site: Path) -> None:
    text = next((site / "b").iterdir()).joinpath("index.html").read_text()
    assert 'class="badge badge-incomplete"' in text
    assert 'class="badge badge-dirty"' in text
    flagged = re.findall(r'<tr class="status-flagged"', text)
    assert len(flagged) == 2


def test_a_folder_that_is_not_a_site_is_never_replaced(tree: Tree, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(UsageError, match="not a site"):
        build_site([tree.results], precious, jobs=1)
    assert (precious / "thesis.tex").read_text() == "do not delete"
    site = tmp_path / "site"
    build_site([tree.results], site, jobs=1)
    build_site([tree.published["seq-s0"]], site, jobs=1)  # a rebuild replaces the old site
    assert len(list((site / "r").iterdir())) == 1


def test_parallel_build_gives_the_same_pages(tree: Tree, tmp_path: Path) -> None:
    one = build_site([tree.results], tmp_path / "one", jobs=1)
    two = build_site([tree.results], tmp_path / "two", jobs=2)
    assert one.pages == two.pages == len(_pages(tmp_path / "one")) == len(_pages(tmp_path / "two"))
    a = (tmp_path / "one" / "r").iterdir()
    for run in a:
        other = tmp_path / "two" / "r" / run.name / "index.html"
        strip = lambda t: re.sub(r"Built by cvit-bench .*? UTC", "", t)  # noqa: E731
        assert strip(other.read_text()) == strip((run / "index.html").read_text())


def test_cli_build_and_scratch_message(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    code = main(["leaderboard", "build", str(tree.results), str(tree.scratch), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{len(tree.published)} run(s)" in printed
    assert "2 scratch run(s) not shown" in printed and "--include-scratch" in printed
    assert "--include-scratch" in (out / "index.html").read_text()


def test_cli_module_is_light_to_import() -> None:
    code = (
        "import sys, cvit_bench.leaderboard.cli as c; "
        "heavy = [m for m in ('pyarrow', 'torch', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_results_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["leaderboard", "build", str(tmp_path / "nope"), "--out", str(tmp_path / "s")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_rebuild_reuses_unchanged_run_pages_and_redoes_changed_ones(
    tree: Tree, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    shutil.copytree(tree.results, results)
    site = tmp_path / "site"
    build_site([results], site, jobs=1)
    seq = read_run(tree.published["seq-s0"])
    replay = read_run(results / tree.published["replay-s0"].relative_to(tree.results))
    before = {
        slug: (site / "r" / slug / "task-1.html").stat().st_ino for slug in (seq.slug, replay.slug)
    }
    # a prediction of the replay run changes (same size would not fool the stamp either)
    path = prediction_path(replay.run_dir, 1, "task1")
    table, provenance = read_table(path, "predictions")
    rows = table.to_pylist()
    rows[0]["prediction"] = "changed after the first build"
    write_table(path, "predictions", rows, provenance)
    build_site([results], site, jobs=1)
    assert (site / "r" / seq.slug / "task-1.html").stat().st_ino == before[seq.slug]
    assert (site / "r" / replay.slug / "task-1.html").stat().st_ino != before[replay.slug]
    assert "changed after the first build" in (site / "r" / replay.slug / "task-1.html").read_text()


def test_broken_or_missing_predictions_files_are_reported_on_the_drilldown_page(
    tree: Tree, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tree.published["seq-s0"], run_dir)
    prediction_path(run_dir, 2, "task1").write_bytes(b"truncated")
    prediction_path(run_dir, 3, "task1").unlink()
    site = tmp_path / "site"
    build_site([run_dir], site, jobs=1)
    (run,) = (site / "r").iterdir()
    text = (run / "task-1.html").read_text()
    assert "stage 2: " in text and "not a readable Arrow IPC file" in text
    assert "stage 3: " in text and "does not exist" in text
    data = json.loads(re.search(r'id="drill-data">(.*?)</script>', text, re.S).group(1))  # type: ignore[union-attr]
    assert sorted(data["preds"]) == ["0", "1", "4"]
    assert [s["total"] for s in data["stages"]] == [12, 12, 0, 0, 12]


def test_run_pages_show_plugin_options_with_their_help(tree: Tree, tmp_path: Path) -> None:
    oracle = read_run(tree.published["oracle-s0"])
    with_plugins = tmp_path / "with"
    build_site([tree.published["oracle-s0"]], with_plugins, jobs=1, manager=manager())
    text = (with_plugins / "r" / oracle.slug / "index.html").read_text()
    assert "how many question-answer pairs the model can hold" in text  # FakeModelConfig help
    assert '<code>capacity</code></td><td>48 <span class="sub">(changed)</span>' in text
    assert "questions per task" in text  # the benchmark's options too
    without = tmp_path / "without"
    build_site([tree.published["oracle-s0"]], without, jobs=1, manager=plugin_manager())
    text = (without / "r" / oracle.slug / "index.html").read_text()
    assert "how many question-answer pairs" not in text
    assert "The plugin is not installed where the board was built" in text
