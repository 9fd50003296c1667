"""Optimizer families: schedules agree with torch's schedulers, the update is torch.optim's, and
the spaces are declared once and honoured by every family."""

import math

import numpy as np
import pytest
import torch

from bench import space, suite, tasks
from bench.errors import ConfigError
from bench.trial import run_trial
from methods import optimizers
from methods.sgd import SGD
from tests.conftest import without_timing

EPOCHS = 12
HP = {"lr": 0.2, "wd": 1e-4, "step_size": 3, "step_gamma": 0.5, "exp_gamma": 0.8}


@pytest.mark.parametrize("name, make", [
    ("fixed", lambda opt: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0)),
    ("step", lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)),
    ("exp", lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)),
    ("cosine", lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)),
])
def test_schedules_match_torch_schedulers_stepped_once_per_epoch(name, make):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=HP["lr"])
    scheduler = make(opt)
    family = optimizers.get(name)
    for epoch in range(1, EPOCHS + 1):
        ours = HP["lr"] * family.schedule(HP, epoch, EPOCHS)
        assert ours == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15), epoch
        opt.step()
        scheduler.step()


def test_every_family_declares_a_valid_space_with_its_extras():
    base = tasks.DIGITS.space
    for name, family in optimizers.FAMILIES.items():
        declared = optimizers.space(family, base, epochs=20)
        assert {"lr", "wd"} <= set(declared) and not space.problems(declared), name
        assert set(family.extra(20)) <= set(declared)
        for epochs in (2, 20, 100):
            assert not space.problems(optimizers.space(family, base, epochs)), (name, epochs)
    assert set(optimizers.get("step").extra(20)) == {"step_size", "step_gamma"}
    assert set(optimizers.get("exp").extra(20)) == {"exp_gamma"}
    assert set(optimizers.get("adam").extra(20)) == {"beta1"}
    # exp_gamma's range decays lr by at most 1e-3 over the run
    low = optimizers.get("exp").extra(20)["exp_gamma"].low
    assert low ** 19 == pytest.approx(1e-3, rel=1e-3)


def test_momentum_is_tuned_by_sgd_families_only_where_enabled():
    sgd, adam = optimizers.get("cosine"), optimizers.get("adam")
    assert "momentum" not in optimizers.space(sgd, tasks.DIGITS.space, 20)
    assert "momentum" in optimizers.space(sgd, tasks.DIGITS.space, 20, momentum=True)
    assert "momentum" not in optimizers.space(adam, tasks.DIGITS.space, 20, momentum=True)


def test_suite_overrides_flat_and_per_family():
    s = suite.build({"optimizers": ["fixed", "adam"],
                     "space": {"wd": [0.0, 1e-2], "adam": {"lr": [1e-4, 1e-2]}}})
    fixed, adam = s.space_for("digits", "fixed"), s.space_for("digits", "adam")
    assert fixed["wd"] == adam["wd"] == space.Uniform(0.0, 1e-2)
    assert fixed["lr"] == tasks.DIGITS.space["lr"] and adam["lr"] == space.LogUniform(1e-4, 1e-2)
    assert s.space_for("digits") == {"lr": tasks.DIGITS.space["lr"], "wd": fixed["wd"]}
    with pytest.raises(ConfigError, match="space.adam: unknown hyperparameter 'step_size'"):
        suite.build({"optimizers": ["adam"], "space": {"adam": {"step_size": [1, 3]}}})


def trial(optimizer, hparams, epochs=3, method="random"):
    return run_trial({"task": "digits", "method": method, "optimizer": optimizer,
                      "hparams": hparams, "seed": 5, "epochs": epochs, "device": "cpu"})


def test_fixed_family_trains_exactly_like_plain_sgd():
    """torch.optim.SGD through the family rule and the hand-written SGD rule agree."""
    from bench import harness

    task = tasks.DIGITS
    splits = task.load(0).to("cpu")
    spec = harness.TrainSpec(epochs=2, batch_size=32, seed=5)
    for hp in ({"lr": 0.1, "wd": 1e-3}, {"lr": 0.05, "wd": 1e-4, "momentum": 0.9}):
        ours = harness.train(task, optimizers.FamilyRule(optimizers.get("fixed"), 2), hp,
                             splits, spec)
        ref = harness.train(task, SGD(), hp, splits, spec)
        for a, b in zip(ours, ref, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
            assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)


def test_recorded_lr_follows_the_schedule_and_extras_are_recorded():
    records = trial("step", {"lr": 0.1, "wd": 0.0, "step_size": 2, "step_gamma": 0.5}, epochs=5)
    assert [r["hp_lr"] for r in records] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert all(r["optimizer"] == "step" and r["hp_step_size"] == 2 for r in records)
    cos = trial("cosine", {"lr": 0.1, "wd": 0.0}, epochs=4)
    expected = [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [r["hp_lr"] for r in cos] == pytest.approx(expected)


def test_adam_trains_and_differs_from_sgd_at_the_same_lr():
    hp = {"lr": 1e-3, "wd": 0.0, "beta1": 0.9}
    adam, sgd = trial("adam", hp), trial("fixed", {"lr": 1e-3, "wd": 0.0})
    assert adam[-1]["train_loss"] < adam[0]["train_loss"]
    # at lr 1e-3 Adam's normalized steps move much faster than SGD's
    assert adam[-1]["train_loss"] < 0.5 * sgd[-1]["train_loss"]
    assert adam[0]["hp_beta1"] == 0.9
    assert without_timing(trial("adam", hp)) == without_timing(adam)  # seeded


def test_online_methods_ignore_the_family_and_say_so():
    records = trial("adam", {"lr": 0.1, "wd": 0.0}, epochs=1, method="hd")
    assert records[0]["optimizer"] == "online"


def test_unknown_family_in_a_trial_config_is_named():
    with pytest.raises(ConfigError, match="unknown optimizer 'sgdr'; valid: adam, cosine"):
        trial("sgdr", {"lr": 0.1, "wd": 0.0})


def test_schedule_factors_are_pure_and_bounded():
    rng = np.random.default_rng(0)
    for _ in range(50):
        hp = {"step_size": int(rng.integers(1, 10)), "step_gamma": rng.uniform(0.1, 0.9),
              "exp_gamma": rng.uniform(0.7, 1.0)}
        for family in optimizers.FAMILIES.values():
            factors = [family.schedule(hp, e, 20) for e in range(1, 21)]
            assert factors[0] == 1.0 and all(0 <= f <= 1 for f in factors)
            assert factors == sorted(factors, reverse=True)  # never increases
