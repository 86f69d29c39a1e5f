from __future__ import annotations

import importlib.util

import pytest
import torch
from PIL import Image
from tiny_helpers import build_tiny, supervised_pieces, train_briefly, weights

from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.types import Sample, Turn
from cvit_bench.plugins.models.chat_adapter import IGNORE_INDEX
from cvit_bench.plugins.models.qwen2_vl.model import Qwen2VL
from cvit_bench.plugins.models.qwen2_vl_common import IM_END, IMAGE_PAD, VISION_END, VISION_START
from cvit_bench.plugins.models.tiny_qwen2_vl.model import TinyQwen2VL
from cvit_bench.testing import check_model
from cvit_bench.testing.toy import ToyBenchmark


def build(tmp_path, bench=None, **config):
    return build_tiny(TinyQwen2VL, tmp_path, bench, **config)


def test_adapters_conform_and_the_same_seed_builds_the_same_model(tmp_path):
    check_model(TinyQwen2VL)
    check_model(Qwen2VL)
    a, _ = build(tmp_path / "a")
    b, _ = build(tmp_path / "b")
    c, _ = build(tmp_path / "c", seed=1)
    sa, sb, sc = weights(a), weights(b), weights(c)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert a.tokenizer.backend_tokenizer.to_str() == b.tokenizer.backend_tokenizer.to_str()
    assert type(a.model).__name__ == "Qwen2VLForConditionalGeneration"
    params = a.describe()["parameters"]
    assert params["visual"] > params["merger"] > 0 and params["language_model"] > 0
    assert a.describe()["starting_point"] == "random"


