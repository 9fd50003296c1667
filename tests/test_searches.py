"""Every built-in black-box search passes the same conformance checks."""

import math

import pytest

import methods
from bench import tasks
from bench.trial import run_trial
from methods.base import TrialOutcome, TrialStatus
from tests.search_conformance import SearchConformance


class TestRandom(SearchConformance):
    method = "random"


class TestOptunaTPE(SearchConformance):
    method = "optuna-tpe"


class TestOptunaGP(SearchConformance):
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


class TestSkoptGP(SearchConformance):
    method = "skopt-gp"
