from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from method_helpers import toy_run

from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.harness.results import read_table
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin, SynthCoinConfig
from cvit_bench.plugins.methods.mrlora.method import MRLoRA, MRLoRAConfig
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
from cvit_bench.testing.toy import ToyBenchmark, make_context

ROUTER = {"router_rank": 8, "router_alpha": 16, "router_lr": 1e-2, "router_max_steps": 30}


def setup_run(tmp_path, bench=None, train=None, pretrain_steps=0, **options):
    bench = bench or ToyBenchmark(n_train=16, n_eval=8)
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=pretrain_steps))
    config = MRLoRAConfig(**{"rank": 4, "alpha": 8, "replay_per_task": 8, **ROUTER, **options})
    method = MRLoRA(config)
    base = {"max_steps": 3, "batch_size": 8, "lr": 1e-2}
    ctx = make_context(tmp_path, bench, model, method, {"train": {**base, **(train or {})}})
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    return ctx


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def train_tasks(ctx, n_tasks):
    """The protocol's training part for the first ``n_tasks`` tasks."""
    engine = ctx.model.create_engine(ctx)
    for stage, task in enumerate(ctx.tasks[:n_tasks], start=1):
        ctx.stage = stage
        ctx.method.before_task(ctx, task)
        samples = list(ctx.benchmark.train_samples(task.name))
        engine.train(ctx, task, samples)
        ctx.method.after_task(ctx, task, samples)


def test_experts_train_alone_and_the_router_phase_trains_only_the_router(tmp_path):
    ctx = setup_run(tmp_path, router_max_steps=4)
    method, model = ctx.method, ctx.model.model
    first, second = ctx.tasks
    train_tasks(ctx, 1)
    assert method.router_phases == 0  # one expert: nothing to route yet
    ctx.stage = 2
    method.before_task(ctx, second)
    before = snapshot(model)
    samples = list(ctx.benchmark.train_samples(second.name))
    ctx.model.create_engine(ctx).train(ctx, second, samples)
    expert_1 = {n for n in before if n.endswith((".lora_A.1", ".lora_B.1"))}
    assert expert_1 and changed(model, before) == expert_1
    before = snapshot(model)
    method.after_task(ctx, second, samples)  # the router phase
    router = {n for n in before if n.endswith(("router_A", "router_B"))}
    assert router and changed(model, before) == router
    costs = method.costs()
    assert costs["stored_samples"] == 16 and method.router_phases == 1
    assert costs["router_steps"] == 4 and costs["router_train_s"] > 0
    assert {s.task for s in method.replay} == {"colour", "place"}


def test_routing_in_a_batch_equals_one_at_a_time(tmp_path):
    ctx = setup_run(tmp_path)
    method = ctx.method
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in method.layers.values():
            for param in list(layer.lora_A) + list(layer.lora_B) + [layer.router_B]:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    method.n_learned = 2
    pairs = zip(*(ctx.benchmark.eval_samples(t.name) for t in ctx.tasks))
    mixed = [s for pair in pairs for s in pair]
    # the router's choice for a sample does not depend on the rest of its batch
    assert method.route(ctx, mixed) == [method.route(ctx, [s])[0] for s in mixed]
    # per-sample experts in one generated batch: each sample to its own task's expert
    names = [t.name for t in ctx.tasks]
    method.route = lambda ctx, samples: [names.index(s.task) for s in samples]

    def predict(batch_size):
        config = dataclasses.replace(
            ctx.config, eval=dataclasses.replace(ctx.config.eval, batch_size=batch_size)
        )
        run_ctx = dataclasses.replace(ctx, config=config)
        engine = ctx.model.create_engine(run_ctx)
        return [p.text for p in engine.predict(run_ctx, ctx.tasks[0], mixed)]

    batched = predict(8)
    assert batched == predict(1)
    # the chosen expert alone answers: the other expert gives other answers
    method.route = lambda ctx, samples: [1 - names.index(s.task) for s in samples]
    assert predict(8) != batched


@pytest.mark.slow
def test_router_picks_the_right_expert_on_held_out_synth_coin(tmp_path):
    bench = SynthCoin(SynthCoinConfig(train_per_task=24, eval_per_task=12))
    # a random base cannot be taught by LoRA alone (its frozen output layer caps every
    # token's probability), so the router starts from the caption-pretrained tiny model
    ctx = setup_run(
        tmp_path,
        bench=bench,
        pretrain_steps=400,
        describe_experts=False,
        router_rank=16,
        router_alpha=32,
        router_max_steps=150,
        router_lr=2e-3,
    )
    method = ctx.method
    n = 4
    tasks = ctx.tasks[:n]
    for i, task in enumerate(tasks):
        method.current = i
        method.replay += method.choose_replay(ctx, list(bench.train_samples(task.name)))
    method.n_learned = n
    ctx.stage = n
    method.train_router(ctx, tasks[-1])
    held_out = [s for t in tasks for s in bench.eval_samples(t.name)]
    names = [t.name for t in tasks]
    choice = method.route(ctx, held_out)
    accuracy = sum(names[k] == s.task for k, s in zip(choice, held_out)) / len(held_out)
    assert accuracy >= 0.6  # chance is 0.25 (measured: 0.73)


def _toy_run(tmp_path, name, stop_after=None):
    return toy_run(
        MRLoRA, tmp_path, name, {"rank": 4, "alpha": 8, "replay_per_task": 8, **ROUTER}, stop_after
    )


@pytest.mark.slow
def test_stop_and_resume_gives_the_same_matrix(tmp_path):
    full = _toy_run(tmp_path, "full")
    with pytest.raises(KeyboardInterrupt):
        _toy_run(tmp_path, "resumed", stop_after=1)
    resumed = _toy_run(tmp_path, "resumed")
    assert resumed.matrix() == full.matrix()
    table, _ = read_table(tmp_path / "resumed" / "stages.arrow", "stages")
    rows = {row["stage"]: row for row in table.to_pylist()}
    assert rows[2]["stored_samples"] == 16
    assert json.loads(rows[2]["method_costs"])["router_phases"] == 1


def test_registered_by_entry_point():
    assert get_plugin_manager().registry("methods").get("mrlora").load() is MRLoRA