def test_chatml_prompt_with_image_tokens_and_answer_only_loss(tmp_path):
    model, ctx = build(tmp_path)
    tok = model.tokenizer
    sample = ctx.benchmark.train_samples("colour")[0]
    batch = model.collate_train([sample, ctx.benchmark.train_samples("place")[0]], 512)
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    # a 32x32 image: 8x8 patches of 4 pixels, merged 2x2 into 16 image tokens
    assert model.image_tokens(sample.image) == 16
    assert tok.decode(ids[: labels.index(next(x for x in labels if x != IGNORE_INDEX))]) == (
        f"<|im_start|>user\n{VISION_START}{IMAGE_PAD * 16}{VISION_END}{sample.prompt}{IM_END}\n"
        "<|im_start|>assistant\n"
    )
    supervised = [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    assert tok.decode(supervised) == f"{sample.answer}{IM_END}"
    n_prompt = labels.index(next(lab for lab in labels if lab != IGNORE_INDEX))
    assert ids[:n_prompt] == model.encode_prompt(sample)
    # M-RoPE needs to know which tokens are image tokens; right padding is never supervised
    image_pad = tok.convert_tokens_to_ids(IMAGE_PAD)
    assert torch.equal(batch["mm_token_type_ids"], (batch["input_ids"] == image_pad).int())
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert batch["image_grid_thw"].tolist() == [[1, 8, 8], [1, 8, 8]]
    assert tuple(batch["pixel_values"].shape) == (128, 3 * 2 * 4 * 4)


def test_every_answer_of_a_multi_turn_sample_is_supervised(tmp_path):
    model, ctx = build(tmp_path, system_prompt="Be brief.")
    image = ctx.benchmark.train_samples("colour")[0].image
    sample = Sample(
        id=1,
        task="colour",
        prompt="What colour is the square?",
        answer="red",
        image=image,
        turns=(Turn("What colour is the square?", "red"), Turn("Left or right?", "left")),
    )
    ids, labels = model.encode_train(sample, 512)
    assert supervised_pieces(model, ids, labels) == [f"red{IM_END}", f"left{IM_END}"]
    text = model.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert f"red{IM_END}\n<|im_start|>user\nLeft or right?{IM_END}\n" in text


def test_images_keep_their_aspect_ratio_within_the_pixel_bounds(tmp_path):
    model, _ = build(tmp_path, min_pixels=16 * 16, max_pixels=32 * 32)
    wide, small = tmp_path / "wide.png", tmp_path / "small.png"
    Image.new("RGB", (64, 16), (255, 0, 0)).save(wide)
    Image.new("RGB", (8, 8), (0, 0, 255)).save(small)
    _, grid = model.pixel_values(str(wide))
    assert grid.tolist() == [1, 4, 16]  # 16x64 pixels kept as 16x64: at the 1024-pixel bound
    _, grid = model.pixel_values(str(small))
    assert grid.tolist() == [1, 4, 4]  # scaled up to the 256-pixel lower bound
    assert model.image_tokens(str(wide)) == 16 and model.image_tokens(str(small)) == 4


def test_flash_attention_2_is_refused_where_it_cannot_run(tmp_path):
    from cvit_bench.harness.config import RunConfig
    from cvit_bench.harness.runner import Runner
    from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
    from cvit_bench.plugins.methods.seqlora.method import SeqLoRA
    from cvit_bench.testing import plugin_manager

    manager = plugin_manager(
        methods={"seqlora": SeqLoRA},
        benchmarks={"synth-coin": SynthCoin},
        models={"tiny-qwen2-vl": TinyQwen2VL, "qwen2-vl": Qwen2VL},
    )
    installed = importlib.util.find_spec("flash_attn") is not None
    for name in ("tiny-qwen2-vl", "qwen2-vl"):
        config = RunConfig(
            model=name,
            model_args={"attn_implementation": "flash_attention_2"},
            cache_dir=str(tmp_path / "cache"),
        )
        if installed and torch.cuda.is_available():
            Runner(config, tmp_path / name, manager=manager, progress=False)
            continue
        with pytest.raises(UsageError) as info:
            Runner(config, tmp_path / name, manager=manager, progress=False)
        message = str(info.value)
        assert name in message and "flash_attention_2" in message and "sdpa" in message
        assert ("not installed" in message) if not installed else ("CUDA GPU" in message)
        assert not (tmp_path / name).exists() and not (tmp_path / "cache").exists()
    with pytest.raises(UsageError, match="must be one of"):
        Runner(
            RunConfig(model="tiny-qwen2-vl", model_args={"attn_implementation": "flash"}),
            tmp_path / "x",
            manager=manager,
            progress=False,
        )


def mixed_eval_samples(bench, tmp_path):
    """Both tasks interleaved, plus wide and small copies of some images (other image token
    counts, so other prompt lengths) and a text-only question: every batch is left-padded."""
    out = [
        s for pair in zip(bench.eval_samples("colour"), bench.eval_samples("place")) for s in pair
    ]
    extra = []
    for i, s in enumerate(out[:6]):
        with Image.open(s.image) as img:
            size = (64, 32) if i % 2 else (16, 16)
            path = tmp_path / f"resized-{i}.png"
            img.resize(size).save(path)
        extra.append(
            Sample(id=f"r{i}", task=s.task, prompt=s.prompt, answer=s.answer, image=str(path))
        )
    text_only = Sample(id="t", task="colour", prompt="Which colours are there?", answer="red")
    return out[:4] + extra[:3] + out[4:12] + extra[3:] + [text_only] + out[12:]


@pytest.mark.slow
def test_batched_generation_equals_one_at_a_time_and_eager_equals_sdpa(tmp_path):
    torch.manual_seed(0)
    bench = ToyBenchmark(n_train=96, n_eval=12)
    model, ctx = build(tmp_path, bench=bench, min_pixels=16 * 16, max_pixels=32 * 32)
    train_briefly(model, list(bench.train_samples("colour")), steps=40, lr=2e-3)
    evals = mixed_eval_samples(bench, tmp_path)
    assert len({len(model.encode_prompt(s)) for s in evals}) >= 3
    one = [
        model.generate(model.model, model.collate_eval([s]), 4, "cpu", torch.float32)[0]
        for s in evals
    ]
    batched, padded = [], 0
    for start in range(0, len(evals), 8):
        batch = model.collate_eval(evals[start : start + 8])
        padded += int((batch["attention_mask"] == 0).any())
        batched += model.generate(model.model, batch, 4, "cpu", torch.float32)
    assert padded >= 2 and batched == one
    colour = [(p, s) for p, s in zip(one, evals) if s.task == "colour" and s.image]
    correct = sum(p == s.answer for p, s in colour)
    assert correct >= 0.75 * len(colour), f"the model did not learn colours: {one}"
    # the engine's sharded, length-sorted evaluation gives the same answers in input order
    ctx.config.eval.batch_size = 5
    preds = model.create_engine(ctx).predict(ctx, ctx.tasks[0], evals)
    assert [p.id for p in preds] == [s.id for s in evals]
    assert [p.text for p in preds] == one
    # the same weights with eager attention answer the same
    eager, _ = build(
        tmp_path, bench=bench, min_pixels=16 * 16, max_pixels=32 * 32, attn_implementation="eager"
    )
    assert eager.model.model.language_model.config._attn_implementation == "eager"
    assert model.model.model.language_model.config._attn_implementation == "sdpa"
    eager.model.load_state_dict(model.model.state_dict())
    answers = []
    for start in range(0, len(evals), 8):
        batch = eager.collate_eval(evals[start : start + 8])
        answers += eager.generate(eager.model, batch, 4, "cpu", torch.float32)
    assert answers == one


@pytest.mark.slow
def test_default_run_on_synth_coin_from_the_command_line(tmp_path, capsys):
    """``cvit-bench run --method seqlora --bench synth-coin --model tiny-qwen2-vl``, shrunk."""
    import yaml

    from cvit_bench.harness.cli import main
    from cvit_bench.harness.results import RunResults

    torch.set_num_threads(2)
    out = tmp_path / "run"
    argv = ["run", "--method", "seqlora", "--bench", "synth-coin", "--model", "tiny-qwen2-vl"]
    argv += ["--out", str(out), "--no-progress"]
    for setting in (
        "bench.train_per_task=8",
        "bench.eval_per_task=4",
        "model.pretrain_steps=0",
        "train.max_steps=2",
        "train.batch_size=4",
        "eval.max_new_tokens=4",
        f"cache_dir={tmp_path / 'cache'}",
    ):
        argv += ["--set", setting]
    assert main(argv) == 0
    results = RunResults(out)
    assert results.complete and len(results.tasks) == 8
    rows, zero_shot = results.matrix()
    assert len(rows) == 8 and zero_shot is not None
    assert all(0.0 <= v <= 100.0 for row in rows for v in row)
    provenance = results.provenance
    assert provenance["model"]["name"] == "tiny-qwen2-vl"
    assert provenance["model_source"]["parameters"]["merger"] > 0
    assert provenance["method_requirements"]["model_features"] == ["lora"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["lr"] == 2e-3  # the tiny model's run default
    assert config["model_args"]["attn_implementation"] == "sdpa"
    prediction = results.predictions(8, results.tasks[0])[0]
    assert prediction["prompt"].startswith("<|im_start|>user\n<image>")
    assert prediction["prediction"] is not None
    stages = results.stages_table()
    assert all(r["steps"] == 2 for r in stages if r["stage"] >= 1)
    assert (out / "checkpoints" / "stage_8" / "adapter" / "adapter_config.json").exists()


def test_a_chat_is_laid_out_as_training_lays_out_a_conversation(tmp_path):
    model, ctx = build(tmp_path)
    sample = ctx.benchmark.eval_samples("colour")[0]
    first = model.collate_chat([], sample.prompt, sample.image)
    assert first["input_ids"].tolist() == model.collate_eval([sample])["input_ids"].tolist()
    assert torch.equal(first["image_grid_thw"], model.collate_eval([sample])["image_grid_thw"])
    history = [Turn(sample.prompt, "red")]
    second = model.collate_chat(history, "Left or right?", sample.image)
    ids = second["input_ids"][0].tolist()
    conversation = Sample(
        id=0,
        task="colour",
        prompt=sample.prompt,
        image=sample.image,
        turns=(Turn(sample.prompt, "red"), Turn("Left or right?", "left")),
    )
    trained, _ = model.encode_train(conversation, 512)
    assert trained[: len(ids)] == ids  # the chat prompt is a prefix of the trained conversation
    assert model.render_chat(history, "Left or right?", sample.image).endswith(
        f"red{IM_END}\n<|im_start|>user\nLeft or right?{IM_END}\n<|im_start|>assistant\n"
    )
