"""Checks every black-box search must pass. A test class sets `method` and inherits them:

    class TestMySearch(SearchConformance):
        method = "my-search"
        options = {"some_option": 1}  # optional: the method's options (default: none)
"""

from __future__ import annotations

import math
import pickle

from bench.space import IntUniform, LogUniform, Uniform, contains
from methods import get
from methods.base import TrialOutcome, TrialStatus

# lr and wd as in the tasks, plus an integer, so every translation of the space is exercised.
SPACE = {"lr": LogUniform(1e-3, 0.5), "wd": Uniform(0.0, 1e-3), "step_size": IntUniform(1, 10)}
BUDGET = 8


def objective(config) -> float:
    """A smooth validation loss with its optimum inside SPACE (lr 0.05, wd 5e-4, step 4)."""
    return ((math.log10(config["lr"]) + 1.3) ** 2 + ((config["wd"] - 5e-4) * 1e3) ** 2
            + 0.01 * (config["step_size"] - 4) ** 2)


def run(search, count: int, fail_every: int = 0) -> list[dict]:
    """Suggest and observe `count` times, one trial at a time; every `fail_every`-th trial
    diverges (odd ones) or errors (even ones)."""
    seen = []
    for i in range(count):
        config = search.suggest()
        if config is None:
            break
        seen.append(config)
        if fail_every and (i + 1) % fail_every == 0:
            status = TrialStatus.DIVERGED if (i // fail_every) % 2 == 0 else TrialStatus.ERRORED
            search.observe(config, TrialOutcome(status))
        else:
            search.observe(config, TrialOutcome(TrialStatus.COMPLETED, objective(config)))
    return seen


class SearchConformance:
    method: str
    options: dict = {}  # noqa: RUF012 (read only)
    method: str

    def make(self, seed: int, budget: int = BUDGET):
        m = get(self.method)
        return m.search(SPACE, seed, budget, m.options_type(**self.options))

    def test_same_seed_same_proposals_and_another_seed_differs(self):
        a, b, c = (run(self.make(seed), BUDGET) for seed in (7, 7, 8))
        assert a == b and a != c

    def test_proposals_lie_inside_the_space_with_the_right_types(self):
        for config in run(self.make(1), BUDGET):
            assert contains(SPACE, config), config
            assert isinstance(config["step_size"], int) and isinstance(config["lr"], float)

    def test_budget_is_respected(self):
        search = self.make(2, budget=3)
        assert len(run(search, 10)) == 3 and search.suggest() is None

    def test_failures_are_told_and_the_search_goes_on(self):
        seen = run(self.make(3), BUDGET, fail_every=2)
        assert len(seen) == BUDGET and all(contains(SPACE, c) for c in seen)

    def test_state_round_trip_continues_the_same_sequence(self):
        search = self.make(4)
        run(search, 3, fail_every=3)
        pending = search.suggest()  # a trial still running at the checkpoint
        state = pickle.loads(pickle.dumps(search.state_dict()))
        search.observe(pending, TrialOutcome(TrialStatus.COMPLETED, objective(pending)))
        rest = run(search, BUDGET)
        restored = self.make(999)
        restored.load_state_dict(state)
        restored.observe(pending, TrialOutcome(TrialStatus.COMPLETED, objective(pending)))
        assert run(restored, BUDGET) == rest and len(rest) == BUDGET - 4

    def test_model_based_proposals_improve_on_the_first(self):
        seen = run(self.make(5, budget=16), 16)
        losses = [objective(c) for c in seen]
        assert min(losses) < losses[0]
