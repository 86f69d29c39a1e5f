"""The wheel holds every package and data file: an editable install would hide a gap."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TOP_LEVEL = {
    "harness": "cvit_bench/harness",
    "plugins": "cvit_bench/plugins",
    "leaderboard": "cvit_bench/leaderboard",
    "testing": "cvit_bench/testing",
}
DATA_SUFFIXES = (".json", ".yaml", ".yml", ".html", ".css", ".js", ".txt", ".md", ".jinja")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    [path] = out.glob("cvit_bench-*.whl")
    return zipfile.ZipFile(path)


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", *TOP_LEVEL], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [Path(p) for p in out.stdout.split()]


def test_every_module_and_data_file_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    expected = [p for p in _tracked_files() if p.suffix == ".py" or p.name.endswith(DATA_SUFFIXES)]
    assert expected
    missing = []
    for path in expected:
        parts = path.parts
        inside = f"{TOP_LEVEL[parts[0]]}/{'/'.join(parts[1:])}"
        if path.suffix == ".py" and not (ROOT / path.parent / "__init__.py").exists():
            missing.append(f"{path} (its folder has no __init__.py, so it is not a package)")
        elif inside not in names:
            missing.append(str(path))
    assert not missing, f"not in the wheel: {missing}"


def test_entry_points_and_console_script_are_in_the_wheel(wheel):
    [entry_points] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "cvit-bench = cvit_bench.harness.cli:main" in text
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, target in declared.get("entry-points", {}).get("cvit_bench", {}).items():
        assert f"{name} = {target}" in text
        module_path = target.replace(".", "/")
        assert (
            f"{module_path}/__init__.py" in wheel.namelist()
            or f"{module_path}.py" in wheel.namelist()
        ), f"{target} is not in the wheel"


def test_no_tests_or_generic_top_level_packages_in_the_wheel(wheel):
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"cvit_bench"}
