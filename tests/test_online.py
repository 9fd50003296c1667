"""Behaviour of the online methods in real runs: bounds, failures, records, ablation options."""

import math

import pytest
import torch

import methods
from bench import tasks
from bench.testing.reference import problem, run_rule
from bench.trial import run_trial
from methods.base import parse_options

FORWARD = ["oho", "oho-layerwise", "rtho", "marthe", "trho"]


def ridge_run(wd: float, seed: int) -> float:
    records = run_trial({"task": "synthetic-ridge", "method": "oho", "seed": seed, "epochs": 50,
                         "hparams": {"lr": 0.02, "wd": wd}, "device": "cpu",
                         "val_batch_size": 100, "options": {"meta_lr": 0.0, "meta_lr_wd": 0.05}})
    return records[-1]["hp_wd"]


@pytest.mark.parametrize("start", [1e-3, 5.0])
def test_oho_moves_weight_decay_toward_the_ridge_optimum(start):
    optimum = tasks.ridge_optimum(tasks.get("synthetic-ridge").load(0))["wd"]
    assert 1e-3 < optimum < 5.0
    for seed in range(2):
        end = ridge_run(start, seed)
        assert abs(math.log(end / optimum)) < 0.9 * abs(math.log(start / optimum)), (seed, end)


@pytest.mark.parametrize("method", FORWARD)
def test_hyperparameters_stay_in_bounds_and_nan_steps_are_skipped(method):
    model, params, batches, val = problem("relu", 6)
    huge = {"meta_lr": 1e3, "meta_lr_wd": 1e3, "meta_lr_momentum": 1e3, "lr_min": 1e-4,
            "momentum": 0.5, "tune": ["lr", "wd", "momentum"]}
    if method == "trho":
        huge["window"] = 2
    else:
        huge["hyper_every"] = 1
    m = methods.get(method)
    options, problems = parse_options(m.options_type, huge, method)
    assert not problems
    rule = m.update_rule(options)
    state, params = run_rule(rule, model, params, batches, val, {"lr": 0.3, "wd": 0.01})
    hp = rule.hparams(state)
    assert all(v >= 1e-4 for k, v in hp.items() if k.startswith("lr"))
    assert all(v >= 0 for k, v in hp.items() if k.startswith("wd"))
    assert all(0 <= v <= 0.99 for k, v in hp.items() if k.startswith("momentum"))
    nan_batch = (torch.full_like(batches[0][0], math.nan), batches[0][1])
    state, params = run_rule(rule, model, params, [nan_batch] * 2, val, {"lr": 0.3, "wd": 0.01})
    assert rule.diagnostics(state)["skipped_hypersteps"] > 0
    assert all(math.isfinite(v) for v in rule.hparams(state).values())


def test_records_carry_every_hyperparameter_hypergradient_and_influence_norm(digits_trial):
    records = digits_trial(method="oho-layerwise", epochs=2)
    layers = [f"{kind}_{g}" for kind in ("lr", "wd") for g in range(3)]
    for r in records:
        for name in layers:
            assert math.isfinite(r[f"hp_{name}"]) and math.isfinite(r[f"hg_{name}"])
            assert r[f"influence_{name}"] > 0
        assert r["skipped_hypersteps"] == 0
    assert records[-1]["hp_lr_0"] != records[0]["hp_lr_0"]


def test_grouped_oho_has_one_lr_and_wd_per_group(digits_trial):
    record = digits_trial(method="oho", epochs=1, options={"groups": 2})[-1]
    assert {k for k in record if k.startswith("hp_")} == {"hp_lr_0", "hp_lr_1", "hp_wd_0",
                                                           "hp_wd_1"}


def test_groups_beyond_the_layer_count_is_a_clear_error(digits_trial):
    with pytest.raises(ValueError, match="groups=7, but the model has 3 layers"):
        digits_trial(method="oho", epochs=1, options={"groups": 7})


def test_perturbation_sets_lr_at_the_given_epoch_and_oho_moves_it_again(digits_trial):
    records = digits_trial(method="oho", epochs=3, hparams={"lr": 0.05, "wd": 0.0},
                           options={"perturb_epochs": [2], "perturb_lr": 0.2,
                                    "perturb_wd_zero": True, "meta_lr": 1e-4})
    assert records[0]["hp_lr"] < 0.2 and records[1]["hp_lr"] != 0.2
    assert abs(records[1]["hp_lr"] - 0.2) < abs(records[0]["hp_lr"] - 0.2)


def test_reset_and_validate_on_train_change_the_run(digits_trial):
    base = digits_trial(method="oho", epochs=1)[-1]
    reset = digits_trial(method="oho", epochs=1, options={"reset_every": 5})[-1]
    on_train = digits_trial(method="oho", epochs=1, options={"validate_on": "train"})[-1]
    assert reset["influence_resets"] == base["step"] // 5 and base["influence_resets"] == 0
    assert reset["influence_lr"] < base["influence_lr"]
    assert on_train["hp_lr"] != base["hp_lr"]


def test_marthe_adapts_its_discount(digits_trial):
    record = digits_trial(method="marthe", epochs=1, options={"adapt_discount": True})[-1]
    assert 0 <= record["discount"] <= 1 and record["discount"] != 0.99


@pytest.mark.parametrize("bad,message", [
    ({"meta_optimizer": "rmsprop"}, "'rmsprop' is not one of sgd, adam"),
    ({"tune": ["lr", "beta"]}, "tune: ['lr', 'beta']"),
    ({"discount": 1.5}, "discount: must be in [0, 1]"),
    ({"hvp": "approx"}, "'approx' is not one of exact, fd"),
    ({"perturb_epochs": [3]}, "set perturb_lr > 0 or perturb_wd_zero"),
    ({"perturb_epochs": [0], "perturb_lr": 0.1}, "epochs are integers >= 1"),
    ({"hyper_every": 0}, "hyper_every: must be >= 1"),
])
def test_bad_options_are_named(bad, message):
    _, problems = parse_options(methods.get("oho").options_type, bad, "oho")
    assert any(message in p for p in problems), problems
