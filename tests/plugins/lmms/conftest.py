"""The lmms-eval task the interop tests score (see lmms_task.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lmms_task import write_shapes_task


@pytest.fixture(scope="module")
def shapes_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_task(tmp_path_factory.mktemp("lmms_tasks"))
