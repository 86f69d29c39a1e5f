"""Keeps the plugin API, its documentation and its version in step."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cvit_bench import harness
from cvit_bench.harness import hookspecs, protocols

GUIDE = (Path(__file__).parents[2] / "docs" / "plugin-guide.md").read_text()

HOOKS = [
    name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "cvit_bench_spec")
]
PROTOCOLS = [protocols.Benchmark, protocols.ModelAdapter, protocols.Engine, protocols.Method]

# The API as of version 1.0. Entries may be added here; one that disappears from the code
# without a deprecation cycle fails test_nothing_was_removed.
API_1_0 = {
    "hooks": {
        "register_methods": ["registrar"],
        "register_benchmarks": ["registrar"],
        "register_models": ["registrar"],
        "run_started": ["run"],
        "task_trained": ["run", "stage", "task", "stats"],
        "task_evaluated": ["run", "stage", "task", "metrics", "primary"],
        "stage_finished": ["run", "stage", "wall_s"],
        "run_finished": ["run", "summary"],
    },
    "Benchmark": [
        "name",
        "version",
        "config_class",
        "reference_model",
        "prepare",
        "tasks",
        "train_samples",
        "eval_samples",
        "score",
        "identity",
    ],
    "ModelAdapter": ["name", "config_class", "build", "create_engine", "lora_targets", "describe"],
    "Engine": ["train", "predict"],
    "Method": [
        "name",
        "config_class",
        "requirements",
        "schedule",
        "setup",
        "before_task",
        "training_samples",
        "trainable_parameters",
        "training_loss",
        "after_task",
        "inference",
        "save_checkpoint",
        "load_checkpoint",
        "costs",
    ],
}


def signature(name, fn, drop_self=False):
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if drop_self else 0 :]
    return f"{name}{sig.replace(parameters=params)}".replace("'", "")


def members(proto):
    return [n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")]


def test_api_has_a_version():
    major, minor = harness.API_VERSION.split(".")
    assert int(major) >= 1 and int(minor) >= 0


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    fn = getattr(hookspecs, hook)
    assert f"`{signature(hook, fn)}`" in GUIDE, f"docs/plugin-guide.md lacks {hook}'s signature"
    assert "Added in API" in (fn.__doc__ or ""), f"{hook}'s docstring says not when it came"


@pytest.mark.parametrize("proto", PROTOCOLS, ids=lambda p: p.__name__)
def test_every_protocol_member_is_documented_with_its_exact_signature(proto):
    for name in members(proto):
        sig = signature(name, getattr(proto, name), drop_self=True)
        assert f"`{sig}`" in GUIDE, f"docs/plugin-guide.md lacks {proto.__name__}.{name}: {sig}"
    for attr in proto.__annotations__:
        assert f"`{attr}: " in GUIDE, f"docs/plugin-guide.md lacks {proto.__name__}.{attr}"


def test_method_base_gives_a_default_for_every_member():
    for name in members(protocols.Method):
        assert callable(getattr(protocols.MethodBase, name)), name


def test_nothing_was_removed():
    for hook, args in API_1_0["hooks"].items():
        assert hook in HOOKS, f"hook {hook} was removed without a deprecation cycle"
        have = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert have[: len(args)] == args, f"hook {hook}'s arguments changed: {have}"
    for proto in PROTOCOLS:
        have = set(members(proto)) | set(proto.__annotations__)
        missing = set(API_1_0[proto.__name__]) - have
        assert not missing, f"{proto.__name__} lost {sorted(missing)}"
