from __future__ import annotations

import dataclasses

import pytest
import torch
from method_helpers import toy_run

from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.harness.results import RunResults
from cvit_bench.plugins.methods import expert_lora
from cvit_bench.plugins.methods.hide import cka
from cvit_bench.plugins.methods.hide.features import expert_weights, similarities
from cvit_bench.plugins.methods.hide.method import HiDe, HiDeConfig
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
from cvit_bench.testing.toy import ToyBenchmark, make_context


def setup_run(tmp_path, config=None, train=None):
    bench = ToyBenchmark(n_train=16, n_eval=8)
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    method = HiDe(config or HiDeConfig(rank=8, alpha=16))
    ctx = make_context(tmp_path, bench, model, method, {"train": train or {}})
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    return ctx


def randomise_experts(layers, seed, scale=0.2):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers.values():
            for param in list(layer.lora_A) + list(layer.lora_B):
                param.copy_(torch.randn(param.shape, generator=gen) * scale)


def learn_both_tasks(ctx):
    """Stand in for two trained stages: random experts, anchors from each task's data."""
    method = ctx.method
    randomise_experts(method.layers, 0)
    for i, task in enumerate(ctx.tasks):
        method.current = i
        method.after_task(ctx, task, ctx.benchmark.train_samples(task.name))
    assert method.n_learned == 2


def test_only_the_current_expert_trains(tmp_path):
    ctx = setup_run(tmp_path, train={"max_steps": 3, "batch_size": 4, "lr": 1e-2})
    method, model = ctx.method, ctx.model.model
    second = ctx.tasks[1]
    ctx.stage = 2
    method.before_task(ctx, second)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ctx.model.create_engine(ctx).train(ctx, second, ctx.benchmark.train_samples(second.name))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    expert_1 = {n for n in before if n.endswith((".lora_A.1", ".lora_B.1"))}
    assert expert_1 and changed == expert_1
    # every adapted layer of the language model holds one expert per task, rank split evenly
    layer = next(iter(method.layers.values()))
    assert layer.n_experts == 2 and layer.rank == 4 and layer.scaling == 16 / 8
    assert all("language_model" in n for n in method.layers)


def test_lower_layers_use_the_task_general_fusion(tmp_path):
    ctx = setup_run(tmp_path)
    method = ctx.method
    randomise_experts(method.layers, 1)
    method.n_learned = 2
    method._set_eval_modes()
    top = expert_lora.num_layers(method.layers) - 1
    name, layer = next(
        (n, m) for n, m in method.layers.items() if expert_lora.layer_index(n) != top
    )
    assert layer in method.general and layer not in method.specific
    x = torch.randn(3, 5, layer.base.in_features)
    a = layer.lora_A[0] + layer.lora_A[1]
    b = layer.lora_B[0] + layer.lora_B[1]
    expected = layer.base(x) + layer.scaling * (x @ a.T @ b.T)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)
        # the fusion sums A and B separately: not the sum of the experts' own updates
        separate = layer.base(x) + layer.scaling * (layer.delta(x, 0) + layer.delta(x, 1))
        assert not torch.allclose(layer(x), separate, atol=1e-4)


