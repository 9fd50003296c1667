"""`t1t2`: greedy one-step hypergradients (Luketina et al. 2016, T1-T2).

Inner dynamics, per parameter tensor of layer l (lr and momentum mu fixed):
    d = grad C1(w; sigma) + wd_l w,   b' = mu b + d  (b' = d without momentum),   w' = w - lr b'
where C1 is the training loss with N(0, sigma_l^2) noise added to the input of layer l. Only the
last step counts: with w and b held fixed,
    dw'/dwd_l = -lr w (on layer l),   dw'/dsigma_l = -lr d(grad C1)/dsigma_l,
so with gv = grad E_val(w') on a fresh validation batch,
    hg_wd_l = -lr <gv_l, w_l>,   hg_sigma_l = -lr d<gv, grad C1>/dsigma_l  (one extra backward).
A hyperparameter step every `hyper_every` training steps (the authors: 10); wd, sigma >= 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from methods import hypergrad as hg
from methods.base import Batch, Params, StepContext
from methods.online import (
    OnlineMethod,
    OnlineOptions,
    OnlineRule,
    OnlineState,
    hyper_batch,
    layer_of,
)


@dataclass(frozen=True)
class T1T2Options(OnlineOptions):
    hyper_every: int = 10  # the authors' value (~30% overhead; docs/performance.md: measured)
    meta_lr_wd: float = 1e-4  # the authors' step sizes, ~ the hyperparameter's magnitude
    meta_lr_noise: float = 1e-1
    noise_init: float = 0.0  # initial noise std on every layer's input
    tune: tuple[str, ...] = ("wd", "noise")

    TUNABLE = ("wd", "noise")

    def problems(self) -> list[str]:
        found = super().problems()
        for name in ("meta_lr_noise", "noise_init"):
            if not getattr(self, name) >= 0:
                found.append(f"{name}: must be >= 0, got {getattr(self, name)}")
        return found


@dataclass(kw_only=True)
class T1T2State(OnlineState):
    layers: list[str]  # layer name of each group (one group per layer): the noise std's key
    stds: dict[str, torch.Tensor] = field(default_factory=dict)  # _noise without leaves ...
    stds_of: list[float] = field(default_factory=list)  # ... made from these noise values


class GreedyOneStep(OnlineRule):
    options: T1T2Options

    def init(self, params: Params, hparams: Mapping[str, Any]) -> T1T2State:
        common = self.state_fields(params, hparams, 0, extra={"noise": self.options.noise_init})
        return T1T2State(**common, layers=list(dict.fromkeys(layer_of(n) for n in params)))

    def _noise(self, state: T1T2State, like: torch.Tensor, leaves: bool
               ) -> dict[str, torch.Tensor]:
        """Layer -> 0-d std. Layers with std 0 are left out, except as leaves on a hyper step
        (their derivative is needed there). Without leaves, reused until the stds move."""
        values = state.hypers.values["noise"]
        if not leaves and values == state.stds_of:
            return state.stds
        noise = {layer: torch.tensor(std, dtype=like.dtype, device=like.device,
                                     requires_grad=leaves)
                 for layer, std in zip(state.layers, values, strict=True) if std > 0 or leaves}
        if not leaves:
            state.stds, state.stds_of = noise, list(values)
        return noise

    def step(self, state: T1T2State, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[T1T2State, Params]:
        o = self.options
        self.begin_step(state, ctx)
        hyper = (ctx.step + 1) % o.hyper_every == 0
        tune_noise = hyper and "noise" in o.tune  # differentiate the gradient w.r.t. sigma
        weights = list(params.values())
        noise = self._noise(state, weights[0], leaves=tune_noise)
        loss = ctx.noisy_loss(params, batch, noise) if noise else ctx.loss(params, batch)
        grads = torch.autograd.grad(loss, weights, create_graph=tune_noise)
        terms = hg.StepTerms([w.detach() for w in weights], state.buffers, None,
                             *self._coefficients(state))
        # in place over the gradients (and buffers) unless the noise hypergradient needs them
        hg.set_direction(terms, grads, in_place=not tune_noise)
        if hyper:
            self._hyper_step(state, params, ctx, grads, terms, noise)
        del grads
        self._apply(state, weights, terms)  # after the hyper step: it needs w_t unchanged
        return state, params

    def _hyper_step(self, state: T1T2State, params: Params, ctx: StepContext, grads,
                    terms: hg.StepTerms, noise: Mapping[str, torch.Tensor]) -> None:
        o, h = self.options, state.hypers
        # gv at w_{t+1} (the same arithmetic as _apply), taken out of place
        ahead = [torch.sub(w, b, alpha=lr).requires_grad_(True)
                 for w, b, lr in zip(terms.weights, terms.new_buffers, terms.lr, strict=True)]
        val = ctx.val_loss(dict(zip(params, ahead, strict=True)), hyper_batch(o, ctx))
        gv = torch.autograd.grad(val, ahead)
        scaled = torch._foreach_mul(gv, list(terms.lr))  # lr gv
        per_kind = {}
        if "wd" in o.tune:
            wd = [torch.zeros((), dtype=gv[0].dtype, device=gv[0].device)] * h.n_groups
            for g, s, w in zip(state.group_of, scaled, terms.weights, strict=True):
                wd[g] = wd[g] - torch.vdot(s.reshape(-1), w.reshape(-1))
            per_kind["wd"] = torch.stack(wd)
        if "noise" in o.tune:
            # d<lr gv, grad C1>/dsigma: one backward through the gradient's graph
            stds = [noise[layer] for layer in state.layers]
            d = torch.autograd.grad(grads, stds, scaled, materialize_grads=True)
            per_kind["noise"] = -torch.stack(d)
        state.hypergrads = torch.cat([per_kind[k] for k in o.tune]).tolist()
        state.meta.step(h, state.hypergrads)


class T1T2Method(OnlineMethod):
    name = "t1t2"
    description = "greedy one-step hypergradients on per-layer wd and input noise (Luketina et al.)"
    options_type = T1T2Options
    tunes = ("wd", "noise")
    rule_type = GreedyOneStep
