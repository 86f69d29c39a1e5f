from __future__ import annotations

import json
import math

import pytest
import torch
from method_helpers import toy_run

from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.harness.results import read_table
from cvit_bench.plugins.methods.sefe.method import (
    SEFE,
    SEFEConfig,
    delta_weight,
    lora_layers,
)
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
from cvit_bench.testing.toy import ToyBenchmark, make_context


def setup_run(tmp_path, config=None):
    bench = ToyBenchmark(n_train=8, n_eval=4)
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    method = SEFE(config or SEFEConfig(rank=4, alpha=8))
    ctx = make_context(tmp_path, bench, model, method)
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    return ctx


def perturb(model, seed, scale=0.05):
    """Stand in for training: random values in every trainable tensor (LoRA B included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=gen) * scale)


def logits(ctx):
    samples = list(ctx.benchmark.eval_samples("colour"))
    batch = ctx.model.collate_train(samples, 512)
    with torch.no_grad():
        return ctx.model.forward(ctx.model.model, batch, "cpu", torch.float32).logits


def test_masks_hold_exactly_the_top_positions_and_grow_as_a_union(tmp_path):
    ctx = setup_run(tmp_path, SEFEConfig(rank=4, alpha=8, keep_ratio=0.02))
    perturb(ctx.model.model, 0)
    deltas = {n: delta_weight(m).detach().clone() for n, m in lora_layers(ctx.model.model).items()}
    ctx.method.update_masks(ctx.model.model)
    assert set(ctx.method.masks) == set(deltas) and len(deltas) == 14
    first = {}
    for name, delta in deltas.items():
        index = ctx.method.masks[name]
        flat = delta.abs().flatten()
        assert index.numel() == math.ceil(0.02 * flat.numel())
        kept = torch.zeros_like(flat, dtype=torch.bool)
        kept[index] = True
        assert flat[kept].min() >= flat[~kept].max()
        first[name] = set(index.tolist())
    # a second task's positions join the first's
    ctx.method.after_task(ctx, ctx.tasks[0], [])
    perturb(ctx.model.model, 1)
    second = {
        n: set(torch.topk(delta_weight(m).detach().abs().flatten(), len(first[n])).indices.tolist())
        for n, m in lora_layers(ctx.model.model).items()
    }
    ctx.method.update_masks(ctx.model.model)
    for name, index in ctx.method.masks.items():
        assert set(index.tolist()) == first[name] | second[name]


def test_penalty_is_zero_while_kept_positions_stay_and_follows_the_formula(tmp_path):
    ctx = setup_run(tmp_path, SEFEConfig(rank=4, alpha=8, keep_ratio=0.05, reg_weight=2.5e3))
    method, model = ctx.method, ctx.model.model
    perturb(model, 2)
    method.after_task(ctx, ctx.tasks[0], [])  # masks from task 1, merged, fresh adapter
    assert float(method.penalty(model).detach()) == 0.0  # a fresh adapter moves nothing
    layers = lora_layers(model)
    # an update that changes the weights everywhere except in the kept columns: no penalty
    with torch.no_grad():
        for name, layer in layers.items():
            a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
            a.normal_()
            b.normal_()
            columns = torch.unique(method.masks[name] % a.shape[1])
            a[:, columns] = 0.0
            assert delta_weight(layer).abs().sum() > 0
    assert float(method.penalty(model).detach()) == 0.0
    # any update: 2.5e3 x the mean over layers of mean |Delta W| at the kept positions
    perturb(model, 3)
    by_hand = torch.stack(
        [
            delta_weight(layer).flatten()[method.masks[name]].abs().mean()
            for name, layer in layers.items()
        ]
    ).mean()
    penalty = method.penalty(model)
    assert float(penalty) > 0
    torch.testing.assert_close(penalty, 2.5e3 * by_hand)
    penalty.backward()  # the penalty trains the adapter
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_merge_keeps_the_outputs_and_records_regLoRA_only_without_asd(tmp_path):
    ctx = setup_run(tmp_path)
    perturb(ctx.model.model, 4)
    before = logits(ctx)
    ctx.method.after_task(ctx, ctx.tasks[0], [])
    assert len(ctx.method.merged) == 1
    assert all(
        float(delta_weight(m).abs().sum()) == 0 for m in lora_layers(ctx.model.model).values()
    )
    torch.testing.assert_close(logits(ctx), before, atol=1e-5, rtol=1e-5)
    costs = ctx.method.costs()
    assert costs["asd"] is False and "RegLoRA only" in costs["notes"][0]
    assert costs["kept_positions"] > 0


def _toy_run(tmp_path, name, stop_after=None):
    return toy_run(SEFE, tmp_path, name, {"rank": 4, "alpha": 8}, stop_after)


@pytest.mark.slow
def test_stop_and_resume_gives_the_same_matrix(tmp_path):
    full = _toy_run(tmp_path, "full")
    with pytest.raises(KeyboardInterrupt):
        _toy_run(tmp_path, "resumed", stop_after=1)
    resumed = _toy_run(tmp_path, "resumed")
    assert resumed.matrix() == full.matrix()
    table, _ = read_table(tmp_path / "resumed" / "stages.arrow", "stages")
    costs = {row["stage"]: json.loads(row["method_costs"]) for row in table.to_pylist()}
    assert costs[2]["merged_adapters"] == 2 and costs[2]["kept_positions"] > 0
    assert "RegLoRA only" in costs[2]["notes"][0]


def test_registered_by_entry_point():
    assert get_plugin_manager().registry("methods").get("sefe").load() is SEFE
