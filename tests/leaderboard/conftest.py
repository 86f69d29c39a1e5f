"""Fixtures of the leaderboard tests: one results tree and one built site per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from lb_helpers import Tree, build_tree


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return build_tree(tmp_path_factory.mktemp("board"))


@pytest.fixture(scope="session")
def site(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cvit_bench.leaderboard.site import build_site

    out = tmp_path_factory.mktemp("site") / "site"
    build_site([tree.results, tree.scratch], out, include_scratch=True, jobs=1)
    return out
