"""The ground truth for hypergradient tests: autodiff through the fully unrolled training, in
float64, written independently of methods/hypergrad.py. `check_hypergradients` runs it on any
update rule that reports its hypergradients the way the records name them."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

from methods.base import StepContext

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def tiny_mlp(act: str) -> nn.Module:
    torch.manual_seed(0)
    a = ACTIVATIONS[act]
    return nn.Sequential(nn.Linear(3, 5), a(), nn.Linear(5, 4), a(), nn.Linear(4, 2)).double()


def problem(act: str, steps: int, batch: int = 8, seed: int = 1, device: str = "cpu"):
    """A tiny model, its initial parameters, `steps` training batches and one validation batch,
    on `device` (drawn on the CPU, so every device gets the same numbers)."""
    model = tiny_mlp(act).to(device)
    gen = torch.Generator().manual_seed(seed)

    def draw():
        return (torch.randn(batch, 3, generator=gen, dtype=torch.float64).to(device),
                torch.randint(0, 2, (batch,), generator=gen).to(device))

    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return model, params, [draw() for _ in range(steps)], draw()


def loss_fn(model: nn.Module):
    def loss(params, batch, noise=None):
        return nn.functional.cross_entropy(functional_call(model, params, (batch[0],)), batch[1])
    return loss


def context(model: nn.Module, val_batch) -> StepContext:
    loss = loss_fn(model)
    return StepContext(loss=loss, val_loss=loss, val_batch=lambda: val_batch,
                       train_sample=lambda: val_batch, noisy_loss=None)


def run_rule(rule, model, params, batches, val_batch, hparams):
    """Train with `rule` on `batches`; returns the final state and parameters."""
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    ctx = context(model, val_batch)
    state = rule.init(params, hparams)
    for t, batch in enumerate(batches):
        ctx.step, ctx.epoch = t, 1
        state, params = rule.step(state, params, batch, ctx)
    return state, params


def unrolled_val_loss(model, params, batches, val_batch, lr, wd, momentum, group_of,
                      window_start: int = 0):
    """E_val(w_T) as a differentiable function of per-group lr, wd and momentum tensors.
    Steps before `window_start` see the hyperparameters as constants."""
    loss = loss_fn(model)
    names = list(params)
    w = [params[n].clone().requires_grad_(True) for n in names]
    b = None
    for t, batch in enumerate(batches):
        live = t >= window_start
        eta, lam = (lr, wd) if live else (lr.detach(), wd.detach())
        mu = None if momentum is None else (momentum if live else momentum.detach())
        g = torch.autograd.grad(loss(dict(zip(names, w, strict=True)), batch), w,
                                create_graph=True)
        d = [gi + lam[group_of[i]] * wi for i, (gi, wi) in enumerate(zip(g, w, strict=True))]
        if mu is None:
            b = d
        elif b is None:
            b = d
        else:
            b = [mu[group_of[i]] * bi + di for i, (bi, di) in enumerate(zip(b, d, strict=True))]
        w = [wi - eta[group_of[i]] * bi for i, (wi, bi) in enumerate(zip(w, b, strict=True))]
    return loss(dict(zip(names, w, strict=True)), val_batch), w


def true_hypergradients(model, params, batches, val_batch, hypers: dict[str, list[float]],
                        group_of, window_start: int = 0) -> dict[str, list[float]]:
    """d E_val(w_T) / d(each per-group hyperparameter), by autodiff of the unrolled run."""
    device = next(iter(params.values())).device
    tensors = {k: torch.tensor(v, dtype=torch.float64, device=device, requires_grad=True)
               for k, v in hypers.items()}
    value, _ = unrolled_val_loss(model, params, batches, val_batch, tensors["lr"], tensors["wd"],
                                 tensors.get("momentum"), group_of, window_start)
    grads = torch.autograd.grad(value, list(tensors.values()))
    return {k: g.tolist() for k, g in zip(tensors, grads, strict=True)}


def shared_hypergradients(model, params, batches, val_batch, hypers: dict[str, list[float]],
                          group_of) -> dict[str, list[float]]:
    """The shared influence's objective, by autodiff of the unrolled run: for each kind, shift
    every group's value by one scalar alpha; the (kind, g) hypergradient is d/dalpha of
    <grad E_val(w_T), w_T(alpha)> over group g's tensors, the gradient held fixed."""
    device = next(iter(params.values())).device
    out = {}
    for kind in hypers:
        alpha = torch.zeros((), dtype=torch.float64, device=device, requires_grad=True)
        tensors = {k: torch.tensor(v, dtype=torch.float64, device=device)
                   + (alpha if k == kind else 0) for k, v in hypers.items()}
        value, w = unrolled_val_loss(model, params, batches, val_batch, tensors["lr"],
                                     tensors["wd"], tensors.get("momentum"), group_of)
        val_grads = torch.autograd.grad(value, w, retain_graph=True)
        out[kind] = []
        for group in sorted(set(group_of)):
            inner = sum(torch.vdot(gv.detach().reshape(-1), wi.reshape(-1))
                        for gv, wi, g in zip(val_grads, w, group_of, strict=True) if g == group)
            out[kind].append(float(torch.autograd.grad(inner, alpha, retain_graph=True)[0]))
    return out


