"""A plugin in its own distribution, installed with pip, found through its entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cvit_bench.harness.results import RunResults

PLUGIN = """
from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add("demo-seq", "cvit_bench_demo.method:DemoSeq",
                  description="sequential fine-tuning of the demo model")


@hookimpl
def register_benchmarks(registrar):
    registrar.add("demo-bench", "cvit_bench.testing.fakes:FakeBenchmark",
                  description="canned questions")


@hookimpl
def register_models(registrar):
    registrar.add("demo-model", "cvit_bench.testing.fakes:FakeModel",
                  description="a memorising fake model")
"""

METHOD = '''
from cvit_bench.testing import FakeSequential


class DemoSeq(FakeSequential):
    """Sequential fine-tuning, published by a third party."""

    name = "demo-seq"
'''


def _package(root: Path, dist: str, module: str, files: dict[str, str]) -> Path:
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "0.3.1"
        [project.entry-points.cvit_bench]
        {dist.removeprefix("cvit-bench-")} = "{module}.plugin"
        [tool.setuptools]
        packages = ["{module}"]
    ''')
    )
    for name, text in files.items():
        (pkg / module / name).write_text(text)
    return pkg


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with two pip-installed plugin distributions: one working, one broken."""
    root = tmp_path_factory.mktemp("plugins")
    good = _package(
        root,
        "cvit-bench-demo",
        "cvit_bench_demo",
        {"__init__.py": "", "plugin.py": PLUGIN, "method.py": METHOD},
    )
    bad = _package(
        root,
        "cvit-bench-broken",
        "cvit_bench_broken",
        {"__init__.py": "", "plugin.py": "import a_module_that_is_not_installed\n"},
    )
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(good),
            str(bad),
        ],
        check=True,
    )
    return target


def cli(site: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "cvit_bench.harness.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        **kwargs,
    )


def test_installed_plugin_is_listed_with_its_distribution(site):
    out = cli(site, "list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    demo = [m for m in data["methods"] if m["name"] == "demo-seq"]
    assert demo and demo[0]["distribution"] == "cvit-bench-demo"
    assert demo[0]["version"] == "0.3.1"
    assert [b["plugin"] for b in data["broken_plugins"]] == ["broken"]


def test_broken_plugin_is_reported_not_fatal(site):
    out = cli(site, "list")
    assert out.returncode == 0 and "demo-seq" in out.stdout
    assert "failed to load" in out.stdout and "broken" in out.stdout
    plugins = cli(site, "plugins")
    assert "broken  [BROKEN]  cvit-bench-broken 0.3.1" in plugins.stdout
    assert "No module named 'a_module_that_is_not_installed'" in plugins.stdout
    asked = cli(site, "run", "--method", "brokn-method", "--bench", "demo-bench")
    assert asked.returncode == 1
    assert "broken: import of 'cvit_bench_broken.plugin' failed" in asked.stderr
    assert "Traceback" not in asked.stderr


def test_installed_plugin_runs_end_to_end(site, tmp_path):
    out = cli(
        site,
        "run",
        "--method",
        "demo-seq",
        "--bench",
        "demo-bench",
        "--model",
        "demo-model",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr
    assert "MFT" in out.stdout and "100.00" in out.stdout
    results = RunResults(tmp_path / "run")
    assert results.complete
    assert results.provenance["method"]["distribution"] == "cvit-bench-demo"
    show = cli(site, "show", str(tmp_path / "run"))
    assert show.stdout.splitlines()[0].startswith("demo-seq on demo-bench with demo-model")


def test_unknown_method_suggests_the_close_name(site):
    out = cli(site, "run", "--method", "demo-sq", "--bench", "demo-bench")
    assert out.returncode == 2
    assert "Did you mean 'demo-seq'" in out.stderr


def test_killed_run_resumes_to_the_same_results(site, tmp_path):
    args = [
        "run",
        "--method",
        "demo-seq",
        "--bench",
        "demo-bench",
        "--model",
        "demo-model",
        "--set",
        "model.delay_s=0.15",
        "--no-progress",
    ]
    reference = cli(site, *args, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvit_bench.harness.cli", *args, "--out", str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    info_path = run_dir / "run.json"
    while time.time() < deadline:
        if info_path.exists():
            try:
                if 2 in json.loads(info_path.read_text())["finished_stages"]:
                    break
            except (json.JSONDecodeError, KeyError):
                pass
        time.sleep(0.02)
    time.sleep(0.2)  # well inside stage 3's training (3 batches x 0.15 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    info = json.loads(info_path.read_text())
    assert info["status"] == "running" and info["finished_stages"] == [0, 1, 2]
    resumed = cli(site, *args, "--out", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert RunResults(run_dir).matrix() == RunResults(tmp_path / "ref").matrix()
    assert RunResults(run_dir).complete
