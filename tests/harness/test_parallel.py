"""Jobs spread over processes: results in order, errors that say what happened."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from cvit_bench.harness.errors import CvitError, DataError, UsageError
from cvit_bench.harness.parallel import ENV, default_workers, forked_map, map_jobs, usable_cpus


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


def test_forked_workers_see_this_process_as_it_is_and_answer_in_order():
    state = {"offset": 100}  # a closure over live state: a forked worker sees it, no pickling
    out = forked_map(lambda k: (k + state["offset"], os.getpid()), 7, 2, "adding")
    assert [value for value, _ in out] == [100 + k for k in range(7)]
    pids = [pid for _, pid in out]
    assert pids[0::2] == [os.getpid()] * 4  # every other item here, the rest in one worker
    assert len(set(pids[1::2])) == 1 and pids[1] != os.getpid()
    assert forked_map(lambda k: os.getpid(), 3, 1, "x") == [os.getpid()] * 3


def test_a_forked_worker_error_or_death_says_what_it_was_doing():
    def fail(k: int) -> int:
        if k == 1:
            raise ValueError("batch 1 has no pixels")
        return k

    with pytest.raises(CvitError, match="(?s)worker process for evaluating X failed.*no pixels"):
        forked_map(fail, 4, 2, "evaluating X")

    def missing(k: int) -> int:
        if k == 3:
            raise DataError("img/3.png: no such image")
        return k

    with pytest.raises(DataError, match="^img/3.png: no such image$"):  # as in one process
        forked_map(missing, 4, 2, "evaluating X")

    def die(k: int) -> int:
        if k % 2:
            os._exit(3)
        return k

    with pytest.raises(CvitError, match=f"evaluating X died \\(exit code 3\\).*{ENV}=1"):
        forked_map(die, 4, 2, "evaluating X")
    assert multiprocessing.active_children() == []
