"""Jobs spread over processes: results in order, errors that say what happened."""

from __future__ import annotations

import os
import signal

import pytest

from cvit_bench.harness.errors import CvitError, DataError, UsageError
from cvit_bench.harness.parallel import ENV, default_workers, map_jobs, usable_cpus


def _square_and_pid(job: int) -> tuple[int, int]:
    return job * job, os.getpid()


def _fail_on_three(job: int) -> int:
    if job == 3:
        raise DataError(f"item {job}: no such image")
    return job


def _die(job: int) -> int:
    if job == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def test_results_come_back_in_job_order_from_other_processes():
    out = map_jobs(_square_and_pid, range(9), workers=2)
    assert [square for square, _ in out] == [i * i for i in range(9)]
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_runs_in_this_process(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    assert default_workers() == 1
    assert {pid for _, pid in map_jobs(_square_and_pid, range(4))} == {os.getpid()}
    monkeypatch.delenv(ENV)
    assert default_workers() == usable_cpus() >= 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_worker_count_is_a_usage_error(monkeypatch, value: str):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(UsageError, match=ENV):
        map_jobs(_square_and_pid, range(4))


def test_a_job_error_reaches_the_caller_unchanged():
    with pytest.raises(DataError, match="item 3: no such image"):
        map_jobs(_fail_on_three, range(6), workers=2)


def test_a_killed_worker_is_reported_with_the_way_out():
    with pytest.raises(CvitError, match=f"worker process drawing data died.*{ENV}=1"):
        map_jobs(_die, range(4), workers=2)
