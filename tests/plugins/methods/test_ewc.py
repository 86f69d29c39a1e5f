from __future__ import annotations

import pytest
import torch
from method_helpers import check_resume, tiny_context, train_stage

from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.ewc.method import EWC, EWCConfig


def lora_params(ctx):
    return lora_common.named_trainable(ctx.model.model)


def test_penalty_is_zero_at_the_anchor_and_grows_quadratically_as_weights_move(tmp_path):
    method = EWC(EWCConfig(ewc_lambda=10.0, fisher_samples=4))
    ctx = tiny_context(tmp_path, method)
    train_stage(ctx, 1)
    model = ctx.model.model
    assert len(method.penalties) == 1
    fisher, anchor = method.penalties[0]
    assert fisher.keys() == lora_params(ctx).keys()
    assert all(bool((f >= 0).all()) for f in fisher.values())
    assert sum(float(f.sum()) for f in fisher.values()) > 0
    assert float(method.penalty(model).detach()) == 0.0
    params = lora_params(ctx)
    values = []
    for step in (1e-3, 2e-3, 4e-3):
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(anchor[name] + step)
        values.append(float(method.penalty(model).detach()))
        by_hand = 0.5 * 10.0 * sum(float((f * step**2).sum()) for f in fisher.values())
        assert values[-1] == pytest.approx(by_hand, rel=1e-4)
    assert 0 < values[0] < values[1] < values[2]
    assert values[1] / values[0] == pytest.approx(4.0, rel=1e-3)


def test_fisher_is_the_mean_squared_per_sample_gradient(tmp_path):
    method = EWC(EWCConfig(fisher_samples=None))
    ctx = tiny_context(tmp_path, method, n_train=3)
    train_stage(ctx, 1)
    ctx.stage = 1
    samples = list(ctx.benchmark.train_samples("colour"))
    fisher = method.fisher(ctx, samples)
    model, adapter = ctx.model.model, ctx.model
    params = lora_params(ctx)
    squares = {k: torch.zeros_like(p) for k, p in params.items()}
    for sample in samples:
        model.zero_grad()
        out = adapter.forward(model, adapter.collate_train([sample], 2048), "cpu", torch.float32)
        out.loss.backward()
        for k, p in params.items():
            squares[k] += p.grad.detach() ** 2
    for k in params:
        torch.testing.assert_close(fisher[k], squares[k] / 3, rtol=1e-4, atol=1e-12)


def test_online_ewc_keeps_one_decayed_fisher_and_the_latest_anchor(tmp_path):
    method = EWC(EWCConfig(online=True, gamma=0.5, fisher_samples=4))
    ctx = tiny_context(tmp_path, method)
    train_stage(ctx, 1)
    first = {k: v.clone() for k, v in method.penalties[0][0].items()}
    train_stage(ctx, 2)
    assert len(method.penalties) == 1
    fisher, anchor = method.penalties[0]
    ctx.stage = 2
    new = method.fisher(ctx, ctx.benchmark.train_samples("place"))
    for k in fisher:
        torch.testing.assert_close(fisher[k], 0.5 * first[k] + new[k], rtol=1e-4, atol=1e-12)
    now = lora_common.cpu_copy(lora_params(ctx))
    assert all(torch.equal(anchor[k], now[k]) for k in anchor)


def test_training_loss_adds_the_penalty_whose_gradient_pulls_towards_the_anchor(tmp_path):
    method = EWC(EWCConfig(ewc_lambda=1e4, fisher_samples=8))
    ctx = tiny_context(tmp_path, method)
    model, adapter = ctx.model.model, ctx.model
    batch = adapter.collate_train(list(ctx.benchmark.train_samples("place"))[:4], 2048)
    out = adapter.forward(model, batch, "cpu", torch.float32)
    assert method.training_loss(ctx, batch, out) is out.loss  # nothing to keep before task 1
    train_stage(ctx, 1)
    fisher, anchor = method.penalties[0]
    params = lora_params(ctx)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(anchor[name] + 0.01)
    grads = []
    for with_penalty in (False, True):
        model.zero_grad()
        out = adapter.forward(model, batch, "cpu", torch.float32)
        loss = method.training_loss(ctx, batch, out) if with_penalty else out.loss
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in params.items()})
    for name in params:  # d/dtheta lambda/2 F (theta - theta*)^2 = lambda F (theta - theta*)
        torch.testing.assert_close(
            grads[1][name] - grads[0][name], 1e4 * fisher[name] * 0.01, rtol=1e-3, atol=1e-7
        )


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_matrix(tmp_path):
    results = check_resume(tmp_path, EWC, {"fisher_samples": 4, "online": True})
    assert results.complete
