from __future__ import annotations

import pytest
import torch
from method_helpers import check_resume, tiny_context, train_stage

from cvit_bench.plugins.methods.olora.method import OLoRA, OLoRAConfig


def adapters(method, index):
    return {
        name: (layer.lora_A[index].detach().clone(), layer.lora_B[index].detach().clone())
        for name, layer in method.layers.items()
    }


def test_past_adapters_stay_frozen_while_a_new_task_trains(tmp_path):
    method = OLoRA(OLoRAConfig(rank=4, alpha=8))
    ctx = tiny_context(tmp_path, method)
    stats = train_stage(ctx, 1)
    per_adapter = sum(a.numel() + b.numel() for a, b in adapters(method, 0).values())
    assert stats["trainable_params"] == per_adapter
    first = adapters(method, 0)
    assert any(float(b.abs().sum()) > 0 for _, b in first.values())  # task 1 trained B
    model, adapter = ctx.model.model, ctx.model
    batch = adapter.collate_train(list(ctx.benchmark.train_samples("place"))[:4], 2048)
    with torch.no_grad():
        before = adapter.forward(model, batch, "cpu", torch.float32).logits
    ctx.stage = 2
    method.before_task(ctx, ctx.tasks[1])
    with torch.no_grad():  # a new adapter starts with B = 0: the model is unchanged
        torch.testing.assert_close(
            adapter.forward(model, batch, "cpu", torch.float32).logits, before
        )
    engine = ctx.extras["engine"]
    stats = engine.train(ctx, ctx.tasks[1], list(ctx.benchmark.train_samples("place")))
    assert stats["trainable_params"] == per_adapter  # only the new adapter trains
    assert method.tasks == 2
    for name, (a, b) in adapters(method, 0).items():
        assert torch.equal(a, first[name][0]) and torch.equal(b, first[name][1]), name
    assert any(float(b.abs().sum()) > 0 for _, b in adapters(method, 1).values())
    assert method.costs()["extra_params"] == 2 * per_adapter


def test_penalty_matches_a_hand_computation(tmp_path):
    method = OLoRA(OLoRAConfig(rank=4, alpha=8, orth_lambda=0.05))
    ctx = tiny_context(tmp_path, method)
    train_stage(ctx, 1)
    ctx.stage = 2
    method.before_task(ctx, ctx.tasks[1])
    by_hand = 0.0
    for layer in method.layers.values():
        old, new = layer.lora_A[0].detach(), layer.lora_A[1].detach()
        for i in range(new.shape[0]):
            for j in range(old.shape[0]):
                by_hand += abs(float((new[i] * old[j]).sum()))
    assert float(method.penalty()) == pytest.approx(by_hand, rel=1e-5)
    model, adapter = ctx.model.model, ctx.model
    batch = adapter.collate_train(list(ctx.benchmark.train_samples("place"))[:4], 2048)
    out = adapter.forward(model, batch, "cpu", torch.float32)
    total = method.training_loss(ctx, batch, out)
    assert float(total - out.loss) == pytest.approx(0.05 * by_hand, rel=1e-5)
    total.backward()  # the penalty's gradient reaches only the new A
    assert all(layer.lora_A[0].grad is None for layer in method.layers.values())
    assert all(layer.lora_A[1].grad is not None for layer in method.layers.values())


def test_a_third_adapter_is_penalised_against_both_earlier_ones(tmp_path):
    method = OLoRA(OLoRAConfig(rank=2, alpha=4))
    tiny_context(tmp_path, method)
    for seed in (0, 1, 2):
        method.add_task(seed)
    layer = next(iter(method.layers.values()))
    old = torch.cat([layer.lora_A[0], layer.lora_A[1]]).detach()
    expected = (layer.lora_A[2].detach() @ old.t()).abs().sum()
    assert float(layer.orthogonality()) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_matrix(tmp_path):
    results = check_resume(tmp_path, OLoRA, {"rank": 4, "alpha": 8})
    assert '"adapters": 8' in results.stages_table()[-1]["method_costs"]
