import math

import pytest
import torch
from torch import nn

from bench import harness, tasks
from bench.results import COLUMNS
from bench.trial import run_trial
from methods.base import StepContext
from methods.hd import HDOptions, HypergradientDescent
from tests.conftest import without_timing


def test_same_trial_twice_gives_identical_records(digits_trial):
    a, b = digits_trial(method="hd", epochs=3), digits_trial(method="hd", epochs=3)
    assert without_timing(a) == without_timing(b)
    assert without_timing(digits_trial(seed=4)) != without_timing(digits_trial(seed=3))


def test_one_record_per_epoch_with_losses_accuracy_and_timing(digits_trial):
    records = digits_trial(epochs=3)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for r in records:
        assert set(COLUMNS) - {"trial_id", "status", "node", "node_id", "search_seconds",
                               "retry_seconds", "experiment_start", "compute",
                               "trial_compute"} <= set(r)
        assert all(math.isfinite(r[k]) for k in ("train_loss", "val_loss", "test_loss"))
        assert 0 <= r["test_acc"] <= 1 and r["train_seconds"] > 0 and r["eval_seconds"] > 0
        assert r["hp_lr"] == 0.1 and r["hp_wd"] == 1e-4 and not r["diverged"]
    assert records[-1]["train_seconds_cum"] == pytest.approx(
        sum(r["train_seconds"] for r in records))
    assert records[-1]["train_loss"] < records[0]["train_loss"]


def test_train_eval_size_evaluates_a_fixed_training_subset(digits_trial):
    """The subset is the same in every trial on these splits (so a resumed or repeated trial
    reports the same training loss), its size is recorded, and validation and test stay whole."""
    full = digits_trial(epochs=1)[0]
    sub, again = (digits_trial(epochs=1, train_eval_size=300)[0] for _ in range(2))
    other_seed = digits_trial(epochs=1, train_eval_size=300, seed=4)[0]
    assert full["train_eval_size"] > 300 and sub["train_eval_size"] == 300
    assert sub["train_loss"] == again["train_loss"] != full["train_loss"]
    assert (sub["val_loss"], sub["test_loss"]) == (full["val_loss"], full["test_loss"])
    splits = tasks.DIGITS.load(0)
    x300, _ = harness.train_eval_split(splits.x_train, splits.y_train, 300)
    x300b, _ = harness.train_eval_split(splits.x_train, splits.y_train, 300)
    assert torch.equal(x300, x300b) and other_seed["train_eval_size"] == 300
    assert harness.train_eval_split(splits.x_train, splits.y_train, 0)[0] is splits.x_train


def test_an_update_rule_is_told_the_run_length():
    from methods.sgd import SGD

    seen = set()

    class Watching(SGD):
        def step(self, state, params, batch, ctx):
            seen.add((ctx.epoch, ctx.epochs, ctx.steps_per_epoch))
            return super().step(state, params, batch, ctx)

    splits = tasks.DIGITS.load(0)
    harness.train(tasks.DIGITS, Watching(), {"lr": 0.1, "wd": 0.0}, splits,
                  harness.TrainSpec(epochs=2, batch_size=500, seed=0))
    assert seen == {(1, 2, 3), (2, 2, 3)}  # 1149 training examples in batches of 500


def test_divergence_ends_the_trial_flagged_not_crashed():
    """Linear regression with lr far above 2 / curvature blows up exponentially."""
    records = run_trial({"task": "synthetic-ridge", "method": "random", "seed": 0,
                         "hparams": {"lr": 5.0, "wd": 0.0}, "epochs": 50, "device": "cpu"})
    assert len(records) < 50 and records[-1]["diverged"]
    assert not any(r["diverged"] for r in records[:-1])
    assert not math.isfinite(records[-1]["train_loss"])


def test_hd_moves_the_learning_rate(digits_trial):
    records = digits_trial(method="hd", epochs=3, options={"beta": 0.01})
    lrs = [r["hp_lr"] for r in records]
    assert len(set(lrs)) == 3 and lrs[0] != 0.1
    assert all(math.isfinite(r["hg_lr"]) for r in records)


# --- HD's hypergradient is the exact derivative of the one-step objective it defines -------

def tiny(act):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), act(), nn.Linear(5, 2)).double()


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_hd_hypergradient_matches_autodiff_through_the_step(act, momentum):
    """At step t, HD's hypergradient is d/dlr of L_t(w_{t-1} - lr d_{t-1}), with d_{t-1} the
    direction it stepped along (momentum included): compare with autograd, float64."""
    task = tasks.get("digits")
    task = tasks.Task(**{**task.__dict__, "make_model": lambda: tiny(act)})
    trainee = harness.Trainee(task, tiny(act))
    params = trainee.initial_params()
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, generator=gen, dtype=torch.float64),
                torch.randint(0, 2, (8,), generator=gen)) for _ in range(4)]
    rule = HypergradientDescent(HDOptions(beta=1e-2))
    state = rule.init(params, {"lr": 0.3, "wd": 0.01, "momentum": momentum})
    ctx = StepContext(loss=trainee.loss, val_loss=trainee.val_loss, val_batch=lambda: None,
                      train_sample=None, noisy_loss=None)
    prev_params, prev_lr = None, None  # w_{t-1} and the lr that moved it
    for t, batch in enumerate(batches):
        before = {k: v.detach().clone() for k, v in params.items()}
        lr_used = state.lr
        if t > 0:
            direction = state.previous_direction
            eta = torch.tensor(prev_lr, dtype=torch.float64, requires_grad=True)
            moved = {k: w - eta * d for (k, w), d in zip(prev_params.items(), direction,
                                                          strict=True)}
            (expected,) = torch.autograd.grad(trainee.loss(moved, batch), eta)
        state, params = rule.step(state, params, batch, ctx)
        if t > 0:
            assert state.hypergradient == pytest.approx(float(expected), rel=1e-10, abs=1e-14)
            assert state.lr == pytest.approx(lr_used - 1e-2 * float(expected), rel=1e-12)
        prev_params, prev_lr = before, state.lr


def test_hd_keeps_lr_positive_and_skips_nan_hypergradients():
    rule = HypergradientDescent(HDOptions(beta=1e6, lr_min=1e-5))
    w = {"w": torch.ones(3, requires_grad=True)}
    state = rule.init(w, {"lr": 0.1})
    ctx = StepContext(loss=lambda p, b: (p["w"] * b[0]).sum(), val_loss=None, val_batch=None,
                      train_sample=None, noisy_loss=None)
    x = torch.ones(3)
    for sign in (1, -1, 1):  # the gradient flips: lr is pushed hard below zero
        state, w = rule.step(state, w, (sign * x, None), ctx)
    assert state.lr == 1e-5  # driven down hard, held at the floor
    state, w = rule.step(state, w, (torch.full((3,), math.nan), None), ctx)
    assert state.skipped == 1 and state.lr == 1e-5


def test_a_string_categorical_is_recorded_as_a_string(digits_trial):
    """A search space may hold categorical strings (e.g. an activation a plugin task reads)."""
    records = digits_trial(hparams={"lr": 0.1, "wd": 1e-4, "activation": "relu"})
    assert [r["hp_activation"] for r in records] == ["relu", "relu"]
    from bench.results import table

    assert table(records)["hp_activation"].tolist() == ["relu", "relu"]
