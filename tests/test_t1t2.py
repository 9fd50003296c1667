"""t1t2: its hypergradients are exactly those of the one-step objective E_val(w_{t+1}(wd, sigma))
with w_t and b_t held fixed (float64, input noise made deterministic), it respects its bounds,
and it trains a real task."""

import math

import pytest
import torch
from torch import nn

import methods
from bench.testing.reference import context, loss_fn, problem
from methods.base import StepContext
from methods.online import layer_groups, layer_of

REL = 1e-6
FROZEN = {"meta_lr_wd": 0.0, "meta_lr_noise": 0.0}
LR = 0.3


def rule_for(**options):
    m = methods.get("t1t2")
    opts = m.options_type(**options)
    assert not opts.problems()
    return m.update_rule(opts)


def deterministic_noise_context(model: nn.Module, val_batch, batch: int = 8) -> StepContext:
    """Like the harness, but the noise on each Linear's input is std * e with e drawn once."""
    gen = torch.Generator().manual_seed(7)
    current: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            e = torch.randn(batch, module.in_features, generator=gen, dtype=torch.float64)

            def hook(_, args, name=name, e=e):
                return (args[0] + current[name] * e,) if name in current else None

            module.register_forward_pre_hook(hook)
    loss = loss_fn(model)

    def noisy_loss(params, batch, noise):
        current.update(noise)
        try:
            return loss(params, batch)
        finally:
            current.clear()

    return StepContext(loss=loss, val_loss=loss, val_batch=lambda: val_batch,
                       train_sample=lambda: val_batch, noisy_loss=noisy_loss)


def run(rule, ctx, params, batches, hparams):
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    state = rule.init(params, hparams)
    for t, batch in enumerate(batches):
        ctx.step, ctx.epoch = t, 1
        state, params = rule.step(state, params, batch, ctx)
    return state, params


def one_step_objective(ctx, params, batches, val, wd, noise, momentum):
    """E_val(w_T) where only the last step sees wd and noise as variables: w_{T-1}, b_{T-1}
    are constants. Written independently of methods/t1t2.py."""
    names = list(params)
    group_of, _ = layer_groups(names, 0)
    layers = list(dict.fromkeys(layer_of(n) for n in names))
    w, b = [params[n].clone() for n in names], None
    for t, batch in enumerate(batches):
        live = t == len(batches) - 1
        lam, sig = (wd, noise) if live else (wd.detach(), noise.detach())
        w = [x.detach().requires_grad_(True) for x in w]
        stds = {layer: sig[j] for j, layer in enumerate(layers)}
        g = torch.autograd.grad(ctx.noisy_loss(dict(zip(names, w, strict=True)), batch, stds),
                                w, create_graph=live)
        d = [gi + lam[group_of[i]] * wi for i, (gi, wi) in enumerate(zip(g, w, strict=True))]
        b = d if b is None or not momentum else [momentum * x + y for x, y in zip(b, d,
                                                                                strict=True)]
        w = [wi - LR * bi for wi, bi in zip(w, b, strict=True)]
    return ctx.val_loss(dict(zip(names, w, strict=True)), val), w


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("hyper_every,steps", [(1, 4), (3, 6)])
def test_hypergradient_matches_one_step_autodiff(act, momentum, hyper_every, steps):
    model, params, batches, val = problem(act, steps)
    ctx = deterministic_noise_context(model, val)
    rule = rule_for(momentum=momentum, hyper_every=hyper_every, noise_init=0.1, **FROZEN)
    state, trained = run(rule, ctx, params, batches, {"lr": LR, "wd": 0.05})

    n = layer_groups(list(params), 0)[1]
    wd = torch.full((n,), 0.05, dtype=torch.float64, requires_grad=True)
    noise = torch.full((n,), 0.1, dtype=torch.float64, requires_grad=True)
    value, w_end = one_step_objective(ctx, params, batches, val, wd, noise, momentum)
    for got_w, want_w in zip(trained.values(), w_end, strict=True):
        torch.testing.assert_close(got_w.detach(), want_w.detach(), rtol=1e-12, atol=1e-12)
    expected = dict(zip(("wd", "noise"), torch.autograd.grad(value, [wd, noise]), strict=True))
    got = dict(zip(state.hypers.tuned, state.hypergrads, strict=True))
    assert len(got) == 2 * n
    for (kind, group), value in got.items():
        want = float(expected[kind][group])
        assert math.isfinite(value) and want != 0.0
        assert abs(value - want) <= REL * abs(want), (kind, group, value, want)


def test_wd_only_needs_no_noisy_loss():
    """Not tuning noise and no noise std: plain ctx.loss, and hg_wd_l = -lr <gv_l, w_t,l>."""
    model, params, batches, val = problem("tanh", 2)
    rule = rule_for(tune=("wd",), hyper_every=1, **FROZEN)
    state, _ = run(rule, context(model, val), params, batches, {"lr": LR, "wd": 0.05})
    ctx = deterministic_noise_context(model, val)
    n = layer_groups(list(params), 0)[1]
    wd = torch.full((n,), 0.05, dtype=torch.float64, requires_grad=True)
    value, _ = one_step_objective(ctx, params, batches, val, wd, torch.zeros(n).double(), 0.0)
    want = torch.autograd.grad(value, wd)[0].tolist()
    assert state.hypers.tuned == [("wd", g) for g in range(n)]
    assert state.hypergrads == pytest.approx(want, rel=REL)


def test_bounds_hold_and_nan_hypergradients_are_skipped():
    model, params, batches, val = problem("relu", 6)
    ctx = deterministic_noise_context(model, val)
    rule = rule_for(hyper_every=1, noise_init=0.1, meta_lr_wd=1e4, meta_lr_noise=1e4)
    nan_batch = (torch.full_like(batches[0][0], math.nan), batches[0][1])
    state, _ = run(rule, ctx, params, batches, {"lr": LR, "wd": 0.05})
    values = [v for k, vs in state.hypers.values.items() if k in ("wd", "noise") for v in vs]
    assert all(v >= 0 and math.isfinite(v) for v in values)
    assert 0.0 in values  # some bound was hit
    assert state.meta.skipped == 0
    ctx.step = len(batches)
    state, _ = rule.step(state, {k: v.clone().requires_grad_(True) for k, v in params.items()},
                         nan_batch, ctx)
    assert rule.diagnostics(state)["skipped_hypersteps"] > 0
    assert not any(math.isnan(v) for v in rule.hparams(state).values())


def test_options_are_checked():
    opts = methods.get("t1t2").options_type
    assert opts().hyper_every == 10 and opts().tune == ("wd", "noise")
    assert opts().meta_lr_for("noise") == 0.1 and opts().meta_lr_for("wd") == 1e-4
    found = opts(noise_init=-1.0, meta_lr_noise=-1.0, tune=("lr",)).problems()
    assert len(found) == 3 and any("noise_init" in p for p in found)


def test_trains_digits(digits_trial):
    records = digits_trial(method="t1t2", options={"noise_init": 0.05})
    assert len(records) == 2
    for r in records:
        assert math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"])
        assert not r["diverged"] and math.isfinite(r["hg_wd_0"])
        assert "hp_noise_0" in r and r["skipped_hypersteps"] == 0
    noise = [v for k, v in records[-1].items() if k.startswith("hp_noise_")]
    assert len(noise) == 3 and all(v >= 0 and v != 0.05 for v in noise)
