"""Name -> plugin registries: built-ins plus whatever installed packages declare as entry points."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from bench.errors import ConfigError

T = TypeVar("T")


class Registry(dict):
    """Name -> plugin object; `broken` names the entry points that failed to load and why.
    A broken plugin costs only the runs that name it."""

    def __init__(self, found: Mapping, broken: Mapping[str, str]):
        super().__init__(found)
        self.broken = dict(broken)


@functools.lru_cache(maxsize=16)
def declared(group: str, path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    """The entry points of `group` that the installed packages on `path` declare. Scanning
    every package's metadata is the slow part of a lookup, so it happens once per process and
    path: a driver looks methods and tasks up for every trial."""
    return tuple(entry_points(group=group))


def load(group: str, builtins: Mapping[str, T], kind: type) -> Registry:
    """Built-ins, then every entry point of `group`. An entry point names an instance of `kind`
    or a zero-argument callable returning one; its registered name is the entry point's name."""
    found: dict[str, T] = dict(builtins)
    broken: dict[str, str] = {}
    for ep in declared(group, tuple(sys.path)):
        dist = ep.dist.name if ep.dist else "?"
        try:
            obj = ep.load()
            if not isinstance(obj, kind) and callable(obj):
                obj = obj()
        except Exception as exc:  # a broken plugin is named, not hidden
            first = (str(exc).strip().splitlines() or [""])[0]
            broken[ep.name] = (f"plugin {ep.name!r} from {dist} ({ep.value}) failed to load: "
                               f"{type(exc).__name__}: {first}")
            continue
        if not isinstance(obj, kind):
            broken[ep.name] = (f"plugin {ep.name!r} from {dist} is a {type(obj).__name__}, "
                               f"expected a {kind.__name__}")
        elif ep.name in found and found[ep.name] is not obj:
            broken[ep.name] = (f"plugin {ep.name!r} from {dist} clashes with an existing "
                               f"{group} entry of that name")
        else:
            found[ep.name] = obj
    return Registry(found, broken)


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    if name not in registry:
        raise ConfigError(unknown([name], registry, what)[0])
    return registry[name]


def unknown(names: list[str], registry: Mapping, what: str) -> list[str]:
    """One line per name not in `registry`: why its plugin is broken, or the valid names."""
    broken = getattr(registry, "broken", {})
    return [broken.get(n) or f"unknown {what} {n!r}; valid: {', '.join(sorted(registry))}"
            for n in names if n not in registry]


def warnings(*registries: Registry) -> list[str]:
    """One line per broken plugin, for a run or a listing that does not name it."""
    return [f"ohobench: skipped {line}" for r in registries for line in r.broken.values()]

