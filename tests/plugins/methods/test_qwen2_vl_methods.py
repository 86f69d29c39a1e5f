"""Every built-in method that claims Qwen2-VL support runs the conformance protocol (full run,
interrupted run, resume, same matrix) with ``tiny-qwen2-vl``; the others are refused before
anything is written."""

from __future__ import annotations

import json

import pytest

from cvit_bench.harness.capabilities import missing_features
from cvit_bench.harness.config import RunConfig
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.harness.runner import Runner
from cvit_bench.plugins.models.tiny_qwen2_vl.model import TinyQwen2VL
from cvit_bench.testing import check_method, plugin_manager

SUPPORTED = [
    "ewc",
    "hide",
    "joint",
    "lwf",
    "moelora",
    "mrlora",
    "olora",
    "replay",
    "sefe",
    "seqlora",
    "zeroshot",
]
REFUSED = {"l2p": "llava-internals"}
# small enough to keep each protocol run to seconds; everything else is the method's default
METHOD_ARGS = {
    "ewc": {"rank": 4, "fisher_samples": 4},
    "mrlora": {
        "rank": 4,
        "alpha": 8.0,
        "router_rank": 4,
        "router_alpha": 8.0,
        "replay_per_task": 3,
        "router_max_steps": 2,
        "router_lr": 1e-3,
    },
    "sefe": {"rank": 4, "alpha": 8.0},
    "hide": {"rank": 6, "alpha": 12.0},
    "replay": {"rank": 4},
}
TINY = {"pretrain_steps": 0, "text_layers": 2, "vision_layers": 1}


def builtin_methods():
    registry = get_plugin_manager().registry("methods")
    return {e.name: e.load() for e in registry.entries() if e.origin.distribution == "cvit-bench"}


def test_which_methods_claim_qwen2_vl_support():
    methods = builtin_methods()
    assert sorted(n for n, cls in methods.items() if not missing_features(cls, TinyQwen2VL)) == (
        SUPPORTED
    )
    for name, feature in REFUSED.items():
        assert missing_features(methods[name], TinyQwen2VL) == [feature]


@pytest.mark.parametrize("name", SUPPORTED)
def test_method_protocol_runs_and_resumes_with_tiny_qwen2_vl(name):
    import torch

    torch.set_num_threads(2)
    cls = builtin_methods()[name]
    config = cls.config_class(**METHOD_ARGS.get(name, {})) if name in METHOD_ARGS else None
    check_method(cls, config, model=TinyQwen2VL, model_args=TINY)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_method_is_refused_before_anything_is_written(name, tmp_path, capsys):
    from cvit_bench.harness.cli import main

    cls = builtin_methods()[name]
    manager = plugin_manager(
        methods={name: cls},
        benchmarks={"synth-coin": get_plugin_manager().benchmark("synth-coin")},
        models={"tiny-qwen2-vl": TinyQwen2VL},
    )
    config = RunConfig(method=name, model="tiny-qwen2-vl", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(UsageError) as info:
        Runner(config, tmp_path / "run", manager=manager, progress=False)
    message = str(info.value)
    assert f"method {name!r}" in message and "'tiny-qwen2-vl'" in message
    assert REFUSED[name] in message
    # the same from the command line: exit status 2, no run directory, no model built
    out = tmp_path / "cli-run"
    argv = ["run", "--method", name, "--bench", "synth-coin", "--model", "tiny-qwen2-vl"]
    argv += ["--out", str(out), "--set", f"cache_dir={tmp_path / 'cache'}"]
    assert main(argv) == 2
    assert REFUSED[name] in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()
    assert main(["describe", "method", name]) == 0
    described = capsys.readouterr().out
    assert f"needs model features: lora, {REFUSED[name]}" in described
    assert "tiny-llava" in described and "tiny-qwen2-vl" not in described.split("\n\n")[0]


def test_hide_routes_by_qwen2_vl_image_features(tmp_path):
    """HiDe's anchors on Qwen2-VL come from its own vision transformer (embedding-mean)."""
    import torch
    from method_helpers import toy_run

    from cvit_bench.plugins.methods.hide.method import HiDe

    torch.set_num_threads(2)
    results = toy_run(HiDe, tmp_path, "hide", {"rank": 4}, model_cls=TinyQwen2VL)
    costs = [json.loads(r["method_costs"]) for r in results.stages_table()]
    assert costs[-1]["anchor_features"] == "embedding-mean" and costs[-1]["experts"] == 2
    routed = costs[-1]["routing"]
    # the last stage routed every test image of both tasks (place's also as blank-image controls)
    colour = {k: v for k, v in routed.items() if k.startswith("colour->")}
    assert sum(colour.values()) == 24
    assert sum(v for k, v in routed.items() if k.startswith("place->")) >= 24
    # the toy tasks differ in their instructions and images: samples pick their own expert
    assert colour.get("colour->colour", 0) >= 18, routed
    assert routed.get("place->place", 0) >= 18, routed
