"""Random search over a typed space, seeded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bench import space as spaces
from bench.space import SearchSpace
from methods.base import Method, MethodKind, Search, TrialOutcome


class RandomSearch(Search):
    def __init__(self, space: SearchSpace, seed: int, budget: int):
        self.space, self.budget = dict(space), budget
        self.rng = np.random.default_rng(seed)
        self.suggested = 0
        self.history: list[tuple[dict, TrialOutcome]] = []

    def suggest(self) -> dict[str, Any] | None:
        if self.suggested >= self.budget:
            return None
        self.suggested += 1
        return spaces.sample(self.space, self.rng)

    def observe(self, config: Mapping[str, Any], outcome: TrialOutcome) -> None:
        self.history.append((dict(config), outcome))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "suggested": self.suggested,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.suggested, self.history = state["suggested"], list(state["history"])


class RandomMethod(Method):
    name = "random"
    kind = MethodKind.BLACK_BOX
    horizon_free = True
    description = "random search over the space of each optimizer family"
