from __future__ import annotations

import json

import pytest
import torch

from cvit_bench.harness.errors import DataError
from cvit_bench.plugins.models.llava.convert import convert_llava
from cvit_bench.plugins.models.llava.model import PATH_ENV, Llava15, LlavaModelConfig
from cvit_bench.plugins.models.llava_common import IMAGE_TOKEN
from cvit_bench.testing.toy import ToyBenchmark, make_context


def write_release(root):
    """A tiny random 'original release': Llama-format LM, mm_projector.bin, CLIP directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    torch.manual_seed(0)
    llm, clip = root / "vicuna", root / "clip"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        ["USER: What colour is the square? ASSISTANT: red green blue yellow left right"] * 4,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<unk>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            bos_token_id=1,
            eos_token_id=2,
        )
    )
    lm.save_pretrained(str(llm))
    tokenizer.save_pretrained(str(llm))
    clip_model = CLIPModel(
        CLIPConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "vocab_size": 50,
            },
            vision_config={
                "hidden_size": 24,
                "intermediate_size": 48,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 28,
                "patch_size": 14,
            },
            projection_dim=16,
        )
    )
    clip_model.save_pretrained(str(clip))
    CLIPImageProcessorPil(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
    ).save_pretrained(str(clip))
    projector = {
        "model.mm_projector.0.weight": torch.randn(32, 24),
        "model.mm_projector.0.bias": torch.randn(32),
        "model.mm_projector.2.weight": torch.randn(32, 32),
        "model.mm_projector.2.bias": torch.randn(32),
    }
    torch.save(projector, root / "mm_projector.bin")
    return llm, clip, root / "mm_projector.bin", lm, clip_model, projector


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    llm, clip, proj, lm, clip_model, projector = write_release(root)
    out = convert_llava(llm, clip, root / "llava", projector=proj)
    return {
        "root": root,
        "llm": llm,
        "clip": clip,
        "projector_file": proj,
        "lm": lm,
        "clip_model": clip_model,
        "projector": projector,
        "out": out,
    }


def load(tmp_path, path, **config):
    bench = ToyBenchmark(n_train=4, n_eval=4, image_size=28)
    adapter = Llava15(LlavaModelConfig(path=str(path), **config))
    ctx = make_context(tmp_path, bench, adapter)
    bench.prepare(ctx)
    adapter.build(ctx)
    return adapter, ctx


def test_converted_release_loads_with_every_part_in_place(release, tmp_path):
    adapter, ctx = load(tmp_path, release["out"], starting_point="v15p")
    model = adapter.model
    assert adapter.starting_point == "v15p"
    assert model.config.vision_feature_layer == -2
    assert adapter.image_seq_length == 4
    assert IMAGE_TOKEN in adapter.tokenizer.get_vocab() and adapter.tokenizer.pad_token == "<pad>"
    assert model.config.text_config.vocab_size % 64 == 0
    proj = model.model.multi_modal_projector
    assert torch.equal(proj.linear_1.weight, release["projector"]["model.mm_projector.0.weight"])
    assert torch.equal(proj.linear_2.bias, release["projector"]["model.mm_projector.2.bias"])
    vision = release["clip_model"].vision_model
    tower = model.model.vision_tower
    tower = getattr(tower, "vision_model", tower)
    assert torch.equal(
        tower.embeddings.patch_embedding.weight, vision.embeddings.patch_embedding.weight
    )
    assert torch.equal(
        tower.encoder.layers[1].mlp.fc2.weight, vision.encoder.layers[1].mlp.fc2.weight
    )
    # the language model computes what Vicuna computed on the original vocabulary
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        ours = model(input_ids=ids).logits[..., : release["lm"].config.vocab_size]
        theirs = release["lm"](input_ids=ids).logits
    torch.testing.assert_close(ours, theirs)
    # a full prompt with an image goes through the Vicuna v1 template and generates
    sample = ctx.benchmark.eval_samples("colour")[0]
    prompt = adapter.template.render(sample)
    assert prompt.startswith("A chat between a curious human") and prompt.endswith("ASSISTANT:")
    texts = adapter.generate(
        model, adapter.collate_eval(ctx.benchmark.eval_samples("colour")), 3, "cpu", torch.float32
    )
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)


def test_fresh_projector_starting_point_is_seeded(release, tmp_path):
    a, _ = load(tmp_path / "a", release["out"], starting_point="v15", seed=1)
    b, _ = load(tmp_path / "b", release["out"], starting_point="v15", seed=1)
    wa = a.model.model.multi_modal_projector.linear_1.weight
    assert torch.equal(wa, b.model.model.multi_modal_projector.linear_1.weight)
    assert not torch.equal(wa, release["projector"]["model.mm_projector.0.weight"])


def test_path_from_environment_variable(release, tmp_path, monkeypatch):
    monkeypatch.setenv(PATH_ENV, str(release["out"]))
    bench = ToyBenchmark(n_train=2, n_eval=2, image_size=28)
    adapter = Llava15(LlavaModelConfig())
    adapter.build(make_context(tmp_path, bench, adapter))
    assert adapter.describe()["source"] == str(release["out"])
    assert adapter.describe()["starting_point"] == "v15pf"


def test_no_directory_configured_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv(PATH_ENV, raising=False)
    adapter = Llava15(LlavaModelConfig())
    with pytest.raises(DataError) as err:
        adapter.build(make_context(tmp_path, ToyBenchmark(), adapter))
    message = str(err.value)
    assert PATH_ENV in message and "convert-llava" in message and "tiny-llava" in message


@pytest.mark.parametrize("remove", ["config.json", "preprocessor_config.json", "shard"])
def test_incomplete_directory_names_what_is_missing(release, tmp_path, remove):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(release["out"], copy)
    if remove == "shard":
        index = json.loads((copy / "model.safetensors.index.json").read_text())
        remove = sorted(set(index["weight_map"].values()))[0]
    (copy / remove).unlink()
    adapter = Llava15(LlavaModelConfig(path=str(copy)))
    with pytest.raises(DataError, match=remove.replace(".", r"\.")) as err:
        adapter.build(make_context(tmp_path, ToyBenchmark(), adapter))
    assert "huggingface-cli download" in str(err.value)


def test_converter_command_line_and_its_input_errors(release, tmp_path, capsys):
    from cvit_bench.harness.cli import main

    out = tmp_path / "cli-out"
    code = main(
        [
            "model",
            "convert-llava",
            "--llm",
            str(release["llm"]),
            "--clip",
            str(release["clip"]),
            "--projector",
            str(release["projector_file"]),
            "--out",
            str(out),
        ]
    )
    assert code == 0 and (out / "model.safetensors.index.json").exists()
    assert str(out) in capsys.readouterr().out
    # without a projector, a plain Vicuna directory cannot become LLaVA
    with pytest.raises(DataError, match="mm_projector.bin"):
        convert_llava(release["llm"], release["clip"], tmp_path / "noproj")
    with pytest.raises(DataError, match="not empty"):
        convert_llava(release["llm"], release["clip"], out, projector=release["projector_file"])
