"""`hd-momentum`: SGD with heavy-ball momentum whose learning rate and momentum coefficient
follow their one-step hypergradients on validation data: hypergradient descent (Baydin et al.
2018) taken on a validation batch, and extended to the momentum coefficient.

One step of SGD with weight decay lam and momentum mu, in torch's form, at lr eta:

    d_t     = grad L_train(w_t) + lam w_t
    b_{t+1} = mu b_t + d_t                  (b_1 = d_0: the first step has no momentum term)
    w_{t+1} = w_t - eta b_{t+1}

The one-step hypergradient holds w_t and b_t fixed and differentiates the validation loss
after the step, E(w_{t+1}); with v = grad E(w_{t+1}) on a fresh validation batch:

    dE/d eta = -<v, b_{t+1}>
    dE/d mu  = -eta <v, b_t>               (0 at the first step: no b_t yet)
    dE/d lam = -eta <v, w_t> = -eta (<v, w_{t+1}> + eta <v, b_{t+1}>)

Each tuned hyperparameter (`tune`, default lr and momentum) then moves against its
hypergradient through methods.online's safeguards: the MetaOptimizer (sgd or adam, clipping,
projection into the Bounds: lr in [lr_min, lr_max], wd in [0, wd_max], momentum in [0, 0.99];
a non-finite hypergradient skips the hyper-step and is counted), and FloorWatch (`lr_floored`
in the records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from methods.base import Batch, Params, StepContext
from methods.online import (
    OnlineMethod,
    OnlineOptions,
    OnlineRule,
    OnlineState,
    hyper_batch,
)

from ohobench_example.checkpoint import fields_of, restore


@dataclass(frozen=True)
class HDMomentumOptions(OnlineOptions):
    # The fields and checks of OnlineOptions (meta_optimizer, clip, clip_rms, lr_min, lr_max,
    # wd_max, hyper_every, validate_on, ...), with these defaults:
    momentum: float = 0.9  # the initial momentum, unless the trial's hyperparameters draw one
    tune: tuple[str, ...] = ("lr", "momentum")  # of lr, wd, momentum
    meta_lr: float = 1e-3  # hypergradient descent's step size for the lr (Baydin et al.)
    meta_lr_momentum: float = 1e-3


def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """<a, b> summed over parameter tensors."""
    return float(sum(torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True)))


class HDMomentum(OnlineRule):
    options: HDMomentumOptions

    def init(self, params: Params, hparams: Mapping[str, Any]) -> OnlineState:
        return OnlineState(**self.state_fields(params, hparams, groups=1))

    def step(self, state: OnlineState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[OnlineState, Params]:
        self.begin_step(state, ctx)  # the perturbation schedule, FloorWatch
        values = state.hypers.values
        lr, wd = values["lr"][0], values["wd"][0]
        mu = values["momentum"][0] if "momentum" in values else None  # None: plain SGD
        weights = list(params.values())
        grads = torch.autograd.grad(ctx.loss(params, batch), weights)
        with torch.no_grad():
            direction = torch._foreach_add(grads, weights, alpha=wd) if wd else list(grads)
            previous = state.buffers  # b_t, kept for dE/d mu
            if mu is None or previous is None:
                buffers = direction
            else:  # new tensors: b_t is still needed after the step
                buffers = torch._foreach_add(torch._foreach_mul(previous, mu), direction)
            torch._foreach_add_(weights, buffers, alpha=-lr)  # w_{t+1} = w_t - lr b_{t+1}
        if mu is not None:
            state.buffers = buffers
        if (ctx.step + 1) % self.options.hyper_every == 0:
            self._hyper_step(state, params, ctx, lr, buffers, previous)
        return state, params

    def _hyper_step(self, state: OnlineState, params: Params, ctx: StepContext, lr: float,
                    buffers: list[torch.Tensor], previous: list[torch.Tensor] | None) -> None:
        weights = list(params.values())
        v = torch.autograd.grad(ctx.val_loss(params, hyper_batch(self.options, ctx)), weights)
        with torch.no_grad():
            along = dot(v, buffers)  # <v, b_{t+1}>
            found = {"lr": -along}
            if "momentum" in self.options.tune:
                found["momentum"] = 0.0 if previous is None else -lr * dot(v, previous)
            if "wd" in self.options.tune:  # <v, w_t> = <v, w_{t+1}> + lr <v, b_{t+1}>
                found["wd"] = -lr * (dot(v, weights) + lr * along)
        state.hypergrads = [found[kind] for kind, _ in state.hypers.tuned]
        # Moves the tuned values against their hypergradients, within the bounds; a
        # non-finite hypergradient leaves them alone and counts a skipped hyper-step.
        state.meta.step(state.hypers, state.hypergrads)

    # hparams (lr, wd, momentum: every value, tuned or not), diagnostics (hg_<tuned name>,
    # skipped_hypersteps, clipped_hypersteps) and lr_floored come from OnlineRule.

    def state_dict(self, state: OnlineState) -> dict[str, Any]:
        return fields_of(state)

    def load_state_dict(self, state: OnlineState, saved: Any) -> OnlineState:
        """The saved state, refused in one line if it misses a field or tunes other
        hyperparameters than these options (a checkpoint of another configuration)."""
        restored = restore(OnlineState, saved, "hd-momentum")
        if restored.hypers.tuned != state.hypers.tuned:
            raise ValueError(f"hd-momentum: the checkpoint tunes "
                             f"{restored.hypers.tuned_names()}, these options "
                             f"{state.hypers.tuned_names()}")
        return restored


class HDMomentumMethod(OnlineMethod):
    name = "hd-momentum"
    description = ("SGD with momentum; lr and momentum follow one-step validation "
                   "hypergradients")
    options_type = HDMomentumOptions
    tunes = ("lr", "momentum")
    rule_type = HDMomentum