def test_top_layer_mixes_experts_by_anchor_similarity(tmp_path):
    ctx = setup_run(tmp_path)
    method = ctx.method
    learn_both_tasks(ctx)
    top = expert_lora.num_layers(method.layers) - 1
    assert {
        expert_lora.layer_index(n) for n, m in method.layers.items() if m in method.specific
    } == {top}
    image_anchors = torch.stack(method.anchors.image)
    text_anchors = torch.stack(method.anchors.text)
    # a sample whose features are task k's anchors routes to expert k, with the published
    # weights softmax(mean cosine / 0.1)
    for k in range(2):
        sim = similarities(
            image_anchors[k : k + 1], text_anchors[k : k + 1], image_anchors, text_anchors
        )
        weights = expert_weights(sim, 0.1)[0]
        assert int(weights.argmax()) == k
        cos = torch.nn.functional.cosine_similarity
        by_hand = torch.stack(
            [
                (
                    cos(image_anchors[k], image_anchors[j], 0)
                    + cos(text_anchors[k], text_anchors[j], 0)
                )
                / 2
                for j in range(2)
            ]
        )
        torch.testing.assert_close(weights, torch.softmax(by_hand / 0.1, 0))
    # held-out samples of each task get most weight on their own task's expert
    for k, task in enumerate(ctx.tasks):
        weights = method.routing_weights(list(ctx.benchmark.eval_samples(task.name)))
        assert (weights.argmax(1) == k).all()
        torch.testing.assert_close(weights.sum(1), torch.ones(len(weights)))
    # and the top layer computes base + s * sum_k w_k B_k A_k x per sample
    layer = method.specific[0]
    weights = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.0, 1.0]])
    x = torch.randn(3, 4, layer.base.in_features)
    with torch.no_grad(), expert_lora.modes([([layer], "mix", {"weights": weights})]):
        out = layer(x)
        expected = layer.base(x) + layer.scaling * sum(
            weights[:, k, None, None] * layer.delta(x, k) for k in range(2)
        )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_batched_routing_equals_one_at_a_time(tmp_path):
    ctx = setup_run(tmp_path)
    learn_both_tasks(ctx)
    mixed = [
        s for pair in zip(*(ctx.benchmark.eval_samples(t.name) for t in ctx.tasks)) for s in pair
    ]
    weights = ctx.method.routing_weights(mixed[:8])
    assert len(set(weights.argmax(1).tolist())) == 2  # one batch, both experts

    def predict(batch_size):
        config = dataclasses.replace(
            ctx.config, eval=dataclasses.replace(ctx.config.eval, batch_size=batch_size)
        )
        run_ctx = dataclasses.replace(ctx, config=config)
        engine = ctx.model.create_engine(run_ctx)
        return [p.text for p in engine.predict(run_ctx, ctx.tasks[0], mixed)]

    batched = predict(8)
    assert batched == predict(1)
    # routing matters: without the experts the answers differ
    ctx.method.n_learned = 0
    ctx.method._set_eval_modes()
    engine = ctx.model.create_engine(ctx)
    assert [p.text for p in engine.predict(ctx, ctx.tasks[0], mixed)] != batched


def test_cka_finds_where_experts_disagree(tmp_path):
    ctx = setup_run(tmp_path)
    method = ctx.method
    x = torch.randn(50, 6)
    assert cka.linear_cka(x, x) == pytest.approx(1.0)
    assert cka.linear_cka(x, 3 * x + 1) == pytest.approx(1.0)
    assert cka.linear_cka(x, torch.randn(50, 6)) < 0.6
    # give the experts different updates only in the top layer: lower layers agree exactly
    randomise_experts(method.layers, 2, scale=0.0)
    top = expert_lora.num_layers(method.layers) - 1
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in method.specific:
            for param in list(layer.lora_A) + list(layer.lora_B):
                param.copy_(torch.randn(param.shape, generator=gen))
    sims = cka.layer_similarity(
        ctx.model, method.layers, list(ctx.benchmark.eval_samples("colour")), [0, 1]
    )
    assert len(sims) == top + 1
    assert all(s == pytest.approx(1.0) for s in sims[:top]) and sims[top] < 0.99
    assert cka.lowest_layers(sims, 1) == [top]


def _toy_run(tmp_path, name, stop_after=None):
    return toy_run(HiDe, tmp_path, name, {"rank": 8, "alpha": 16}, stop_after)


@pytest.mark.slow
def test_stop_and_resume_gives_the_same_matrix(tmp_path):
    full = _toy_run(tmp_path, "full")
    with pytest.raises(KeyboardInterrupt):
        _toy_run(tmp_path, "resumed", stop_after=1)
    assert RunResults(tmp_path / "resumed").info["finished_stages"] == [0, 1]
    resumed = _toy_run(tmp_path, "resumed")
    assert resumed.matrix() == full.matrix()
    assert (tmp_path / "resumed" / "checkpoints" / "stage_2" / "experts.safetensors").exists()


def test_registered_by_entry_point():
    assert get_plugin_manager().registry("methods").get("hide").load() is HiDe


def test_anchor_features_from_a_local_clip_directory(tmp_path):
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    from cvit_bench.harness.errors import DataError

    ctx = setup_run(tmp_path)
    tok = ctx.model.tokenizer
    text = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    clip.save_pretrained(tmp_path / "clip")
    tok.save_pretrained(tmp_path / "clip")
    config = HiDeConfig(rank=4, alpha=8, clip_path=str(tmp_path / "clip"))
    fresh = setup_run(tmp_path / "b", config=config)
    method = fresh.method
    assert method.features.kind == "clip"
    for i, task in enumerate(fresh.tasks):
        method.current = i
        method.after_task(fresh, task, fresh.benchmark.train_samples(task.name))
    # CLIP's projected image and text embeddings are the anchors
    assert method.anchors.image[0].shape == (16,) and method.anchors.text[0].shape == (16,)
    samples = [s for t in fresh.tasks for s in fresh.benchmark.eval_samples(t.name)]
    assert method.routing_weights(samples).shape == (len(samples), 2)
    with pytest.raises(DataError, match="no CLIP model here"):
        setup_run(tmp_path / "c", config=HiDeConfig(clip_path=str(tmp_path / "nowhere")))
