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
    # Cheaper per trial (`FAST`): ~8x less search time at 100 trials, but a 2-9x higher regret
    # after 30 trials on test functions (README, benchmarks/search_latency.py --quality).
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
    # Kernel hyperparameters warm-started from the last fit, with this many extra random starts
    # only when the observation count reaches n_initial_points * 2**j. None: skopt's own GP,
    # refitted from scratch (3 starts) at every observation.
    kernel_restarts: int | None = 2


# `fast = true` (benchmarks/search_latency.py --fast: skopt's defaults cost ~300 ms per trial
# at N = 100 against a ~540 ms digits trial; these ~40 ms, ~7%). Not the default, because the
# regret after 30 trials is 2-9x higher (--quality), most likely from the warm start below:
# - EI minimized by one L-BFGS run from the best of 2,000 sampled points. skopt's default is 5
#   runs from 10,000 points, ~40 ms per run (a Python round trip per gradient). Sampling alone
#   (no L-BFGS) saves another ~10 ms but has no local refinement: its regret after 30 trials
#   was up to 7x higher on branin2 and mixed4 (--quality).
# - the kernel (amplitude, length scales, noise) warm-started from the last fit, as Optuna's
#   GPSampler does: one L-BFGS run from a nearby optimum, ~15 ms at N = 100 instead of ~500 ms
#   for 3 cold starts. The random restarts that guard against a poor local optimum still run,
#   at doubling counts (5, 10, 20, 40, ...), so on average they cost O(1/N) per trial.
# - `FastGPR`: the same predictions, with a cheaper predictive variance.
FAST = GPSettings(acq_optimizer="lbfgs", n_points=2000, acq_restarts=1)
DEFAULT = GPSettings(acq_optimizer="lbfgs", n_points=10000, acq_restarts=5, kernel_restarts=None)


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


_fast_gpr: type | None = None


def __getattr__(name: str) -> Any:
    """`FastGPR` is built on first use, so importing this module does not import skopt; pickle
    finds it here too (as methods.skopt_search.FastGPR) when a checkpoint is restored."""
    global _fast_gpr
    if name != "FastGPR":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _fast_gpr is None:
        import numpy as np
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


def warm_started(est: Any, fitted: Any, restarts: int) -> Any:
    """`est`, its kernel starting from `fitted`'s hyperparameters (the noise too: skopt zeroes
    it in kernel_ after a fit and keeps it in noise_), bounds unchanged."""
    from sklearn.base import clone
    from skopt.learning.gaussian_process.kernels import WhiteKernel

    kernel = fitted.kernel_.k1 + WhiteKernel(noise_level=fitted.noise_)
    return clone(est).set_params(kernel=kernel, n_restarts_optimizer=restarts)


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
    def __init__(self, space: SearchSpace, seed: int, budget: int, options: SkoptOptions,
                 settings: GPSettings | None = None):
        from skopt import Optimizer

        settings = settings or (FAST if options.fast else DEFAULT)
        self.space, self.budget = dict(space), budget
        self.restarts, self.first_fit = settings.kernel_restarts, options.n_initial_points
        estimator = "GP" if self.restarts is None else gp_estimator(space, seed)
        self.opt = Optimizer(dimensions(space), base_estimator=estimator,
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
        self._warm_start()

    def _warm_start(self) -> None:
        """Let the next fit (this search's, or a liar copy's) start from the latest fitted
        kernel, with random restarts only at the doubling counts (see `FAST`)."""
        if self.restarts is None or not self.opt.models:
            return
        n, k = len(self.opt.yi) + 1, self.first_fit  # the count at the next fit
        while k < n:
            k *= 2
        self.opt.base_estimator_ = warm_started(self.opt.base_estimator_, self.opt.models[-1],
                                                self.restarts if k == n else 0)

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
