"""Typed search spaces: declared once, sampled here, translated by every backend."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def contains(self, value: Any) -> bool:
        return self.low <= value <= self.high

    def problems(self, name: str) -> list[str]:
        return _interval_problems(name, self.low, self.high, log=True)


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def contains(self, value: Any) -> bool:
        return self.low <= value <= self.high

    def problems(self, name: str) -> list[str]:
        return _interval_problems(name, self.low, self.high, log=False)


@dataclass(frozen=True)
class IntUniform:
    low: int
    high: int  # inclusive

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))

    def contains(self, value: Any) -> bool:
        return float(value).is_integer() and self.low <= value <= self.high

    def problems(self, name: str) -> list[str]:
        if not (isinstance(self.low, int) and isinstance(self.high, int)):
            return [f"{name}: integer range needs integers, got [{self.low}, {self.high}]"]
        if self.low > self.high:
            return [f"{name}: range [{self.low}, {self.high}] is inverted; need low <= high"]
        return []


@dataclass(frozen=True)
class Categorical:
    choices: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def problems(self, name: str) -> list[str]:
        return [] if self.choices else [f"{name}: categorical needs at least one choice"]


Distribution = LogUniform | Uniform | IntUniform | Categorical
SearchSpace = Mapping[str, Distribution]

# Where known hyperparameters may be sampled from, as a valid interval written out.
VALID = {
    "lr": (lambda v: v > 0, "learning rate must be positive"),
    "wd": (lambda v: v >= 0, "weight decay must be >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "momentum must lie in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "Adam's beta1 must lie in [0, 1)"),
    "step_gamma": (lambda v: 0 < v <= 1, "decay factor must lie in (0, 1]"),
    "exp_gamma": (lambda v: 0 < v <= 1, "decay factor must lie in (0, 1]"),
    "step_size": (lambda v: v >= 1, "step size must be >= 1 epoch"),
}


def problems(space: SearchSpace) -> list[str]:
    """Every problem with a space, as one-line messages."""
    found = []
    for name, dist in space.items():
        found += dist.problems(name)
        if name not in VALID or isinstance(dist, Categorical):
            continue
        ok, rule = VALID[name]
        if not all(_finite(v) and ok(v) for v in (dist.low, dist.high)):
            found.append(f"{name}: {rule}, got range [{dist.low}, {dist.high}]")
    return found


def sample(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    return {name: dist.sample(rng) for name, dist in space.items()}


def contains(space: SearchSpace, config: Mapping[str, Any]) -> bool:
    return set(config) == set(space) and all(space[k].contains(v) for k, v in config.items())


def override(space: SearchSpace, overrides: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Replace ranges from a suite file: `lr = [1e-4, 1.0]` keeps the declared kind of `lr`."""
    out, found = dict(space), []
    for name, value in overrides.items():
        if name not in space:
            found.append(f"space: unknown hyperparameter {name!r}; valid: {', '.join(space)}")
            continue
        dist = space[name]
        if isinstance(dist, Categorical):
            if not isinstance(value, list):
                found.append(f"space.{name}: give a list of choices, got {value!r}")
                continue
            unknown = [v for v in value if v not in dist.choices]
            if unknown:  # a model factory or a rule knows only the declared choices
                found.append(f"space.{name}: {', '.join(map(repr, unknown))} not among the "
                             f"declared choices; valid: {', '.join(map(repr, dist.choices))}")
                continue
            out[name] = Categorical(tuple(value))
        elif isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
            out[name] = replace(dist, low=value[0], high=value[1])
        else:
            found.append(f"space.{name}: give [low, high], got {value!r}")
    return out, found


def describe(dist: Distribution) -> str:
    if isinstance(dist, Categorical):
        return f"one of {list(dist.choices)}"
    kind = {LogUniform: "log-uniform", Uniform: "uniform", IntUniform: "int"}[type(dist)]
    return f"{kind}[{dist.low:g}, {dist.high:g}]"


def _interval_problems(name: str, low: Any, high: Any, log: bool) -> list[str]:
    if not (_finite(low) and _finite(high)):
        return [f"{name}: range [{low}, {high}] must be finite numbers"]
    if log and low <= 0:
        return [f"{name}: log-uniform range needs low > 0, got {low}"]
    if low >= high:
        return [f"{name}: range [{low}, {high}] is empty or inverted; need low < high"]
    return []


def _finite(x: Any) -> bool:
    return _is_number(x) and math.isfinite(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
