"""Sketches of the published methods' shapes, run through the real runner on the fakes.

Each sketch is the smallest method with that shape: it shows the Method protocol admits it
(routing at inference, a router phase, merging after a task, parameters added per task, changed
training data) and that the runner's checkpointing resumes it.
"""

from __future__ import annotations

import collections
import random

from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.runner import Runner
from cvit_bench.harness.types import MethodRequirements
from cvit_bench.testing import (
    FakeBenchmark,
    FakeModel,
    FakeParameter,
    FakeSequential,
    check_method,
    plugin_manager,
)


def run(tmp_path, cls, **config):
    mgr = plugin_manager(
        methods={cls.name: cls},
        benchmarks={"fake-bench": FakeBenchmark},
        models={"fake-model": FakeModel},
    )
    cfg = RunConfig(method=cls.name, bench="fake-bench", model="fake-model", **config)
    return Runner(cfg, tmp_path / cls.name, manager=mgr, progress=False).run()


class ContextMemory:
    """Per-sample routing support: swaps the fake network's answers for the chosen expert's."""

    def __init__(self, network, answers):
        self.network, self.answers = network, answers

    def __enter__(self):
        self.network.override = self.answers

    def __exit__(self, *exc):
        self.network.override = None


class HiDeShape(FakeSequential):
    """Per-task experts, an anchor per task, and routing per sample at inference."""

    name = "sketch-hide"
    requirements = MethodRequirements(
        per_task_parameters=True, inference="routes each sample to a task expert"
    )

    def setup(self, ctx):
        super().setup(ctx)
        self.experts, self.anchors = [], []

    def after_task(self, ctx, task, samples):
        self.experts.append(dict(self.network.memory))
        self.anchors.append(collections.Counter(s.prompt.split()[0] for s in samples))

    def inference(self, ctx, batch):
        answers = {}
        for sample in batch["samples"]:  # different samples may route to different experts
            key = sample.prompt.split()[0]
            scores = [anchor[key] for anchor in self.anchors]
            if scores and max(scores) > 0:
                answers[sample.prompt] = self.experts[scores.index(max(scores))].get(
                    sample.prompt, ""
                )
        return ContextMemory(self.network, answers)

    def state_dict(self):
        return {**super().state_dict(), "experts": self.experts, "anchors": self.anchors}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.experts, self.anchors = state["experts"], state["anchors"]


class MRLoRAShape(HiDeShape):
    """Experts trained alone, then a router trained in a separate phase on a few stored samples."""

    name = "sketch-mrlora"
    requirements = MethodRequirements(
        stores_samples=True, per_task_parameters=True, inference="router picks an expert per sample"
    )

    def setup(self, ctx):
        super().setup(ctx)
        self.replay, self.router = [], {}

    def before_task(self, ctx, task):
        self.network.memory.clear()  # each expert starts from the base

    def after_task(self, ctx, task, samples):
        self.experts.append(dict(self.network.memory))
        self.replay.extend(random.Random(ctx.stage).sample(list(samples), 2))
        # the router phase: learn prompt-prefix -> expert from the stored samples only
        self.router = {s.prompt.split()[0]: self._expert_of(s) for s in self.replay}

    def _expert_of(self, sample):
        return next(i for i, e in enumerate(self.experts) if sample.prompt in e)

    def inference(self, ctx, batch):
        answers = {}
        for sample in batch["samples"]:
            expert = self.router.get(sample.prompt.split()[0])
            if expert is not None:
                answers[sample.prompt] = self.experts[expert].get(sample.prompt, "")
        return ContextMemory(self.network, answers)

    def costs(self):
        return {"stored_samples": len(self.replay), "router_phases": len(self.experts)}

    def state_dict(self):
        return {**super().state_dict(), "replay": self.replay, "router": self.router}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.replay, self.router = state["replay"], state["router"]


class SEFEShape(FakeSequential):
    """Merges the task's adapter into the base after each task and starts a fresh one."""

    name = "sketch-sefe"

    def setup(self, ctx):
        super().setup(ctx)
        self.base = self.network.params[0]
        self.adapter = FakeParameter("adapter", 0.0)
        self.network.params.append(self.adapter)

    def after_task(self, ctx, task, samples):
        self.adapter.value = float(len(samples))
        self.base.value += self.adapter.value  # merge
        self.adapter.value = 0.0  # fresh adapter for the next task

    def state_dict(self):
        return {**super().state_dict(), "base": self.base.value}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.base.value = state["base"]


class OLoRAShape(FakeSequential):
    """A new adapter per task; past adapters frozen; the engine sees the new parameters."""

    name = "sketch-olora"
    requirements = MethodRequirements(per_task_parameters=True)

    def before_task(self, ctx, task):
        for p in self.network.params:
            p.requires_grad = False
        self.network.params.append(FakeParameter(f"adapter-{task.name}"))

    def state_dict(self):
        return {**super().state_dict(), "adapters": [p.name for p in self.network.params]}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.network.params = [FakeParameter(n, requires_grad=False) for n in state["adapters"]]


class ReplayShape(FakeSequential):
    """Stores past samples and mixes them into later tasks' training data."""

    name = "sketch-replay"
    requirements = MethodRequirements(stores_samples=True)

    def setup(self, ctx):
        super().setup(ctx)
        self.buffer = []

    def training_samples(self, ctx, task, samples):
        return list(samples) + self.buffer

    def after_task(self, ctx, task, samples):
        self.buffer.extend(s for s in samples if s.task == task.name)

    def costs(self):
        return {"stored_samples": len(self.buffer)}

    def state_dict(self):
        return {**super().state_dict(), "buffer": self.buffer}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.buffer = state["buffer"]


def test_routing_by_task_anchor_prevents_forgetting(tmp_path):
    seq = run(tmp_path, FakeSequential).metrics()
    hide = run(tmp_path, HiDeShape).metrics()
    assert seq["BWT"] < -50
    assert hide["MFN"] == 100.0 and hide["BWT"] == 0.0


def test_router_phase_and_stored_samples_are_recorded(tmp_path):
    results = run(tmp_path, MRLoRAShape)
    assert results.metrics()["MFN"] == 100.0
    stages = results.stages_table()
    assert [s["stored_samples"] for s in stages] == [0, 2, 4, 6, 8]
    assert '"router_phases": 4' in stages[-1]["method_costs"]


def test_merge_after_task_changes_the_base(tmp_path):
    results = run(tmp_path, SEFEShape)
    assert results.complete


def test_parameters_added_per_task_reach_the_engine(tmp_path):
    results = run(tmp_path, OLoRAShape)
    # only the current task's adapter trains; the others exist but are frozen
    assert [s["trainable_params"] for s in results.stages_table()[1:]] == [1, 1, 1, 1]


def test_replay_changes_training_data_and_records_what_it_stores(tmp_path):
    results = run(tmp_path, ReplayShape)
    stages = results.stages_table()[1:]
    assert [s["train_samples"] for s in stages] == [12, 24, 36, 48]
    assert [s["stored_samples"] for s in stages] == [12, 24, 36, 48]
    # rehearsed samples were trained on: the model still knows part of task 1 at the end,
    # where plain sequential training on the same fake model knows none of it
    seq = run(tmp_path, FakeSequential)
    assert results.score(4, "task1") > seq.score(4, "task1") == 0.0


def test_every_sketch_conforms_and_resumes_to_the_same_matrix():
    for cls in (HiDeShape, MRLoRAShape, SEFEShape, OLoRAShape, ReplayShape, FakeSequential):
        check_method(cls)
