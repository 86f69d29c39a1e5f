"""Finds plugins through entry points, registers their names, and relays run events.

Loading is forgiving: a plugin that fails to import or to register is recorded as broken with
its error, the others load normally, and only asking for one of the broken plugin's names fails.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .registry import KINDS, Origin, Registrar, Registry


@dataclass
class PluginInfo:
    """One entry point of the ``cvit_bench`` group and what became of it."""

    name: str
    value: str
    distribution: str
    version: str
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class PluginManager:
    """The plugin manager of one process: registries plus a typed facade over pluggy's hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
        self.plugins: list[PluginInfo] = []

    # -- loading --------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import every ``cvit_bench`` entry point and run its registration hooks."""
        seen: set[tuple[str, str]] = set()
        for ep in sorted(
            importlib_metadata.entry_points(group=hookspecs.PROJECT_NAME), key=lambda e: e.name
        ):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            info = PluginInfo(ep.name, ep.value, dist_name, dist.version if dist else "?")
            self.plugins.append(info)
            try:
                module = ep.load()
            except Exception as exc:
                self._broken(info, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
                continue
            self.add_plugin(module, info)

    def add_plugin(self, plugin: Any, info: PluginInfo) -> None:
        """Register one plugin object or module (used for entry points and by the test kit)."""
        if info not in self.plugins:
            self.plugins.append(info)
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self._broken(info, f"{type(exc).__name__}: {exc}")
            return
        origin = Origin(info.name, info.distribution, info.version)
        for kind in KINDS:
            caller = getattr(self.pm.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():
                if impl.plugin_name != info.name:
                    continue
                before = set(self.registries[kind].names())
                try:
                    impl.function(registrar=Registrar(self.registries[kind], origin))
                except Exception as exc:
                    detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
                    self._broken(info, f"register_{kind} failed: {detail}")
                    return
                added = sorted(set(self.registries[kind].names()) - before)
                if added:
                    info.registered.setdefault(kind, []).extend(added)

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.error = error
        for registry in self.registries.values():
            registry.mark_broken(info.name, error)

    def check_pending(self) -> None:
        """Fail on hook implementations whose names match no hook (a misspelt hook)."""
        self.pm.check_pending()

    # -- lookups --------------------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def method(self, name: str) -> Any:
        return self.registries["methods"].load(name)

    def benchmark(self, name: str) -> Any:
        return self.registries["benchmarks"].load(name)

    def model(self, name: str) -> Any:
        return self.registries["models"].load(name)

    # -- run events -----------------------------------------------------------------------
    def emit(self, event: str, **kwargs: Any) -> None:
        """Call a run event on every plugin; a failing observer is a warning, never fatal."""
        caller = getattr(self.pm.hook, event)
        for impl in caller.get_hookimpls():
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                warnings.warn(
                    f"plugin {impl.plugin_name!r} failed in {event}: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )


_DEFAULT: PluginManager | None = None


def get_plugin_manager(refresh: bool = False) -> PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        manager = PluginManager()
        manager.load_entry_points()
        _DEFAULT = manager
    return _DEFAULT
