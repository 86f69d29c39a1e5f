"""Maps the repository's top-level folders onto the import root ``cvit_bench``.

``harness/`` becomes ``cvit_bench.harness``, ``plugins/`` ``cvit_bench.plugins``, and so on. The
package list is computed from the folders that hold an ``__init__.py``, so a new plugin folder
is packaged without editing this file; ``tests/test_packaging.py`` checks the built wheel.
"""

from __future__ import annotations

import os

from setuptools import setup

TOP_LEVEL = {
    "harness": "cvit_bench.harness",
    "plugins": "cvit_bench.plugins",
    "leaderboard": "cvit_bench.leaderboard",
    "testing": "cvit_bench.testing",
}
DATA_SUFFIXES = (".json", ".yaml", ".yml", ".html", ".css", ".js", ".txt", ".md", ".jinja")


def _packages() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    packages, package_dir, package_data = [], {}, {}
    for folder, root in TOP_LEVEL.items():
        package_dir[root] = folder
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            if "__init__.py" not in filenames:
                continue
            name = root + dirpath[len(folder) :].replace(os.sep, ".")
            packages.append(name)
            data = _data_files(dirpath)
            if data:
                package_data[name] = data
    return packages, package_dir, package_data


def _data_files(package_path: str) -> list[str]:
    """Data files of a package, including those in sub-folders that are not packages."""
    found = []
    for dirpath, dirnames, filenames in os.walk(package_path):
        if dirpath != package_path and "__init__.py" in filenames:
            dirnames[:] = []  # a sub-package lists its own data
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        rel = os.path.relpath(dirpath, package_path)
        for f in sorted(filenames):
            if f.endswith(DATA_SUFFIXES):
                found.append(f if rel == "." else os.path.join(rel, f))
    return found


packages, package_dir, package_data = _packages()
setup(packages=packages, package_dir=package_dir, package_data=package_data)
