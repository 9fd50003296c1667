"""Bayesian optimization with Optuna's samplers (TPE, GP), driven by ask/tell.

The same thin Search wraps any Optuna sampler; the runner turns it into a Ray Tune Searcher like
every other search (bench/ray_adapter.py), so save/restore and seeding work the same way for
all methods. Diverged and errored trials are told to Optuna as TrialState.FAIL: the samplers
leave them out of their models and the search goes on. The whole study (sampler RNG included)
is the saved state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.space import Categorical, IntUniform, LogUniform, SearchSpace, Uniform
from methods.base import Method, MethodKind, Options, Search, TrialOutcome, TrialStatus


@dataclass(frozen=True)
class OptunaOptions(Options):
    # Random proposals before the model takes over. Optuna's default, 10, would make a
    # 10-trial benchmark budget pure random search.
    n_startup_trials: int = 5

    def problems(self) -> list[str]:
        if self.n_startup_trials < 1:
            return [f"n_startup_trials: must be >= 1, got {self.n_startup_trials}"]
        return []


def distributions(space: SearchSpace) -> dict[str, Any]:
    """The typed space as Optuna distributions."""
    # optuna: imported only when an Optuna search is built (not on `import methods`)
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out = {}
    for name, d in space.items():
        if isinstance(d, LogUniform):
            out[name] = FloatDistribution(d.low, d.high, log=True)
        elif isinstance(d, Uniform):
            out[name] = FloatDistribution(d.low, d.high)
        elif isinstance(d, IntUniform):
            out[name] = IntDistribution(d.low, d.high)
        elif isinstance(d, Categorical):
            out[name] = CategoricalDistribution(list(d.choices))
        else:
            raise TypeError(f"{name}: no Optuna distribution for {d!r}")
    return out


class OptunaSearch(Search):
    def __init__(self, space: SearchSpace, budget: int, make_sampler: Callable[[], Any]):
        # optuna: imported only when an Optuna search is built (not on `import methods`)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.distributions = distributions(space)
        self.budget = budget
        self.study = optuna.create_study(direction="minimize", sampler=make_sampler())
        self.pending: dict[tuple, int] = {}  # proposed config -> Optuna trial number

    @staticmethod
    def _key(config: Mapping[str, Any]) -> tuple:
        return tuple(sorted(config.items()))

    def suggest(self) -> dict[str, Any] | None:
        # deepcopy=False: `study.trials` deep-copies every trial, ~20 ms per call at 100 trials.
        if len(self.study.get_trials(deepcopy=False)) >= self.budget:
            return None
        trial = self.study.ask(self.distributions)
        config = dict(trial.params)
        self.pending[self._key(config)] = trial.number
        return config

    def observe(self, config: Mapping[str, Any], outcome: TrialOutcome) -> None:
        # optuna: imported only when an Optuna search is built (not on `import methods`)
        from optuna.trial import TrialState

        number = self.pending.pop(self._key(config))
        if outcome.status is TrialStatus.COMPLETED:
            self.study.tell(number, outcome.val_loss)
        else:
            self.study.tell(number, state=TrialState.FAIL)

    def state_dict(self) -> dict[str, Any]:
        return {"study": self.study, "pending": dict(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.study, self.pending = state["study"], dict(state["pending"])


# GPSampler's work per suggest with `fast = true` (benchmarks/search_latency.py; target < 5% of
# a digits trial). Optuna 5.0's GPSampler has no public option for it: its constructor takes seed,
# independent_sampler, n_startup_trials, deterministic_objective (fixes the noise: a modelling
# choice, not a speed knob; our losses are noisy across seeds) and constraints; it already
# warm-starts the kernel fit from the last one. Its acquisition optimizer is set by attributes
# (`_optimize_acqf` is the documented hook for changing it): QMC samples, then L-BFGS local
# searches from the best sample, roulette picks and the best trial. At 100 trials the 10 local
# searches were ~60% of a suggest. 3 searches (best sample, 1 roulette pick, best trial) from
# 512 samples are used instead: ~95 ms per suggest at N = 100 instead of ~250 ms, still ~15% of
# a digits trial (the warm-started kernel fit alone is ~50 ms); regret after 30 trials within
# 0.3-4x of the defaults' (`python benchmarks/search_latency.py --quality`).
GP_ACQ_EFFORT = {"_n_local_search": 3, "_n_preliminary_samples": 512}


def bounded_gp_sampler(seed: int, n_startup_trials: int, effort: Mapping[str, int] | None = None
                       ) -> Any:
    """GPSampler with the acquisition effort `effort` (GP_ACQ_EFFORT; {}: Optuna's own)."""
    # optuna: imported only when an Optuna search is built (not on `import methods`)
    import optuna.samplers

    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    for name, value in (GP_ACQ_EFFORT if effort is None else effort).items():
        # Private attributes: fail loudly if an Optuna upgrade renames them.
        if not isinstance(getattr(sampler, name, None), int):
            raise RuntimeError(f"optuna {optuna.__version__}: GPSampler has no {name}; "
                               "update GP_ACQ_EFFORT in methods/optuna_search.py")
        setattr(sampler, name, value)
    return sampler


class OptunaMethod(Method):
    """A black-box method backed by the Optuna sampler class named `sampler`."""

    kind = MethodKind.BLACK_BOX
    model_based = True
    options_type = OptunaOptions
    sampler: ClassVar[str]

    def make_sampler(self, seed: int, options: OptunaOptions) -> Any:
        # optuna: imported only when an Optuna search is built (not on `import methods`)
        import optuna.samplers

        sampler = getattr(optuna.samplers, self.sampler)
        return sampler(seed=seed, n_startup_trials=options.n_startup_trials)

    def search(self, space: SearchSpace, seed: int, budget: int, options: OptunaOptions
               ) -> Search:
        return OptunaSearch(space, budget, lambda: self.make_sampler(seed, options))


class OptunaTPEMethod(OptunaMethod):
    name = "optuna-tpe"
    description = "Optuna's tree-structured Parzen estimator (TPESampler)"
    sampler = "TPESampler"


@dataclass(frozen=True)
class OptunaGPOptions(OptunaOptions):
    # GP_ACQ_EFFORT instead of Optuna's own: ~3x less search time at 100 trials; regret after
    # 30 trials 0.3-4x the defaults' (docs/performance.md, benchmarks/search_latency.py --quality).
    fast: bool = False


class OptunaGPMethod(OptunaMethod):
    name = "optuna-gp"
    description = "Optuna's Gaussian-process sampler (GPSampler, log expected improvement)"
    sampler = "GPSampler"
    options_type = OptunaGPOptions

    def make_sampler(self, seed: int, options: OptunaGPOptions) -> Any:
        return bounded_gp_sampler(seed, options.n_startup_trials,
                                  effort=None if options.fast else {})
