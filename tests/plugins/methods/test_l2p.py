from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from method_helpers import check_resume, tiny_context, train_stage

from cvit_bench.plugins.methods.l2p.method import L2P, L2PConfig


def setup(tmp_path, **config):
    method = L2P(L2PConfig(**config))
    ctx = tiny_context(tmp_path, method)
    return method, ctx, ctx.model.model, ctx.model


def forward(adapter, model, samples):
    batch = adapter.collate_train(samples, 2048)
    with torch.no_grad():
        return batch, adapter.forward(model, batch, "cpu", torch.float32)


def test_prompts_are_chosen_by_key_similarity_to_the_frozen_image_feature(tmp_path):
    method, ctx, model, adapter = setup(tmp_path, pool_size=6, top_k=2, prompt_length=3)
    samples = list(ctx.benchmark.eval_samples("colour"))[:4]
    batch, out = forward(adapter, model, samples)
    assert out.logits.shape[:2] == batch["input_ids"].shape  # prompts do not lengthen outputs
    query = method.injector.query(batch["pixel_values"])
    sim = F.normalize(query, dim=-1) @ F.normalize(method.pool.keys.detach(), dim=-1).t()
    expected = sim.topk(2, dim=1).indices
    assert torch.equal(method.injector.selected, expected)
    # a key set to a sample's query is that sample's best match
    with torch.no_grad():
        method.pool.keys[4] = query[1] * 3.0
    forward(adapter, model, samples)
    assert int(method.injector.selected[1, 0]) == 4
    # the query is the frozen tower's: training the prompts leaves it unchanged
    train_stage(ctx, 1)
    torch.testing.assert_close(method.injector.query(batch["pixel_values"]), query)


def test_only_the_chosen_prompts_reach_the_model(tmp_path):
    method, ctx, model, adapter = setup(tmp_path, pool_size=4, top_k=1, prompt_length=2)
    sample = list(ctx.benchmark.eval_samples("colour"))[:1]
    _, out = forward(adapter, model, sample)
    chosen = int(method.injector.selected[0, 0])
    other = (chosen + 1) % 4
    with torch.no_grad():
        method.pool.prompts[other] += 5.0
    _, same = forward(adapter, model, sample)
    torch.testing.assert_close(same.logits, out.logits)
    with torch.no_grad():
        method.pool.prompts[chosen] += 5.0
    _, changed = forward(adapter, model, sample)
    assert (changed.logits - out.logits).abs().max() > 1e-3


def test_cached_generation_equals_greedy_decoding_without_cache(tmp_path):
    method, ctx, model, adapter = setup(tmp_path, pool_size=4, top_k=2, prompt_length=2)
    train_stage(ctx, 1)
    samples = [ctx.benchmark.eval_samples("colour")[0], ctx.benchmark.eval_samples("place")[0]]
    batch = adapter.collate_eval(samples)  # left-padded, different prompt lengths
    with pytest.raises(RuntimeError, match="inference"):
        adapter.generate(model, batch, 4, "cpu", torch.float32)  # prompts would be missing
    with method.inference(ctx, batch):
        texts = adapter.generate(model, batch, 4, "cpu", torch.float32)
    eos = adapter.tokenizer.eos_token_id
    for sample, text in zip(samples, texts):
        ids = adapter.encode_prompt(sample)
        new = []
        for _ in range(4):
            one = adapter.collate_eval([sample])
            one["input_ids"] = torch.tensor([ids + new])
            one["attention_mask"] = torch.ones_like(one["input_ids"])
            with torch.no_grad():
                logits = model(**adapter.model_inputs(one, "cpu", torch.float32)).logits
            token = int(logits[0, -1].argmax())
            if token == eos:
                break
            new.append(token)
        assert text == adapter.tokenizer.decode(new, skip_special_tokens=False).strip()


def test_matching_loss_pulls_the_chosen_keys_and_only_the_pool_trains(tmp_path):
    method, ctx, model, adapter = setup(tmp_path, pool_size=5, top_k=2, match_weight=0.1)
    samples = list(ctx.benchmark.train_samples("colour"))[:3]
    batch = adapter.collate_train(samples, 2048)
    out = adapter.forward(model, batch, "cpu", torch.float32)
    query = method.injector.query(batch["pixel_values"])
    sim = F.normalize(query, dim=-1) @ F.normalize(method.pool.keys.detach(), dim=-1).t()
    by_hand = 0.1 * (1 - sim.topk(2, dim=1).values).sum(1).mean()
    loss = method.training_loss(ctx, batch, out)
    assert float((loss - out.loss).detach()) == pytest.approx(float(by_hand), rel=1e-5)
    loss.backward()
    chosen = set(method.injector.selected.flatten().tolist())
    grads = method.pool.keys.grad.abs().sum(1)
    assert all(float(grads[i]) > 0 for i in chosen)
    assert all(float(grads[i]) == 0 for i in set(range(5)) - chosen)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "l2p" not in n}
    stats = train_stage(ctx, 1)
    assert stats["trainable_params"] == method.costs()["extra_params"]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_matrix(tmp_path):
    check_resume(tmp_path, L2P, {"pool_size": 4, "top_k": 2, "prompt_length": 2})
