from __future__ import annotations

import pytest

from cvit_bench.harness.capabilities import check_compatible, missing_features
from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.runner import Runner
from cvit_bench.harness.types import MethodRequirements
from cvit_bench.testing import FakeBenchmark, FakeModel, FakeSequential, plugin_manager


class NeedsLoRA(FakeSequential):
    name = "needs-lora"
    requirements = MethodRequirements(model_features=("lora", "acme:saliency"))


class OffersLoRA(FakeModel):
    name = "offers-lora"
    features = frozenset({"lora"})

    @classmethod
    def preflight(cls, config):
        if config.capacity > 100:
            raise UsageError("offers-lora: capacity above 100 does not fit this machine")


def runner(tmp_path, method, model, **config):
    manager = plugin_manager(
        methods={"fake-seq": FakeSequential, "needs-lora": NeedsLoRA},
        benchmarks={"fake-bench": FakeBenchmark},
        models={"fake-model": FakeModel, "offers-lora": OffersLoRA},
    )
    config = RunConfig(method=method, bench="fake-bench", model=model, **config)
    return Runner(config, tmp_path / "run", manager=manager, progress=False)


def test_a_method_is_refused_with_a_model_lacking_a_feature_before_anything_is_written(tmp_path):
    with pytest.raises(UsageError) as info:
        runner(tmp_path, "needs-lora", "fake-model")
    message = str(info.value)
    assert "method 'needs-lora' cannot run with model 'fake-model'" in message
    assert "lora, acme:saliency" in message and "offers only: none" in message
    with pytest.raises(UsageError) as info:
        runner(tmp_path, "needs-lora", "offers-lora")
    assert "acme:saliency (acme:saliency: a third-party feature)" in str(info.value)
    assert "offers only: lora" in str(info.value)
    assert not (tmp_path / "run").exists()
    assert missing_features(NeedsLoRA, OffersLoRA) == ["acme:saliency"]
    # a method that needs nothing runs with any model; the model's preflight still applies
    runner(tmp_path, "fake-seq", "offers-lora").run()
    with pytest.raises(UsageError, match="capacity above 100"):
        runner(tmp_path / "b", "fake-seq", "offers-lora", model_args={"capacity": 101})
    assert not (tmp_path / "b").exists()
    check_compatible(
        "fake-seq", FakeSequential, "offers-lora", OffersLoRA
    )  # no config: no preflight


def test_describe_shows_both_sides(capsys):
    from cvit_bench.harness.cli import main

    assert main(["describe", "model", "tiny-qwen2-vl"]) == 0
    out = capsys.readouterr().out
    assert "model features: image-embedding, lora" in out
    runs = out.split("runs methods: ")[1].split("\n")[0].split(", ")
    assert "seqlora" in runs and "hide" in runs and "l2p" not in runs
    assert main(["describe", "method", "seqlora"]) == 0
    out = capsys.readouterr().out
    assert "needs model features: lora" in out
    assert all(m in out for m in ("llava-1.5", "tiny-llava", "qwen2-vl", "tiny-qwen2-vl"))
