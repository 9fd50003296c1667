"""The ground truth for hypergradient tests: autodiff through the fully unrolled training, in
float64, written independently of methods/hypergrad.py. `check_hypergradients` runs it on any
update rule that reports its hypergradients the way the records name them."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

from methods.base import StepContext
from methods.online import layer_groups

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


MODELED = ("lr", "wd", "momentum")  # the hyperparameter kinds the unrolled SGD run has
DEFAULT_HPARAMS = {"lr": 0.3, "wd": 0.05}


def by_kind(values: dict[str, float]) -> dict[str, list[float]]:
    """Hyperparameter values as the records name them (`lr`, or `lr_0`, `lr_1`, ...: per layer
    group) by kind, one value per group."""
    kinds: dict[str, dict[int, float]] = {}
    for name, value in values.items():
        kind, _, group = name.partition("_")
        kinds.setdefault(kind, {})[int(group) if group.isdigit() else 0] = value
    return {k: [g[i] for i in sorted(g)] for k, g in kinds.items()}


def reported_hypergradients(rule, act: str = "tanh", steps: int = 6,
                            hparams: dict[str, float] | None = None
                            ) -> tuple[dict[str, float], dict[str, list[float]], list[int]]:
    """Train the tiny float64 MLP with `rule` for `steps` steps; return its last reported
    hypergradients (records' `hg_<name>`), its hyperparameter values by kind and group (`lr` or
    `lr_0`, `lr_1`, ...) and each parameter tensor's group, as the records name them."""
    model, params, batches, val = problem(act, steps)
    state, _ = run_rule(rule, model, params, batches, val, hparams or DEFAULT_HPARAMS)
    values = by_kind(rule.hparams(state))
    group_of, _ = layer_groups(list(params), max(len(v) for v in values.values()))
    reported = {k[3:]: v for k, v in rule.diagnostics(state).items() if k.startswith("hg_")}
    return reported, values, group_of


def one(values: list | None):
    """A kind's values as the records show them: the value itself when there is one group."""
    return values[0] if values and len(values) == 1 else values


def unverifiable(reported: dict[str, float], values: dict[str, list[float]]) -> str | None:
    """One line saying why the verifier cannot check these hypergradients, or None."""
    for name in reported:
        kind = name.partition("_")[0]
        if kind not in MODELED:
            return (f"the rule reports hg_{name}, but the verifier's unrolled run is SGD with "
                    f"weight decay and heavy-ball momentum: it differentiates {', '.join(MODELED)}"
                    f" only; leave `exact` False for a rule that tunes {kind!r}")
        if kind not in values:
            return (f"the rule reports hg_{name}, but its hparams() has no {kind!r} (it has "
                    f"{', '.join(sorted(values)) or 'nothing'}): the verifier needs the value of "
                    f"every hyperparameter whose hypergradient is reported, so return {kind!r} "
                    f"from hparams() even when it is 0 (methods.sgd.SGD.hparams leaves momentum "
                    f"out at momentum 0: an SGD subclass that reports hg_momentum must add it "
                    f"back, e.g. {{**super().hparams(state), 'momentum': state.momentum}})")
    missing = [k for k in ("lr", "wd") if k not in values]
    if missing:
        return (f"the rule's hparams() has no {' or '.join(map(repr, missing))} (it has "
                f"{', '.join(sorted(values)) or 'nothing'}): the verifier replays SGD with the "
                "rule's lr and wd, so hparams() must report both (wd = 0.0 included)")
    return None


def check_hypergradients(rule, act: str = "tanh", steps: int = 6, rel: float = 1e-6,
                         hparams: dict[str, float] | None = None, horizon: int | None = None
                         ) -> dict[str, float]:
    """Assert that an exact rule's reported hypergradients equal autodiff of the unrolled
    training, and return each one's relative error.

    What it compares: the rule trains a tiny float64 MLP (3-5-4-2, `act` between layers,
    cross-entropy) for `steps` steps on fixed training batches, its hyperparameters held fixed
    (frozen options, e.g. meta_lr = 0), starting from `hparams` (default lr 0.3, wd 0.05).
    Each `hg_<name>` in its `diagnostics` after the last step is compared with
    d E_val(w_T) / d <name>: the derivative of the validation loss at the final weights w_T (on
    the one validation batch that `ctx.val_batch()` returns) with respect to that
    hyperparameter, by torch.autograd through the whole run replayed independently: SGD with
    weight decay, and heavy-ball momentum (torch's form) when `hparams()` reports `momentum`,
    at the values `hparams()` reports (`lr_0`, `lr_1`, ...: per layer group). `horizon` is how
    many of the last steps see the hyperparameters as variables: None, all of them (a rule
    whose hypergradient is exact over the whole run, such as oho or rtho); 1, only the last
    (a one-step, greedy hypergradient such as hypergradient descent's); earlier steps see them
    as constants. A reported value passes when |got - want| <= rel |want|.

        rule = methods.get("oho").update_rule(OHO_OPTIONS(meta_lr=0.0, meta_lr_wd=0.0))
        check_hypergradients(rule, act="relu")

    Raises an AssertionError of one line: naming the first hypergradient that differs, with
    both values, the relative error and what was compared, or saying why the rule's reports
    cannot be checked (no `hg_` key; a `hg_<name>` without `<name>` in `hparams()`; a kind the
    unrolled SGD run does not have; hyperparameters that moved although frozen).
    """
    if horizon is not None and not 1 <= horizon <= steps:
        raise ValueError(f"horizon: must be in 1..steps = {steps} (or None: the whole run), "
                         f"got {horizon}")
    reported, values, group_of = reported_hypergradients(rule, act, steps, hparams)
    if not reported:
        raise AssertionError("the rule reports no hypergradient (records' hg_<name> keys)")
    problem_found = unverifiable(reported, values)
    if problem_found:
        raise AssertionError(problem_found)
    model, params, batches, val = problem(act, steps)
    start = by_kind(rule.hparams(rule.init(
        {k: v.clone().requires_grad_(True) for k, v in params.items()},
        hparams or DEFAULT_HPARAMS)))
    moved = [f"{k} {one(start.get(k))} -> {one(v)}" for k, v in values.items()
             if start.get(k) != v]
    if moved:
        raise AssertionError(
            f"the rule's hyperparameters moved during the check ({'; '.join(moved)}): the "
            "verifier replays the run at fixed values, so freeze them with options that stop "
            "every meta-step (`frozen`, e.g. meta_lr = 0 for each tuned kind)")
    live = steps if horizon is None else horizon
    expected = true_hypergradients(model, params, batches, val,
                                   {k: v for k, v in values.items() if k in MODELED}, group_of,
                                   window_start=steps - live)
    scope = ("the whole run" if live == steps else
             f"the last {live} step{'s' if live > 1 else ''} only (constant before)")
    errors = {}
    for name, got in reported.items():
        kind, _, group = name.partition("_")
        want = expected[kind][int(group) if group.isdigit() else 0]
        error = abs(got - want) / abs(want) if want else abs(got - want)
        errors[name] = error
        if not (math.isfinite(got) and abs(got - want) <= rel * abs(want)):
            raise AssertionError(
                f"hypergradient {name}: the rule reports {got!r}, autodiff through the unrolled "
                f"training gives {want!r} (relative error {error:.3g} > rel = {rel:g}); "
                f"compared: hg_{name} after step {steps} against d E_val(w_{steps}) / d {name}, "
                f"{name} a variable over {scope}, SGD"
                f"{' with momentum' if 'momentum' in values else ''} on a tiny {act} MLP in "
                "float64")
    return errors
