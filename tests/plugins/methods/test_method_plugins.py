from __future__ import annotations

import pytest

from cvit_bench.harness.plugins import get_plugin_manager
from cvit_bench.testing import check_method

NEW_METHODS = {
    "replay": ("replay.method", "Replay", True, False),
    "ewc": ("ewc.method", "EWC", False, False),
    "lwf": ("lwf.method", "LwF", False, False),
    "moelora": ("moelora.method", "MoELoRA", False, False),
    "olora": ("olora.method", "OLoRA", False, True),
    "l2p": ("l2p.method", "L2P", False, False),
}


@pytest.mark.parametrize("name", sorted(NEW_METHODS))
def test_registered_through_entry_points_with_documented_options(name):
    import importlib

    module, attr, stores, per_task = NEW_METHODS[name]
    cls = getattr(importlib.import_module(f"cvit_bench.plugins.methods.{module}"), attr)
    entry = get_plugin_manager().registry("methods").get(name)
    assert entry.load() is cls and entry.origin.distribution == "cvit-bench"
    check_method(cls, run_fake=False)  # name, help on every option, requirements, protocol
    assert cls.requirements.stores_samples is stores
    assert cls.requirements.per_task_parameters is per_task
    assert cls.requirements.task_identity_at_inference is False
    assert cls.schedule == "sequential"
    assert "stored_samples" in cls().costs()


@pytest.mark.parametrize(
    ("module", "name"),
    [("ewc", "EWC"), ("lwf", "LwF"), ("olora", "OLoRA"), ("l2p", "L2P")],
)
def test_methods_that_read_weights_outside_the_forward_pass_refuse_zero3(tmp_path, module, name):
    import importlib

    from method_helpers import tiny_context

    from cvit_bench.harness.errors import UsageError

    mod = importlib.import_module(f"cvit_bench.plugins.methods.{module}.method")
    method = getattr(mod, name)(getattr(mod, f"{name}Config")())
    with pytest.raises(UsageError, match="ZeRO-3 partitions away: use train.zero_stage 0, 1 or 2"):
        tiny_context(tmp_path, method, train={"zero_stage": 3})
