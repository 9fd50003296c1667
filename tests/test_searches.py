"""Every built-in black-box search passes the same conformance checks."""

import math

import numpy as np
import pytest

import methods
from bench import tasks
from bench.testing import SearchConformance
from bench.trial import run_trial
from methods.base import TrialOutcome, TrialStatus


class SlowImprovement:
    """A GP's proposals cost up to seconds each: its 16 seeds x 30 proposals against random
    search run in `tox -e slow`."""

    @pytest.mark.slow
    def test_a_model_based_search_beats_random_search(self):
        SearchConformance.test_a_model_based_search_beats_random_search(self)


class TestRandom(SearchConformance):
    method = "random"


class TestOptunaTPE(SearchConformance):
    method = "optuna-tpe"


class TestOptunaGP(SlowImprovement, SearchConformance):
    method = "optuna-gp"


@pytest.mark.parametrize("name", [m for m in ("optuna-tpe", "optuna-gp", "skopt-gp")
                                  if m in methods.all_methods()])
def test_bo_on_ridge_ends_closer_to_the_optimal_weight_decay_than_it_starts(name):
    """Real trials: SGD on synthetic-ridge at a fixed lr that converges, searching wd over its
    declared range; the choice is by validation loss."""
    task = tasks.get("synthetic-ridge")
    optimum = tasks.ridge_optimum(task.load(0))["wd"]
    method = methods.get(name)
    search = method.search({"wd": task.space["wd"]}, 0, 12, method.options_type())
    tried = []
    while (config := search.suggest()) is not None:
        record = run_trial({"task": task.name, "method": name, "hparams": {"lr": 0.05, **config},
                            "seed": 0, "epochs": 100, "device": "cpu"})[-1]
        status = TrialStatus.DIVERGED if record["diverged"] else TrialStatus.COMPLETED
        search.observe(config, TrialOutcome(status, record["val_loss"]))
        tried.append((record["val_loss"] if status is TrialStatus.COMPLETED else math.inf,
                      config["wd"]))
    best_wd = min(tried)[1]
    distance = lambda wd: abs(math.log(wd / optimum))  # noqa: E731
    assert len(tried) == 12 and distance(best_wd) < distance(tried[0][1]), tried


class TestOptunaGPFast(SlowImprovement, SearchConformance):
    method = "optuna-gp"
    options = {"fast": True}


class TestSkoptGP(SlowImprovement, SearchConformance):
    method = "skopt-gp"


class TestSkoptGPFast(SlowImprovement, SearchConformance):
    method = "skopt-gp"
    options = {"fast": True}


def test_skopt_fast_gp_predicts_what_skopt_predicts():
    """FastGPR only changes how the predictive variance is computed (methods/skopt_search.py)."""
    import numpy as np
    from skopt.learning import GaussianProcessRegressor

    from methods.skopt_search import gp_estimator

    rng = np.random.default_rng(0)
    X, points = rng.uniform(size=(40, 2)), rng.uniform(size=(500, 2))
    gp = gp_estimator({"lr": tasks.DIGITS.space["lr"], "wd": tasks.DIGITS.space["wd"]}, 0)
    gp.fit(X, np.sin(6 * X[:, 0]) + X[:, 1] ** 2)
    fast, slow = gp.predict(points, return_std=True), GaussianProcessRegressor.predict(
        gp, points, return_std=True)
    # the variance is prior - explained, near-equal terms: equal up to rounding at their scale
    prior = gp.kernel_.diag(points).max() * gp.y_train_std_ ** 2
    assert np.allclose(fast[0], slow[0])
    assert np.allclose(fast[1] ** 2, slow[1] ** 2, rtol=0, atol=1e-6 * prior)


def test_skopt_fast_optimizes_the_kernel_on_a_schedule_and_holds_it_in_between():
    from methods.skopt_search import kernel_fits

    assert sorted(kernel_fits(5, 1.3, 30)) == [5, 7, 10, 13, 17, 23, 30]
    m = methods.get("skopt-gp")
    search = m.search(tasks.DIGITS.space, 0, 40, m.options_type(fast=True))
    optimized, previous = [], None
    for n in range(1, 31):
        config = search.suggest()
        search.observe(config, TrialOutcome(TrialStatus.COMPLETED, config["lr"] + config["wd"]))
        if n >= 5:  # the GP's first fit is at n_initial_points = 5
            theta = search.opt.models[-1].kernel_.k1.theta  # k2: the noise, zeroed by skopt
            if previous is None or not np.array_equal(theta, previous):
                optimized.append(n)
            previous = theta
            assert len(search.opt.models[-1].X_train_) == n  # every observation is in the GP
    # a held kernel is unchanged; an optimized one moves (but may stay put now and then)
    assert set(optimized) <= kernel_fits(5, 1.3, 30) and len(optimized) >= 5, optimized


def test_optuna_gp_sampler_runs_with_the_bounded_acquisition_effort():
    from methods.optuna_search import GP_ACQ_EFFORT

    m = methods.get("optuna-gp")
    fast = m.search(tasks.DIGITS.space, 0, 4, m.options_type(fast=True)).study.sampler
    assert all(getattr(fast, k) == v for k, v in GP_ACQ_EFFORT.items())
    default = m.search(tasks.DIGITS.space, 0, 4, m.options_type()).study.sampler
    assert all(getattr(default, k) != v for k, v in GP_ACQ_EFFORT.items())  # Optuna's own
