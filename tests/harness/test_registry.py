from __future__ import annotations

import pytest

from cvit_bench.harness import hookimpl
from cvit_bench.harness.errors import PluginLoadError, UnknownNameError, UsageError
from cvit_bench.harness.plugins import PluginInfo, PluginManager
from cvit_bench.testing import FakeSequential


class Registers:
    def __init__(self, **names):
        self.names = names

    @hookimpl
    def register_methods(self, registrar):
        for name, target in self.names.items():
            registrar.add(
                name.replace("_", "-"),
                target,
                description=f"{name} method",
                aliases=("seq-alias",) if name == "with_alias" else (),
            )


def info(name, dist="dist-a"):
    return PluginInfo(name, f"{name}.module", dist, "1.2.3")


def test_lazy_target_is_imported_only_when_asked():
    manager = PluginManager()
    manager.add_plugin(Registers(lazy="cvit_bench.testing.methods:FakeSequential"), info("p"))
    entry = manager.registry("methods").get("lazy")
    assert entry._loaded is None
    assert entry.load() is FakeSequential
    assert entry.origin.distribution == "dist-a" and entry.origin.version == "1.2.3"


def test_duplicate_name_names_both_plugins():
    manager = PluginManager()
    manager.add_plugin(Registers(seq=FakeSequential), info("first", "dist-one"))
    manager.add_plugin(Registers(seq=FakeSequential), info("second", "dist-two"))
    broken = [p for p in manager.plugins if not p.ok]
    assert [p.name for p in broken] == ["second"]
    assert "dist-one" in broken[0].error and "dist-two" in broken[0].error
    # the first registration is kept
    assert manager.method("seq") is FakeSequential


def test_invalid_name_is_refused():
    manager = PluginManager()
    manager.add_plugin(Registers(**{"Bad Name": FakeSequential}), info("p"))
    assert "not a valid name" in manager.plugins[0].error


def test_did_you_mean_and_alias():
    manager = PluginManager()
    manager.add_plugin(Registers(seqlora=FakeSequential, with_alias=FakeSequential), info("p"))
    with pytest.raises(UnknownNameError, match="Did you mean 'seqlora'"):
        manager.method("seqlroa")
    assert manager.method("seq-alias") is FakeSequential
    with pytest.raises(UnknownNameError) as err:
        manager.method("zzz")
    assert isinstance(err.value, UsageError) and "Known methods: seqlora, with-alias" in str(
        err.value
    )


def test_broken_import_reported_when_name_is_asked_for():
    manager = PluginManager()
    manager.add_plugin(Registers(good="nonexistent.module.path:Thing"), info("p"))
    with pytest.raises(PluginLoadError, match="importing 'nonexistent.module.path:Thing' failed"):
        manager.method("good")


def test_plugin_whose_register_hook_raises_is_broken_not_fatal():
    class Exploding:
        @hookimpl
        def register_methods(self, registrar):
            raise RuntimeError("boom")

    manager = PluginManager()
    manager.add_plugin(Exploding(), info("exploding"))
    manager.add_plugin(Registers(ok=FakeSequential), info("fine"))
    assert manager.method("ok") is FakeSequential
    with pytest.raises(
        PluginLoadError, match="exploding: register_methods failed: RuntimeError: boom"
    ):
        manager.method("missing-one")


def test_failing_observer_is_a_warning():
    class Observer:
        @hookimpl
        def run_finished(self, run, summary):
            raise ValueError("logger down")

    manager = PluginManager()
    manager.add_plugin(Observer(), info("logger"))
    with pytest.warns(RuntimeWarning, match="logger.*logger down"):
        manager.emit("run_finished", run={}, summary={})
