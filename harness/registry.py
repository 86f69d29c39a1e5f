"""Registries of methods, benchmarks and models, filled by plugins' registration hooks."""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginLoadError, UnknownNameError, UsageError

KINDS = ("methods", "benchmarks", "models")
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
"""Valid names: lower-case letters and digits, words joined by ``-``, ``_`` or ``.``."""


@dataclass(frozen=True)
class Origin:
    """Where an entry came from: the plugin (entry-point name) and its distribution."""

    plugin: str
    distribution: str
    version: str


@dataclass
class Entry:
    """A registered name.

    Attributes:
        name: the canonical name (``seqlora``).
        kind: ``methods``, ``benchmarks`` or ``models``.
        target: the class, or a ``"module:Class"`` string imported on first use.
        description: one line for ``cvit-bench list``.
        aliases: other names that resolve to this entry.
        origin: the plugin and distribution that registered it.
    """

    name: str
    kind: str
    target: Any
    description: str
    aliases: tuple[str, ...]
    origin: Origin
    _loaded: Any = field(default=None, repr=False)

    def load(self) -> Any:
        """Import (once) and return the registered class."""
        if self._loaded is not None:
            return self._loaded
        target = self.target
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                module = importlib.import_module(module_name)
                target = getattr(module, attr) if attr else module
            except Exception as exc:  # a plugin's import error, whatever it is
                raise PluginLoadError(
                    f"{self.kind[:-1]} {self.name!r} (from {self.origin.distribution} "
                    f"{self.origin.version}, plugin {self.origin.plugin!r}) could not be loaded: "
                    f"importing {self.target!r} failed with {type(exc).__name__}: {exc}"
                ) from exc
        self._loaded = target
        return target


class Registry:
    """Names of one kind (``methods``, ``benchmarks`` or ``models``) and what they resolve to."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"unknown registry kind {kind!r}")
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._broken: dict[str, str] = {}

    def add(self, entry: Entry) -> None:
        """Add an entry; a name or alias taken by another plugin is refused naming both."""
        for name in (entry.name, *entry.aliases):
            if not NAME_RE.match(name):
                raise UsageError(
                    f"plugin {entry.origin.plugin!r} ({entry.origin.distribution}) registers the "
                    f"{self.kind[:-1]} name {name!r}, which is not a valid name: use lower-case "
                    "letters and digits, words joined by '-', '_' or '.'"
                )
            holder = self._owner(name)
            if holder is not None:
                raise UsageError(
                    f"the {self.kind[:-1]} name {name!r} is registered twice: by plugin "
                    f"{holder.origin.plugin!r} ({holder.origin.distribution} "
                    f"{holder.origin.version}) and by plugin {entry.origin.plugin!r} "
                    f"({entry.origin.distribution} {entry.origin.version}); uninstall one of them"
                )
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def mark_broken(self, plugin: str, error: str) -> None:
        """Remember that ``plugin`` failed, so that asking for its names can say why."""
        self._broken[plugin] = error

    def _owner(self, name: str) -> Entry | None:
        if name in self._entries:
            return self._entries[name]
        if name in self._aliases:
            return self._entries[self._aliases[name]]
        return None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return self._owner(name) is not None

    def get(self, name: str) -> Entry:
        """The entry for ``name`` or an alias; an unknown name gets did-you-mean suggestions."""
        entry = self._owner(name)
        if entry is not None:
            return entry
        singular = self.kind[:-1]
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        message = f"unknown {singular} {name!r}."
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        if self._broken:
            broken = "; ".join(f"{p}: {e}" for p, e in sorted(self._broken.items()))
            message += (
                f" Some plugins failed to load and may have provided it ({broken});"
                " run 'cvit-bench plugins' for details."
            )
            if not close:  # most likely the broken plugin's own name: its error is the answer
                raise PluginLoadError(message)
        else:
            message += f" Known {self.kind}: {', '.join(self.names()) or '(none)'}."
        raise UnknownNameError(message)

    def load(self, name: str) -> Any:
        return self.get(name).load()


class Registrar:
    """What a registration hook receives: adds entries on behalf of one plugin."""

    def __init__(self, registry: Registry, origin: Origin):
        self._registry = registry
        self._origin = origin

    def add(
        self,
        name: str,
        target: Any,
        *,
        description: str = "",
        aliases: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Register ``name``.

        Args:
            name: the name users type (``--method NAME``).
            target: the class, or ``"module:Class"`` imported when the name is first used.
            description: one line for ``cvit-bench list`` (keep it importable without torch).
            aliases: other names for the same entry (``llava-1.5-7b`` for ``llava-1.5``).
        """
        if not isinstance(target, str) and not callable(target):
            raise UsageError(
                f"plugin {self._origin.plugin!r} registers {name!r} with a target "
                f"that is neither a class nor a 'module:Class' string: {target!r}"
            )
        if not description and not isinstance(target, str):
            description = (target.__doc__ or "").strip().splitlines()[0] if target.__doc__ else ""
        self._registry.add(
            Entry(
                name=name,
                kind=self._registry.kind,
                target=target,
                description=description,
                aliases=tuple(aliases),
                origin=self._origin,
            )
        )
