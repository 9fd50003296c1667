"""HPO methods as plugins. Built-ins are listed here; other installed packages add theirs
through the entry-point group `ohobench.methods` (an instance of `methods.base.Method`, or a
zero-argument callable returning one)."""

from __future__ import annotations

from bench import registry
from methods.base import Method, MethodKind
from methods.controller import ControllerMethod
from methods.hd import HDMethod
from methods.oho import MartheMethod, OHOLayerwiseMethod, OHOMethod, RTHOMethod
from methods.optuna_search import OptunaGPMethod, OptunaTPEMethod
from methods.random_search import RandomMethod
from methods.skopt_search import SkoptGPMethod
from methods.t1t2 import T1T2Method
from methods.trho import TRHOMethod

BUILTIN: dict[str, Method] = {m.name: m for m in (
    RandomMethod(), HDMethod(), OHOMethod(), OHOLayerwiseMethod(), RTHOMethod(), MartheMethod(),
    TRHOMethod(), T1T2Method(), ControllerMethod(), OptunaTPEMethod(), OptunaGPMethod(),
    SkoptGPMethod())}


def all_methods() -> dict[str, Method]:
    return registry.load("ohobench.methods", BUILTIN, Method)


def get(name: str) -> Method:
    return registry.lookup(all_methods(), name, "method")


__all__ = ["Method", "MethodKind", "all_methods", "get"]
