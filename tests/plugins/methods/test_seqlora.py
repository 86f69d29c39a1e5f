from __future__ import annotations

import torch

from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.joint.method import Joint
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA, SeqLoRAConfig
from cvit_bench.plugins.methods.zeroshot.method import ZeroShot
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
from cvit_bench.testing.toy import ToyBenchmark, make_context


def setup_run(tmp_path, method_config=None, train=None):
    bench = ToyBenchmark(n_train=8, n_eval=4)
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    method = SeqLoRA(method_config or SeqLoRAConfig(rank=4, alpha=8))
    ctx = make_context(tmp_path, bench, model, method, {"train": train or {}})
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    return ctx


def perturb(model, seed):
    """Stand in for training: give every trainable tensor (LoRA B included) random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=gen) * 0.05)


def logits(ctx, model=None):
    adapter = ctx.model
    samples = list(ctx.benchmark.eval_samples("colour"))
    batch = adapter.collate_train(samples, 512)
    with torch.no_grad():
        return adapter.forward(model or adapter.model, batch, "cpu", torch.float32).logits


def test_lora_adapts_only_the_language_model(tmp_path):
    ctx = setup_run(tmp_path)
    trainable = [n for n, p in ctx.model.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert targets == set(ctx.model.lora_targets())


def test_saved_adapter_loads_with_plain_peft(tmp_path):
    from peft import PeftModel

    ctx = setup_run(tmp_path, train={"projector_lr": 2e-5})
    perturb(ctx.model.model, 0)
    ctx.stage = 1
    ctx.method.save_checkpoint(ctx, tmp_path / "stage_1")
    adapter_dir = tmp_path / "stage_1" / "adapter"
    assert (adapter_dir / "adapter_config.json").exists()
    assert (adapter_dir / "adapter_model.safetensors").exists()
    expected = logits(ctx)

    fresh = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    fresh_ctx = make_context(tmp_path, ctx.benchmark, fresh)
    fresh.build(fresh_ctx)
    base_logits = logits(fresh_ctx)
    assert not torch.allclose(base_logits, expected)
    loaded = PeftModel.from_pretrained(fresh.model, str(adapter_dir))
    assert torch.equal(logits(fresh_ctx, loaded), expected)


def test_merged_model_equals_base_plus_adapter(tmp_path):
    ctx = setup_run(tmp_path, train={"projector_lr": 2e-5})
    perturb(ctx.model.model, 1)
    expected = logits(ctx)
    merged = lora_common.merge(ctx.model.model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits(ctx, merged), expected, atol=1e-5, rtol=1e-5)


def test_merge_after_task_starts_a_fresh_adapter_and_resumes_exactly(tmp_path):
    config = SeqLoRAConfig(rank=4, alpha=8, merge_after_task=True)
    ctx = setup_run(tmp_path / "a", config)
    task = ctx.tasks[0]
    perturb(ctx.model.model, 2)
    after_first = logits(ctx)
    ctx.method.after_task(ctx, task, [])
    # merging changed nothing the model computes, and the new adapter starts at zero effect
    torch.testing.assert_close(logits(ctx), after_first, atol=1e-5, rtol=1e-5)
    assert len(ctx.method.merged) == 1
    perturb(ctx.model.model, 3)
    ctx.stage = 2
    ctx.method.save_checkpoint(ctx, tmp_path / "stage_2")
    assert (tmp_path / "stage_2" / "merged" / "00" / "adapter_model.safetensors").exists()
    expected = logits(ctx)

    resumed = setup_run(tmp_path / "b", config)
    resumed.stage = 2
    resumed.method.load_checkpoint(resumed, tmp_path / "stage_2")
    assert len(resumed.method.merged) == 1
    torch.testing.assert_close(logits(resumed), expected, atol=1e-6, rtol=1e-6)


def test_resume_without_merging_restores_the_adapter(tmp_path):
    ctx = setup_run(tmp_path / "a")
    perturb(ctx.model.model, 4)
    ctx.method.save_checkpoint(ctx, tmp_path / "stage_1")
    resumed = setup_run(tmp_path / "b")
    resumed.method.load_checkpoint(resumed, tmp_path / "stage_1")
    assert torch.equal(logits(resumed), logits(ctx))


def test_baselines_are_registered_with_their_schedules():
    manager = get_plugin_manager()
    methods = manager.registry("methods")
    assert methods.get("seqlora").load() is SeqLoRA
    assert methods.get("joint").load() is Joint and Joint.schedule == "joint"
    assert methods.get("zeroshot").load() is ZeroShot and ZeroShot.schedule == "none"
    assert manager.registry("models").get("tiny-llava").load() is TinyLlava
