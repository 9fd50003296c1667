"""Bayesian optimization with scikit-optimize: a Gaussian process with expected improvement.

`skopt.Optimizer`, driven by ask/tell and seeded through `random_state`; the runner wraps it as a
Ray Tune Searcher like any other Search (bench/ray_adapter.py).
- Pending trials, constant liar (CL-min, skopt's own batch strategy, one point at a time): with
  none running, `ask()` gives the point chosen at the last `tell`; with some running, a throwaway
  copy (seeded from the optimizer's RNG) is told them at the best loss so far, then asked.
- Diverged and errored trials: a GP cannot take NaN, so they are told a penalty, the worst
  completed loss plus the spread of completed losses (|worst|, or 1, where that is 0; 1 before
  any completes). Failed points are relabelled at every `observe`, so early failures follow it.
- State: the Optimizer pickles whole (GP, RNG, next point) and continues the same sequence. Only
  the latest GP is kept (model_queue_size=1), so checkpoints stay small (~40 kB).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.space import Categorical, IntUniform, LogUniform, SearchSpace, Uniform
from methods.base import Method, MethodKind, Options, Search, TrialOutcome, TrialStatus

ACQ_FUNCS = ("EI", "PI", "LCB")
STATE = ("opt", "suggested", "pending", "failed")  # the attributes state_dict saves


@dataclass(frozen=True)
class SkoptOptions(Options):
    # Random proposals before the GP takes over. skopt's default, 10, would make a 10-trial
    # benchmark budget pure random search.
    n_initial_points: int = 5
    acq_func: str = "EI"

    def problems(self) -> list[str]:
        found = []
        if self.n_initial_points < 1:
            found.append(f"n_initial_points: must be >= 1, got {self.n_initial_points}")
        if self.acq_func not in ACQ_FUNCS:
            found.append(f"acq_func: {self.acq_func!r} is not one of {', '.join(ACQ_FUNCS)}")
        return found


def dimensions(space: SearchSpace) -> list[Any]:
    """The typed space as skopt dimensions, named and in the space's order."""
    from skopt import space as sk

    out = []
    for name, d in space.items():
        if isinstance(d, LogUniform | Uniform):
            prior = "log-uniform" if isinstance(d, LogUniform) else "uniform"
            out.append(sk.Real(d.low, d.high, prior=prior, name=name))
        elif isinstance(d, IntUniform):  # skopt's Integer needs low < high
            out.append(sk.Integer(d.low, d.high, name=name) if d.low < d.high
                       else sk.Categorical([d.low], name=name))
        elif isinstance(d, Categorical):
            out.append(sk.Categorical(list(d.choices), name=name))
        else:
            raise TypeError(f"{name}: no skopt dimension for {d!r}")
    return out


def penalty(losses: list[float]) -> float:
    """What a failed trial is told: see the module docstring."""
    if not losses:
        return 1.0
    worst, best = max(losses), min(losses)
    return worst + ((worst - best) or abs(worst) or 1.0)


def plain(d: Any, value: Any) -> Any:
    """A Python float, int or the declared choice in place of a numpy scalar."""
    if isinstance(d, Categorical):
        return next(c for c in d.choices if c == value)
    return int(value) if isinstance(d, IntUniform) else float(value)


class SkoptGPSearch(Search):
    def __init__(self, space: SearchSpace, seed: int, budget: int, options: SkoptOptions):
        from skopt import Optimizer

        self.space, self.budget = dict(space), budget
        self.opt = Optimizer(dimensions(space), base_estimator="GP", acq_func=options.acq_func,
                             n_initial_points=options.n_initial_points, random_state=seed,
                             model_queue_size=1)
        self.suggested = 0
        self.pending: list[list] = []  # points suggested and not yet observed
        self.failed: list[int] = []  # indices in opt.yi of diverged or errored trials

    def suggest(self) -> dict[str, Any] | None:
        if self.suggested >= self.budget:
            return None
        with warnings.catch_warnings():  # "evaluated at point ... before, using random point"
            warnings.simplefilter("ignore", UserWarning)
            if self.pending:
                liar = self.opt.copy(random_state=self.opt.rng.randint(0, 2**31 - 1))
                lie = min(self.opt.yi) if self.opt.yi else 0.0
                liar.tell(self.pending, [lie] * len(self.pending))
                point = liar.ask()
            else:
                point = self.opt.ask()
        config = {name: plain(d, v) for (name, d), v in zip(self.space.items(), point, strict=True)}
        self.suggested += 1
        self.pending.append(list(config.values()))
        return config

    def observe(self, config: Mapping[str, Any], outcome: TrialOutcome) -> None:
        point = [config[name] for name in self.space]
        self.pending = [p for p in self.pending if p != point]
        ok = outcome.status is TrialStatus.COMPLETED
        losses = [y for i, y in enumerate(self.opt.yi) if i not in self.failed]
        bad = penalty((losses + [outcome.val_loss]) if ok else losses)
        for i in self.failed:
            self.opt.yi[i] = bad
        if not ok:
            self.failed.append(len(self.opt.yi))
        self.opt.tell(point, float(outcome.val_loss) if ok else bad)

    def state_dict(self) -> dict[str, Any]:  # deep copies: the state stays a snapshot
        return copy.deepcopy({k: getattr(self, k) for k in STATE})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.opt, self.suggested, self.pending, self.failed = (state[k] for k in STATE)


class SkoptGPMethod(Method):
    name = "skopt-gp"
    kind = MethodKind.BLACK_BOX
    model_based = True
    description = "scikit-optimize GP with expected improvement (ask/tell)"
    options_type = SkoptOptions

    def search(self, space: SearchSpace, seed: int, budget: int, options: SkoptOptions
               ) -> Search:
        return SkoptGPSearch(space, seed, budget, options)
