"""Plugin managers for tests, built from classes instead of installed entry points."""

from __future__ import annotations

from typing import Any

from cvit_bench.harness.hookspecs import hookimpl
from cvit_bench.harness.plugins import PluginInfo, PluginManager


class _ClassPlugin:
    """A plugin object that registers the given classes."""

    def __init__(self, methods: dict[str, Any], benchmarks: dict[str, Any], models: dict[str, Any]):
        self._tables = {"methods": methods, "benchmarks": benchmarks, "models": models}

    def _add(self, kind: str, registrar: Any) -> None:
        for name, cls in self._tables[kind].items():
            registrar.add(name, cls)

    @hookimpl
    def register_methods(self, registrar: Any) -> None:
        self._add("methods", registrar)

    @hookimpl
    def register_benchmarks(self, registrar: Any) -> None:
        self._add("benchmarks", registrar)

    @hookimpl
    def register_models(self, registrar: Any) -> None:
        self._add("models", registrar)


def plugin_manager(
    methods: dict[str, Any] | None = None,
    benchmarks: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    *,
    plugins: list[Any] = (),
    entry_points: bool = False,
) -> PluginManager:
    """A plugin manager holding exactly these classes (and ``plugins`` objects, such as
    loggers with run-event hooks); with ``entry_points=True`` the installed plugins too."""
    manager = PluginManager()
    if entry_points:
        manager.load_entry_points()
    manager.add_plugin(
        _ClassPlugin(methods or {}, benchmarks or {}, models or {}),
        PluginInfo("test-classes", "cvit_bench.testing", "cvit-bench-testing", "0"),
    )
    for i, plugin in enumerate(plugins):
        manager.add_plugin(
            plugin, PluginInfo(f"test-plugin-{i}", repr(plugin), "cvit-bench-testing", "0")
        )
    return manager
