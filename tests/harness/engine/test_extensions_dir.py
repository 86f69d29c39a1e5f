"""Where DeepSpeed's CPU operator is built, and what happens when a killed build left its lock."""

from __future__ import annotations

import os
import sys
import time

import pytest

from cvit_bench.harness.engine import distributed
from cvit_bench.harness.errors import CvitError


def test_each_python_environment_gets_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here = distributed.extensions_dir()
    assert here.parent == tmp_path / "torch_extensions"
    monkeypatch.setattr(sys, "prefix", "/some/other/venv")
    assert distributed.extensions_dir() != here
    assert distributed.extensions_dir().parent == here.parent


def test_a_given_folder_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ops"))
    assert distributed.prepare_extensions_dir() == tmp_path / "ops"
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(tmp_path / "ops")


def test_a_lock_left_by_a_killed_build_is_named_instead_of_waited_on(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir()
    lock.touch()
    distributed.prepare_extensions_dir()  # a build running right now: wait for it as torch does
    old = time.time() - distributed.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    with pytest.raises(CvitError, match="deepspeed_shm_comm/lock.*delete that file"):
        distributed.prepare_extensions_dir()
    lock.unlink()
    distributed.prepare_extensions_dir()
