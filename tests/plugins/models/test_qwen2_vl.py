from __future__ import annotations

import json

import pytest
import torch

from cvit_bench.harness.errors import DataError
from cvit_bench.plugins.models.qwen2_vl.model import PATH_ENV, Qwen2VL, Qwen2VLModelConfig
from cvit_bench.plugins.models.tiny_qwen2_vl.model import TinyQwen2VL, TinyQwen2VLConfig
from cvit_bench.testing.toy import ToyBenchmark, make_context


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A Hugging Face Qwen2-VL directory as ``save_pretrained`` writes one (the layout
    ``Qwen/Qwen2-VL-2B-Instruct`` ships), holding a tiny random model."""
    root = tmp_path_factory.mktemp("qwen")
    bench = ToyBenchmark(n_train=8, n_eval=6)
    tiny = TinyQwen2VL(TinyQwen2VLConfig(pretrain_steps=0))
    ctx = make_context(root, bench, tiny)
    bench.prepare(ctx)
    tiny.build(ctx)
    out = root / "Qwen2-VL-tiny"
    tiny.model.save_pretrained(str(out))
    tiny.tokenizer.save_pretrained(str(out))
    tiny.image_processor.save_pretrained(str(out))
    return {"dir": out, "tiny": tiny, "bench": bench, "root": root}


def load(tmp_path, release, **config):
    adapter = Qwen2VL(Qwen2VLModelConfig(**{"path": str(release["dir"]), **config}))
    ctx = make_context(tmp_path, release["bench"], adapter)
    adapter.build(ctx)
    return adapter, ctx


def test_a_local_directory_loads_and_answers_like_the_model_saved_there(tmp_path, release):
    adapter, ctx = load(tmp_path, release, system_prompt="")
    tiny = release["tiny"]
    saved, loaded = tiny.model.state_dict(), adapter.model.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert not any(p.requires_grad for p in adapter.model.parameters())
    assert adapter.model.model.language_model.config._attn_implementation == "sdpa"
    samples = list(release["bench"].eval_samples("colour")) + list(
        release["bench"].eval_samples("place")
    )
    assert adapter.collate_eval(samples)["input_ids"].tolist() == (
        tiny.collate_eval(samples)["input_ids"].tolist()
    )
    ours = adapter.generate(adapter.model, adapter.collate_eval(samples), 3, "cpu", torch.float32)
    theirs = tiny.generate(tiny.model, tiny.collate_eval(samples), 3, "cpu", torch.float32)
    assert ours == theirs
    described = adapter.describe()
    assert described["source"] == str(release["dir"]) and len(described["revision"]) == 12
    # Qwen's own system turn by default, and the pixel bounds are options
    default, _ = load(tmp_path, release, max_pixels=16 * 16, attn_implementation="eager")
    assert default.template.render(samples[0]).startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    )
    assert default.image_tokens(samples[0].image) == 4
    assert default.model.model.language_model.config._attn_implementation == "eager"


def test_path_from_environment_variable(tmp_path, release, monkeypatch):
    monkeypatch.setenv(PATH_ENV, str(release["dir"]))
    adapter = Qwen2VL()
    adapter.build(make_context(tmp_path, release["bench"], adapter))
    assert adapter.path == release["dir"]


def test_no_directory_configured_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv(PATH_ENV, raising=False)
    adapter = Qwen2VL()
    with pytest.raises(DataError) as info:
        adapter.build(make_context(tmp_path, ToyBenchmark(), adapter))
    message = str(info.value)
    assert PATH_ENV in message and "Qwen/Qwen2-VL-2B-Instruct" in message
    assert "tiny-qwen2-vl" in message


@pytest.mark.parametrize(
    "damage, missing",
    [
        ("preprocessor_config.json", "preprocessor_config.json"),
        ("tokenizer.json", "tokenizer.json"),
        ("model.safetensors", "the weights"),
        ("config.json", "config.json"),
        ("model_type", "a qwen2_vl config.json (model_type is 'llava'"),
    ],
)
def test_incomplete_directory_names_what_is_missing(tmp_path, release, damage, missing):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(release["dir"], copy)
    if damage == "model_type":
        config = json.loads((copy / "config.json").read_text())
        config["model_type"] = "llava"
        (copy / "config.json").write_text(json.dumps(config))
    else:
        (copy / damage).unlink()
    adapter = Qwen2VL(Qwen2VLModelConfig(path=str(copy)))
    with pytest.raises(DataError) as info:
        adapter.build(make_context(tmp_path, release["bench"], adapter))
    message = str(info.value)
    assert f"{copy} is incomplete" in message and missing in message
    assert "huggingface-cli download" in message
    with pytest.raises(DataError, match="itself"):
        bad = Qwen2VL(Qwen2VLModelConfig(path=str(tmp_path / "nowhere")))
        bad.build(make_context(tmp_path, release["bench"], bad))
