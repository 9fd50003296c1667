"""`sobol`: a black-box search proposing scrambled Sobol points, a quasi-random sequence that
covers the space more evenly than independent random draws."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.space import Categorical, Distribution, IntUniform, LogUniform, SearchSpace
from methods.base import Method, MethodKind, Search, TrialOutcome
from scipy.stats import qmc


def from_unit(dist: Distribution, u: float) -> Any:
    """The value of `dist` at quantile `u` in [0, 1)."""
    if isinstance(dist, Categorical):
        return dist.choices[min(int(u * len(dist.choices)), len(dist.choices) - 1)]
    if isinstance(dist, IntUniform):
        return min(dist.low + int(u * (dist.high - dist.low + 1)), dist.high)
    if isinstance(dist, LogUniform):
        value = math.exp(math.log(dist.low) + u * (math.log(dist.high) - math.log(dist.low)))
    else:  # Uniform
        value = dist.low + u * (dist.high - dist.low)
    return min(max(value, dist.low), dist.high)  # no rounding past a bound


class SobolSearch(Search):
    def __init__(self, space: SearchSpace, seed: int, budget: int):
        self.space, self.seed, self.budget = dict(space), seed, budget
        self.sampler = qmc.Sobol(d=len(self.space), scramble=True, seed=seed)
        self.suggested = 0

    def suggest(self) -> dict[str, Any] | None:
        if self.suggested >= self.budget:
            return None
        self.suggested += 1
        point = self.sampler.random(1)[0]
        return {name: from_unit(dist, float(u))
                for (name, dist), u in zip(self.space.items(), point, strict=True)}

    def observe(self, config: Mapping[str, Any], outcome: TrialOutcome) -> None:
        pass  # the sequence does not depend on results

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "suggested": self.suggested}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.suggested = state["seed"], state["suggested"]
        self.sampler = qmc.Sobol(d=len(self.space), scramble=True, seed=self.seed)
        self.sampler.fast_forward(self.suggested)


class SobolMethod(Method):
    name = "sobol"
    kind = MethodKind.BLACK_BOX
    description = "scrambled Sobol points (scipy.stats.qmc), quasi-random search"

    def search(self, space, seed, budget, options) -> Search:
        return SobolSearch(space, seed, budget)
