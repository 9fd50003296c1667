"""Name -> plugin registries: built-ins plus whatever installed packages declare as entry points."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TypeVar

from bench.errors import ConfigError

T = TypeVar("T")


def load(group: str, builtins: Mapping[str, T], kind: type) -> dict[str, T]:
    """Built-ins, then every entry point of `group`. An entry point names an instance of `kind`
    or a zero-argument callable returning one; its registered name is the entry point's name."""
    found: dict[str, T] = dict(builtins)
    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist else "?"
        try:
            obj = ep.load()
            if not isinstance(obj, kind) and callable(obj):
                obj = obj()
        except Exception as exc:  # a broken plugin is named, not hidden
            raise ConfigError(f"plugin {ep.name!r} from {dist} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, kind):
            raise ConfigError(f"plugin {ep.name!r} from {dist} is a {type(obj).__name__}, "
                              f"expected a {kind.__name__}")
        if ep.name in found and found[ep.name] is not obj:
            raise ConfigError(f"plugin {ep.name!r} from {dist} clashes with an existing "
                              f"{group} entry of that name")
        found[ep.name] = obj
    return found


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    if name not in registry:
        raise ConfigError(f"unknown {what} {name!r}; valid: {', '.join(sorted(registry))}")
    return registry[name]


def unknown(names: list[str], registry: Mapping, what: str) -> list[str]:
    return [f"unknown {what} {n!r}; valid: {', '.join(sorted(registry))}"
            for n in names if n not in registry]