def reported_hypergradients(rule, act: str = "tanh", steps: int = 6,
                            hparams: dict[str, float] | None = None
                            ) -> tuple[dict[str, float], dict[str, list[float]], list[int]]:
    """Train the tiny float64 MLP with `rule` for `steps` steps; return its last reported
    hypergradients (records' `hg_<name>`), its hyperparameter values by kind and group (`lr` or
    `lr_0`, `lr_1`, ...) and each parameter tensor's group, as the records name them."""
    from methods.online import layer_groups

    hparams = hparams or {"lr": 0.3, "wd": 0.05}
    model, params, batches, val = problem(act, steps)
    state, _ = run_rule(rule, model, params, batches, val, hparams)
    values = rule.hparams(state)
    kinds: dict[str, dict[int, float]] = {}
    for name, value in values.items():
        kind, _, group = name.partition("_")
        kinds.setdefault(kind, {})[int(group) if group else 0] = value
    group_of, _ = layer_groups(list(params), max(len(v) for v in kinds.values()))
    reported = {k[3:]: v for k, v in rule.diagnostics(state).items() if k.startswith("hg_")}
    by_kind = {k: [g[i] for i in sorted(g)] for k, g in kinds.items()}
    return reported, by_kind, group_of


def check_hypergradients(rule, act: str = "tanh", steps: int = 6, rel: float = 1e-6,
                         hparams: dict[str, float] | None = None) -> None:
    """Assert that an exact rule's reported hypergradients (records' `hg_<name>`, after `steps`
    steps on a tiny float64 MLP) equal autodiff through the fully unrolled SGD training (with
    weight decay, and heavy-ball momentum when the rule has a `momentum` hyperparameter), to
    relative error `rel`. The rule must keep its hyperparameters fixed (e.g. meta_lr = 0):

        rule = methods.get("oho").update_rule(OHO_OPTIONS(meta_lr=0.0, meta_lr_wd=0.0))
        check_hypergradients(rule, act="relu")
    """
    reported, values, group_of = reported_hypergradients(rule, act, steps, hparams)
    if not reported:
        raise AssertionError("the rule reports no hypergradient (records' hg_<name> keys)")
    model, params, batches, val = problem(act, steps)
    expected = true_hypergradients(model, params, batches, val, values, group_of)
    for name, got in reported.items():
        kind, _, group = name.partition("_")
        want = expected[kind][int(group) if group else 0]
        if not (math.isfinite(got) and abs(got - want) <= rel * abs(want)):
            raise AssertionError(f"hypergradient {name}: the rule reports {got!r}, autodiff "
                                 f"through the unrolled training gives {want!r}")
