from __future__ import annotations

import pytest
import torch
from method_helpers import check_resume, tiny_context, train_stage

from cvit_bench.harness.errors import UsageError
from cvit_bench.plugins.methods.moelora.layer import MoELoRALinear
from cvit_bench.plugins.methods.moelora.method import MoELoRA, MoELoRAConfig


def test_layer_is_the_router_weighted_sum_of_its_experts():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    layer = MoELoRALinear(base, rank=6, alpha=12.0, experts=3, dropout=0.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 4, 6)
    gates = layer.router_weights(x)
    assert gates.shape == (2, 4, 3)
    expected = base(x)
    for e in range(3):
        a = layer.lora_A[2 * e : 2 * e + 2]
        b = layer.lora_B[:, 2 * e : 2 * e + 2]
        expected = expected + 2.0 * gates[..., e : e + 1] * (x @ a.t() @ b.t())
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_router_weights_sum_to_one_for_every_token_and_differ_between_tokens(tmp_path):
    method = MoELoRA(MoELoRAConfig(rank=6, alpha=12, experts=3))
    ctx = tiny_context(tmp_path, method)
    train_stage(ctx, 1)
    seen = []
    hooks = [
        layer.register_forward_hook(lambda m, args, out: seen.append(m.router_weights(args[0])))
        for layer in method.layers.values()
    ]
    model, adapter = ctx.model.model, ctx.model
    batch = adapter.collate_train(list(ctx.benchmark.train_samples("colour"))[:3], 2048)
    with torch.no_grad():
        adapter.forward(model, batch, "cpu", torch.float32)
    for h in hooks:
        h.remove()
    assert len(seen) == len(method.layers) == 14  # 2 layers x 7 projections
    for gates in seen:
        assert gates.shape[:2] == batch["input_ids"].shape and gates.shape[-1] == 3
        assert bool((gates >= 0).all())
        torch.testing.assert_close(gates.sum(-1), torch.ones(gates.shape[:2]))
        assert float(gates.std(dim=(0, 1)).max()) > 0  # routed per token, not fixed


def test_every_expert_and_router_trains_on_every_task(tmp_path):
    method = MoELoRA(MoELoRAConfig(rank=6, alpha=12, experts=3))
    # (the router's gradient is zero while B is: it moves from the third step on)
    ctx = tiny_context(tmp_path, method, train={"max_steps": 4})
    layer = next(iter(method.layers.values()))
    states = [(layer.lora_B.detach().clone(), layer.router.weight.detach().clone())]
    for stage in (1, 2):
        stats = train_stage(ctx, stage)
        assert stats["trainable_params"] == method.costs()["extra_params"]
        states.append((layer.lora_B.detach().clone(), layer.router.weight.detach().clone()))
    for before, after in zip(states, states[1:]):
        for e in range(3):  # each expert's B moved on each task
            assert not torch.equal(before[0][:, 2 * e : 2 * e + 2], after[0][:, 2 * e : 2 * e + 2])
        assert not torch.equal(before[1], after[1])


def test_rank_must_split_evenly():
    with pytest.raises(UsageError, match="multiple of experts"):
        MoELoRA(MoELoRAConfig(rank=10, experts=3))


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_matrix(tmp_path):
    check_resume(tmp_path, MoELoRA, {"rank": 6, "alpha": 12, "experts": 3})
