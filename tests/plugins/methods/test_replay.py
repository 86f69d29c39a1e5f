from __future__ import annotations

import pytest
from method_helpers import check_resume

from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.types import Sample
from cvit_bench.plugins.methods.replay.method import Replay, ReplayConfig


def task_samples(task: str, n: int) -> list[Sample]:
    return [Sample(id=f"{task}-{i}", task=task, prompt="q", answer=str(i)) for i in range(n)]


def fill(config: ReplayConfig, seed: int, tasks: int = 4, n: int = 50) -> Replay:
    method = Replay(config)
    for stage in range(1, tasks + 1):
        method.store(task_samples(f"t{stage}", n), seed=seed, stage=stage)
    return method


def ids(method: Replay) -> list[str]:
    return [s.id for s in method.buffer]


def test_random_selection_keeps_a_quota_per_task_depending_only_on_the_seed():
    config = ReplayConfig(selection="random", fraction=None, per_task=7)
    a = fill(config, seed=0)
    assert len(a.buffer) == 4 * 7
    assert a.costs()["stored_by_task"] == {"t1": 7, "t2": 7, "t3": 7, "t4": 7}
    assert len(set(ids(a))) == len(a.buffer)  # without replacement
    assert ids(a) == ids(fill(config, seed=0))
    assert ids(a) != ids(fill(config, seed=1))
    # a fraction rounds up; a quota larger than the task keeps the whole task
    assert fill(ReplayConfig(fraction=0.1), seed=0, n=25).costs()["stored_samples"] == 4 * 3
    assert len(fill(ReplayConfig(fraction=None, per_task=80), seed=0, n=50).buffer) == 200


def test_reservoir_never_exceeds_its_capacity_and_samples_the_whole_stream():
    config = ReplayConfig(selection="reservoir", capacity=40)
    a = fill(config, seed=3, tasks=5, n=60)
    assert len(a.buffer) == 40 and a.costs()["stored_samples"] == 40
    assert a.seen == 300
    by_task = a.costs()["stored_by_task"]
    assert len(by_task) >= 4  # not just the last task (algorithm R keeps old tasks too)
    assert ids(a) == ids(fill(config, seed=3, tasks=5, n=60))
    assert ids(a) != ids(fill(config, seed=4, tasks=5, n=60))
    small = fill(config, seed=0, tasks=1, n=10)
    assert len(small.buffer) == 10  # fills up before replacing


def test_mixing_ratio_and_whole_buffer():
    method = fill(ReplayConfig(fraction=None, per_task=5, mix_ratio=None), seed=0, tasks=2)
    new = task_samples("t3", 20)
    assert method.replayed(len(new), seed=0, stage=3) == method.buffer
    method.config.mix_ratio = 0.25
    mixed = method.replayed(20, seed=0, stage=3)
    assert len(mixed) == 5 and set(s.id for s in mixed) <= set(ids(method))
    assert mixed == method.replayed(20, seed=0, stage=3)
    method.config.mix_ratio = 2.0  # more than the buffer holds: cycled through it
    assert len(method.replayed(20, seed=0, stage=3)) == 40


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="fraction"):
        Replay(ReplayConfig(fraction=1.5))
    with pytest.raises(UsageError, match="mix_ratio"):
        Replay(ReplayConfig(mix_ratio=-1))


def test_training_data_holds_the_buffer_and_only_new_samples_enter_it(tmp_path):
    from method_helpers import tiny_context, train_stage

    method = Replay(ReplayConfig(fraction=0.5))
    ctx = tiny_context(tmp_path, method)
    train_stage(ctx, 1)
    first = list(method.buffer)
    assert len(first) == 4 and all(s.task == "colour" for s in first)
    ctx.stage = 2
    mixed = method.training_samples(ctx, ctx.tasks[1], ctx.benchmark.train_samples("place"))
    assert len(mixed) == 8 + 4 and mixed[8:] == first
    method.after_task(ctx, ctx.tasks[1], mixed)
    assert [s.task for s in method.buffer].count("place") == 4 and len(method.buffer) == 8


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_matrix(tmp_path):
    results = check_resume(tmp_path, Replay, {"fraction": 0.25})
    stored = [row["stored_samples"] for row in results.stages_table()]
    # a quarter of each task's 8 training items (16 for ScienceQA and OCR-VQA, 24 for
    # Grounding), kept from every task seen so far
    assert stored == [0, 4, 6, 8, 10, 12, 18, 20, 24]
