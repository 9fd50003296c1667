"""A rule's state as a checkpoint keeps it: the harness saves `state_dict(state)` after every
epoch and a resumed trial continues from `load_state_dict(fresh, saved)`. The default hooks
keep the state object as it is and take it back once `UpdateRule.check_saved` found it whole;
these two show the other form, a dataclass state kept as a plain dict of its fields (readable
without this package's classes), refusing in one line a saved state that misses one."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

State = TypeVar("State")


def fields_of(state: Any) -> dict[str, Any]:
    """Every field of a dataclass state, by name (the values themselves: the harness saves
    them before training goes on)."""
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def restore(cls: type[State], saved: Any, rule: str) -> State:
    """`cls(**saved)`, after checking that `saved` holds every field of `cls` and no other."""
    if not isinstance(saved, Mapping):
        raise TypeError(f"{rule}: a saved rule state is a dict of {cls.__name__}'s fields, got "
                        f"a {type(saved).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [k for k in names if k not in saved]
    unknown = [k for k in saved if k not in names]
    if missing or unknown:
        raise ValueError(f"{rule}: not a checkpoint of this rule: the saved state misses "
                         f"{missing} and has unknown keys {unknown}")
    return cls(**saved)
