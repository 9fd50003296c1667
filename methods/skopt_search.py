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
- Cost per trial (target < 5% of a digits trial, benchmarks/search_latency.py): skopt's own
  settings by default; `fast = true` trades search quality for time (see `FAST`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.space import Categorical, IntUniform, LogUniform, SearchSpace, Uniform
from methods.base import Method, MethodKind, Options, Search, TrialOutcome, TrialStatus

ACQ_FUNCS = ("EI", "PI", "LCB")
STATE = ("opt", "suggested", "pending", "failed", "estimator")  # what state_dict saves


@dataclass(frozen=True)
class SkoptOptions(Options):
    # Random proposals before the GP takes over. skopt's default, 10, would make a 10-trial
    # benchmark budget pure random search.
    n_initial_points: int = 5
    acq_func: str = "EI"
    # Cheaper per trial (`FAST`): ~12x less search time at 100 trials, < 5% of a digits trial;
    # regret after 30 trials on test functions 1-7x the default's (docs/performance.md).
    fast: bool = False

    def problems(self) -> list[str]:
        found = []
        if self.n_initial_points < 1:
            found.append(f"n_initial_points: must be >= 1, got {self.n_initial_points}")
        if self.acq_func not in ACQ_FUNCS:
            found.append(f"acq_func: {self.acq_func!r} is not one of {', '.join(ACQ_FUNCS)}")
        return found


@dataclass(frozen=True)
class GPSettings:
    """How much work skopt does per observation: `DEFAULT` (skopt's own settings) or, with the
    option `fast = true`, `FAST`."""

    acq_optimizer: str = "sampling"  # "sampling": the argmin of EI over n_points random points
    n_points: int = 2000
    acq_restarts: int = 5  # L-BFGS runs on EI, with acq_optimizer="lbfgs" only
    # The kernel hyperparameters are optimized (skopt's way: 3 starts) only when the observation
    # count has grown by this factor since they last were (`kernel_fits`); in between, the GP is
    # conditioned on each new observation with them held fixed. 1.0: at every observation.
    kernel_refit_growth: float = 1.0


# `fast = true` (benchmarks/search_latency.py --fast: skopt's defaults cost ~300 ms per trial
# at N = 100 against a ~450 ms digits trial; these < 5%):
# - the kernel optimized as skopt does, but only when the data have grown by 30% since it last
#   was (at 5, 7, 10, 13, 17, 23, 30, 39, 51, 67, 88, ... observations); in between, the GP
#   takes each new observation with the kernel held fixed (a Cholesky: ~2 ms instead of
#   ~100 ms at N = 100), as BO systems that refit on a schedule do: hyperparameters move little
#   once there are tens of points.
# - EI minimized by one L-BFGS run from the best of 1,000 sampled points. skopt's default is 5
#   runs from 10,000 points, up to ~40 ms per run (a Python round trip per gradient).
# - `FastGPR`: the same predictions, with a cheaper predictive variance.
# The regret this costs: docs/performance.md ("Black-box searches"), from --quality.
FAST = GPSettings(acq_optimizer="lbfgs", n_points=1000, acq_restarts=1, kernel_refit_growth=1.3)
DEFAULT = GPSettings(acq_optimizer="lbfgs", n_points=10000, acq_restarts=5)


def dimensions(space: SearchSpace) -> list[Any]:
    """The typed space as skopt dimensions, named and in the space's order."""
    # skopt and scikit-learn (seconds): imported only when a skopt search is built or restored
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


_fast_gpr: type | None = None


def __getattr__(name: str) -> Any:
    """`FastGPR` is built on first use, so importing this module does not import skopt; pickle
    finds it here too (as methods.skopt_search.FastGPR) when a checkpoint is restored."""
    global _fast_gpr
    if name != "FastGPR":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _fast_gpr is None:
        # skopt and scikit-learn (seconds): imported only when a skopt search is built or restored
        from sklearn.utils import check_array
        from skopt.learning import GaussianProcessRegressor

        class FastGPR(GaussianProcessRegressor):
            """skopt's GP, with the predictive variance of many points computed as
            sum((K* K^-1) * K*, axis 1), a BLAS product, instead of skopt's three-operand
            einsum that loops over points x N^2 (450 ms for 10,000 points at N = 100, ~90 ms
            this way). Equal up to rounding; gradients (L-BFGS on EI) take skopt's own path."""

            def predict(self, X, return_std=False, return_cov=False, return_mean_grad=False,
                        return_std_grad=False):
                if (not return_std or return_cov or return_mean_grad or return_std_grad
                        or not hasattr(self, "X_train_")):
                    return super().predict(X, return_std, return_cov, return_mean_grad,
                                           return_std_grad)
                X = check_array(X)
                k = self.kernel_(X, self.X_train_)
                mean = self.y_train_std_ * k.dot(self.alpha_) + self.y_train_mean_
                var = self.kernel_.diag(X) - np.einsum("ij,ij->i", k @ self.K_inv_, k)
                var[var < 0] = 0.0  # rounding, as in skopt (without its warning)
                return mean, np.sqrt(var * self.y_train_std_ ** 2)

        FastGPR.__module__, FastGPR.__qualname__ = __name__, "FastGPR"
        _fast_gpr = FastGPR
    return _fast_gpr


def gp_estimator(space: SearchSpace, seed: int) -> Any:
    """The GP skopt's `cook_estimator("GP", ...)` builds (constant x Matern 5/2, one length scale
    per dimension, normalized targets, fitted Gaussian noise, 2 random restarts), as FastGPR."""
    # skopt and scikit-learn (seconds): imported only when a skopt search is built or restored
    from skopt.learning.gaussian_process.kernels import ConstantKernel, HammingKernel, Matern
    from skopt.space import Space
    from skopt.utils import normalize_dimensions

    sk_space = Space(normalize_dimensions(dimensions(space)))
    n = sk_space.transformed_n_dims
    if sk_space.is_categorical:  # as cook_estimator: special only when all are categorical
        other = HammingKernel(length_scale=[1.0] * n)
    else:
        other = Matern(length_scale=[1.0] * n, length_scale_bounds=[(0.01, 100)] * n, nu=2.5)
    return __getattr__("FastGPR")(kernel=ConstantKernel(1.0, (0.01, 1000.0)) * other,
                                  normalize_y=True, noise="gaussian", n_restarts_optimizer=2,
                                  random_state=seed)


def held_fixed(est: Any, fitted: Any) -> Any:
    """`est` with `fitted`'s kernel hyperparameters, not optimized (the noise too: skopt zeroes
    it in kernel_ after a fit and keeps it in noise_)."""
    # skopt and scikit-learn (seconds): imported only when a skopt search is built or restored
    from sklearn.base import clone
    from skopt.learning.gaussian_process.kernels import WhiteKernel

    kernel = fitted.kernel_.k1 + WhiteKernel(noise_level=fitted.noise_)
    return clone(est).set_params(kernel=kernel, optimizer=None)


def kernel_fits(first: int, growth: float, last: int) -> set[int]:
    """The observation counts up to `last` at which the kernel is optimized: `first`, then each
    count at least `growth` times the previous one."""
    fits, n = set(), first
    while n <= last:
        fits.add(n)
        n = max(n + 1, math.ceil(n * growth - 1e-9))
    return fits


def penalty(losses: list[float]) -> float:
    """What a failed trial is told: see the module docstring."""
    if not losses:
        return 1.0
    worst, best = max(losses), min(losses)
    return worst + ((worst - best) or abs(worst) or 1.0)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Without skopt's and scikit-learn's warnings in the driver's log: "evaluated at point ...
    before, using random point", and kernel hyperparameters near a bound (ConvergenceWarning)."""
    # skopt and scikit-learn (seconds): imported only when a skopt search is built or restored
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def plain(d: Any, value: Any) -> Any:
    """A Python float, int or the declared choice in place of a numpy scalar."""
    if isinstance(d, Categorical):
        return next(c for c in d.choices if c == value)
    return int(value) if isinstance(d, IntUniform) else float(value)


class SkoptGPSearch(Search):
    def __init__(self, space: SearchSpace, seed: int, budget: int, options: SkoptOptions,
                 settings: GPSettings | None = None):
        # skopt and scikit-learn (seconds): imported only when a skopt search is built or restored
        from skopt import Optimizer

        settings = settings or (FAST if options.fast else DEFAULT)
        self.space, self.budget = dict(space), budget
        self.first_fit, self.growth = options.n_initial_points, settings.kernel_refit_growth
        # skopt's own GP by default; FastGPR (the same model, cheaper) when not every fit
        # optimizes the kernel: a fixed kernel needs an estimator built here.
        self.estimator = "GP" if self.growth == 1.0 else gp_estimator(space, seed)
        self.opt = Optimizer(dimensions(space), base_estimator=self.estimator,
                             acq_func=options.acq_func, n_initial_points=options.n_initial_points,
                             random_state=seed, model_queue_size=1,
                             acq_optimizer=settings.acq_optimizer,
                             acq_optimizer_kwargs={"n_points": settings.n_points,
                                                   "n_restarts_optimizer": settings.acq_restarts})
        self.suggested = 0
        self.pending: list[list] = []  # points suggested and not yet observed
        self.failed: list[int] = []  # indices in opt.yi of diverged or errored trials

    def suggest(self) -> dict[str, Any] | None:
        if self.suggested >= self.budget:
            return None
        with quiet():
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
        with quiet():
            self.opt.tell(point, float(outcome.val_loss) if ok else bad)
        self._plan_next_fit()

    def _plan_next_fit(self) -> None:
        """The next fit (this search's, or a liar copy's) optimizes the kernel at the counts of
        `kernel_fits`, else holds the latest fitted kernel fixed (see `FAST`)."""
        if self.growth == 1.0 or not self.opt.models:
            return
        n = len(self.opt.yi) + 1  # the count at the next fit
        self.opt.base_estimator_ = (
            self.estimator if n in kernel_fits(self.first_fit, self.growth, n)
            else held_fixed(self.estimator, self.opt.models[-1]))

    def state_dict(self) -> dict[str, Any]:  # deep copies: the state stays a snapshot
        return copy.deepcopy({k: getattr(self, k) for k in STATE})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        state.setdefault("estimator", self.estimator)  # saved before it was part of the state
        self.opt, self.suggested, self.pending, self.failed, self.estimator = (
            state[k] for k in STATE)


class SkoptGPMethod(Method):
    name = "skopt-gp"
    kind = MethodKind.BLACK_BOX
    model_based = True
    description = "scikit-optimize GP with expected improvement (ask/tell)"
    options_type = SkoptOptions

    def search(self, space: SearchSpace, seed: int, budget: int, options: SkoptOptions
               ) -> Search:
        return SkoptGPSearch(space, seed, budget, options)
