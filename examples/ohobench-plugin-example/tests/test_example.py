"""The plugin's tests: ohobench's conformance kit (bench.testing) on each part, then what is
particular to each. They need the package installed: the kit finds the parts by name, through
the entry points, as `ohobench run` does."""

import math

import numpy as np
import pytest
import torch
from bench.space import Categorical, IntUniform, LogUniform
from bench.testing import (
    SearchConformance,
    TaskConformance,
    UpdateRuleConformance,
    check_hypergradients,
)
from bench.testing.reference import problem, run_rule
from bench.trial import run_trial

from ohobench_example.cosine import lr_factor
from ohobench_example.hd_momentum import HDMomentum, HDMomentumOptions
from ohobench_example.sobol import SobolSearch


class TestSobol(SearchConformance):
    method = "sobol"


class TestCosineWarm(UpdateRuleConformance):
    method = "lr-cosine-warm"


class TestHDMomentum(UpdateRuleConformance):
    """The kit's checks, the exactness check included: with the hyperparameters frozen, each
    hg_<name> after 6 steps equals d E_val(w_6) / d <name> by autodiff of the unrolled float64
    run, <name> live over the last step only (horizon 1: a one-step hypergradient)."""

    method, exact, horizon = "hd-momentum", True, 1
    frozen = {"meta_lr": 0.0, "meta_lr_wd": 0.0, "meta_lr_momentum": 0.0,  # noqa: RUF012
              "tune": ("lr", "wd", "momentum")}  # every formula checked, wd's too


class TestWine(TaskConformance):
    task = "wine"


def test_the_first_sobol_points_fill_every_bin_of_every_dimension():
    """The first 2^k scrambled Sobol points put one value in each of 2^k equal bins of a
    dimension: on a log scale for LogUniform, one of each choice for a categorical."""
    space = {"lr": LogUniform(1e-4, 1.0), "act": Categorical(("relu", "tanh")),
             "width": IntUniform(1, 4)}
    search = SobolSearch(space, seed=0, budget=16)
    configs = [search.suggest() for _ in range(16)]
    bins = np.floor((np.log10([c["lr"] for c in configs]) + 4) / 4 * 16)
    assert sorted(bins) == list(range(16))
    assert sorted(c["act"] for c in configs) == ["relu"] * 8 + ["tanh"] * 8
    assert sorted(c["width"] for c in configs) == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert search.suggest() is None


def test_the_schedule_warms_up_then_decays_by_a_cosine():
    total, warmup = 100, 10
    factors = [lr_factor(t, total, warmup, 0.01) for t in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[warmup - 1] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(factors[warmup:], factors[warmup + 1:], strict=False))
    assert factors[55] == pytest.approx(0.01 + 0.99 * 0.5)  # halfway through the decay
    assert 0.01 < factors[-1] < 0.0105


def test_the_wine_models_activation_and_width_are_optional_dimensions():
    from ohobench_example.wine import WINE

    model = WINE.build_model({"activation": "tanh", "width": 8, "lr": 0.1})
    assert isinstance(model[1], torch.nn.Tanh) and model[0].out_features == 8
    records = run_trial({"task": "wine", "method": "lr-cosine-warm", "seed": 0, "epochs": 1,
                         "hparams": {"lr": 0.2, "wd": 0.0, "activation": "tanh"},
                         "device": "cpu"})
    assert records[-1]["hp_activation"] == "tanh"


def test_the_harness_tells_the_rule_the_run_length():
    """Trained 4 epochs on wine: the lr recorded at the end of each epoch follows the
    schedule over the whole run, which only the run's length makes possible."""
    records = run_trial({"task": "wine", "method": "lr-cosine-warm", "seed": 0, "epochs": 4,
                         "hparams": {"lr": 0.2, "wd": 0.0}, "device": "cpu"})
    per_epoch = 8  # 114 training wines in batches of 16
    expected = [0.2 * lr_factor(e * per_epoch - 1, 4 * per_epoch, per_epoch, 0.01)
                for e in (1, 2, 3, 4)]
    assert [r["hp_lr"] for r in records] == pytest.approx(expected)
    assert records[0]["hp_lr"] == pytest.approx(0.2) and records[-1]["hp_lr"] < 0.005
    assert math.isfinite(records[-1]["test_loss"])


FROZEN_HD = HDMomentumOptions(meta_lr=0.0, meta_lr_wd=0.0, meta_lr_momentum=0.0,
                               tune=("lr", "wd", "momentum"))


def test_hd_momentum_is_one_step_exact_not_exact_over_the_run():
    """The verifier tells the horizons apart: the one-step hypergradients are exact to rounding
    (the measured relative errors) and far from the derivative through the whole run."""
    errors = check_hypergradients(HDMomentum(FROZEN_HD), act="relu", horizon=1)
    assert set(errors) == {"lr", "wd", "momentum"} and max(errors.values()) < 1e-10, errors
    with pytest.raises(AssertionError, match="hypergradient lr: .* over the whole run"):
        check_hypergradients(HDMomentum(FROZEN_HD), act="relu")


def test_hd_momentum_moves_lr_and_momentum_within_their_bounds():
    """On wine, with large meta step sizes: both move, hg_ and hp_ recorded every epoch,
    momentum held in [0, 0.99] and lr in [lr_min, lr_max] by the Bounds."""
    records = run_trial({"task": "wine", "method": "hd-momentum", "seed": 0, "epochs": 3,
                         "hparams": {"lr": 0.05, "wd": 1e-4}, "device": "cpu",
                         "options": {"meta_lr": 0.05, "meta_lr_momentum": 0.5,
                                     "lr_max": 0.2}})
    assert not records[-1]["diverged"]
    for r in records:
        assert {"hp_lr", "hp_wd", "hp_momentum", "hg_lr", "hg_momentum"} <= set(r)
        assert 0 <= r["hp_momentum"] <= 0.99 and 1e-6 <= r["hp_lr"] <= 0.2
        assert math.isfinite(r["hg_lr"]) and math.isfinite(r["hg_momentum"])
    assert records[-1]["hp_momentum"] != 0.9 and records[-1]["hp_lr"] != 0.05
    assert records[-1]["hp_wd"] == 1e-4  # not tuned by default


def test_a_checkpoint_of_another_configuration_is_refused():
    model, params, batches, val = problem("tanh", 2)
    rule = HDMomentum(HDMomentumOptions())
    state, trained = run_rule(rule, model, params, batches, val, {"lr": 0.1, "wd": 0.0})
    other = HDMomentum(HDMomentumOptions(tune=("lr",)))
    with pytest.raises(ValueError, match=r"tunes \['lr', 'momentum'\], these options \['lr'\]"):
        other.load_state_dict(other.init(trained, {"lr": 0.1}), rule.state_dict(state))
    with pytest.raises(ValueError, match=r"misses \['meta'\]"):
        saved = {k: v for k, v in rule.state_dict(state).items() if k != "meta"}
        rule.load_state_dict(rule.init(trained, {"lr": 0.1}), saved)
