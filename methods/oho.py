"""Forward-mode online HPO: one recursion, four methods.

- `oho` (Im, Savin & Cho): the influence advances every step and so do the hyperparameters;
  `groups=K` splits consecutive layers into K sets, each with its own (lr, wd).
- `oho-layerwise`: one (lr, wd) per layer.
- `rtho` (Franceschi et al. 2017): the same recursion with a hyperparameter step every Delta
  steps (the hyper-batch).
- `marthe` (Donini et al. 2020): the influence is discounted, Z <- mu_d A Z + B, with mu_d fixed
  or adapted online.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from methods import hypergrad as hg
from methods.base import Batch, Params, StepContext
from methods.online import (
    GroupedOptions,
    OnlineMethod,
    OnlineRule,
    OnlineState,
    hyper_batch,
)

HVP_MODES = ("exact", "fd")
INFLUENCES = ("exact", "shared")
JUMP_WARMUP = 20  # steps after a start or reset in which the influence may grow freely
JUMP_MEMORY = 0.99  # the jump test compares each norm with its running mean over ~100 steps


@dataclass(frozen=True)
class ForwardOptions(GroupedOptions):
    reset_every: int = 0  # zero the influence every n steps (paper 6.4); 0 = never
    discount: float = 1.0  # MARTHE's mu_d in [0, 1]; 1 = undiscounted (OHO, RTHO)
    adapt_discount: bool = False  # MARTHE's online adaptation of mu_d
    hvp: str = "exact"  # "fd": central finite differences, for comparison only
    fd_radius: float = 1e-3
    # Influence vectors per batched HVP. 0 = auto: all at once on CUDA; one at a time on CPU,
    # which was faster there on the MNIST MLP and needs the least memory.
    hvp_chunk: int = 0
    # Zero the influence, and skip that step's hyper-step, when an influence norm exceeds this
    # factor times its running mean (a loss spike); 0 = off. See docs/long-horizons.md.
    jump_reset: float = 3.0
    # On a jump reset, also multiply every lr by this (1 = leave lr alone). A jump marks a
    # catapult, lr x lambda_max > 2; without the backoff, the fresh influence's greedy
    # hypergradient raised lr again (docs/long-horizons.md).
    jump_backoff: float = 0.5
    # With groups != 1: "exact", one influence vector per (kind, group), one HVP each; "shared",
    # one per kind with each group's slice advanced by its own hyperparameters, as the OHO
    # authors' layerwise code (2 HVPs whatever the groups). See docs/methods.md (oho-layerwise).
    influence: str = "exact"

    def problems(self) -> list[str]:
        found = super().problems()
        if self.influence not in INFLUENCES:
            found.append(f"influence: {self.influence!r} is not one of {', '.join(INFLUENCES)}")
        if self.reset_every < 0:
            found.append(f"reset_every: must be >= 0 (0 = never), got {self.reset_every}")
        if not 0 <= self.discount <= 1:
            found.append(f"discount: must be in [0, 1], got {self.discount}")
        if self.hvp not in HVP_MODES:
            found.append(f"hvp: {self.hvp!r} is not one of {', '.join(HVP_MODES)}")
        if not self.fd_radius > 0:
            found.append(f"fd_radius: must be > 0, got {self.fd_radius}")
        if not (self.jump_reset == 0 or 1 < self.jump_reset < float("inf")):
            found.append(f"jump_reset: must be a finite factor > 1, or 0 (off), got "
                         f"{self.jump_reset}")
        if not 0 < self.jump_backoff <= 1:
            found.append(f"jump_backoff: must be in (0, 1] (1 = off), got {self.jump_backoff}")
        if self.hvp_chunk < 0:
            found.append(f"hvp_chunk: must be >= 0 (0 = all), got {self.hvp_chunk}")
        return found


@dataclass(kw_only=True)
class ForwardState(OnlineState):
    v: list[torch.Tensor]  # dw/dlambda_k, shape (K, *param.shape) per parameter tensor
    # The scalar each influence vector follows, and the group of each parameter tensor as the
    # influence sees it: the tuned scalars and group_of ("exact"), or one kind each over a
    # single group ("shared": dw/dlambda summed over the groups).
    follows: list[tuple[str, int]]
    follows_group_of: list[int]
    p: list[torch.Tensor] | None  # db/dlambda_k (momentum buffers), same shapes
    discount: float = 1.0
    discount_sum: float = 0.0
    resets: int = 0
    jump_resets: int = 0
    norm_mean: list[float] | None = None  # running mean of the influence norms (jump_reset)
    since_reset: int = 0


class ForwardHypergradient(OnlineRule):
    options: ForwardOptions

    def init(self, params: Params, hparams: Mapping[str, Any]) -> ForwardState:
        common = self.state_fields(params, hparams, self.options.groups)
        follows, follows_group_of = common["hypers"].tuned, common["group_of"]
        if self.options.influence == "shared":
            follows = [(kind, 0) for kind in dict.fromkeys(k for k, _ in follows)]
            follows_group_of = [0] * len(follows_group_of)
        k = len(follows)
        v = [torch.zeros(k, *w.shape, dtype=w.dtype, device=w.device) for w in params.values()]
        p = [torch.zeros_like(x) for x in v] if "momentum" in common["hypers"].values else None
        return ForwardState(**common, v=v, p=p, discount=self.options.discount, follows=follows,
                            follows_group_of=follows_group_of)

    def step(self, state: ForwardState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[ForwardState, Params]:
        o = self.options
        self.begin_step(state, ctx)
        weights = list(params.values())
        exact = o.hvp == "exact"
        grads = torch.autograd.grad(ctx.loss(params, batch), weights, create_graph=exact)
        terms = hg.StepTerms([w.detach() for w in weights], state.buffers, None,
                             *self._coefficients(state))
        if state.discount != 1.0:
            for x in state.v + (state.p or []):
                x.mul_(state.discount)

        def grad_at(ws):
            shifted = dict(zip(params, ws, strict=True))
            return torch.autograd.grad(ctx.loss(shifted, batch), ws)

        k = len(state.follows)
        size = o.hvp_chunk or (k if weights[0].is_cuda else 1)
        for start in range(0, k, size):
            chunk = slice(start, min(start + size, k))
            vs = [x[chunk] for x in state.v]
            if exact:
                hv = hg.hvp(grads, weights, vs)
            else:
                hv = hg.fd_hvp(lambda ws: grad_at([w.requires_grad_() for w in ws]), weights,
                               vs, o.fd_radius)
            hg.advance_influence(state.v, state.p, hv, chunk, terms, state.follows,
                                 state.follows_group_of)
        values = [g.detach() for g in grads]
        del grads  # frees the graph; the direction is then written over the gradients
        hg.set_direction(terms, values, in_place=True)
        hg.add_direction_term(state.v, terms.new_buffers, state.follows, state.follows_group_of)

        self._apply(state, weights, terms)

        if o.jump_reset and self._jumped(state):
            state.jump_resets += 1
            self._reset(state)
            self._back_off(state)
        elif (ctx.step + 1) % o.hyper_every == 0:
            self._hyper_step(state, params, ctx, terms)
        if o.reset_every and (ctx.step + 1) % o.reset_every == 0:
            self._reset(state)
        return state, params

    def _hyper_step(self, state: ForwardState, params: Params, ctx: StepContext,
                    terms: hg.StepTerms) -> None:
        weights = list(params.values())
        val_grads = torch.autograd.grad(ctx.val_loss(params, hyper_batch(self.options, ctx)),
                                        weights)
        if state.follows == state.hypers.tuned:
            state.hypergrads = hg.hypergradients(state.v, val_grads).tolist()
        else:
            state.hypergrads = hg.sliced_hypergradients(
                state.v, val_grads, [k for k, _ in state.follows], state.hypers.tuned,
                state.group_of).tolist()
        if not state.meta.step(state.hypers, state.hypergrads):
            if not all(torch.isfinite(x).all() for x in state.v):
                self._reset(state)  # a blown-up influence would poison every later step
            return
        if self.options.adapt_discount:
            self._adapt_discount(state, val_grads, terms)

    def _adapt_discount(self, state: ForwardState, val_grads, terms: hg.StepTerms) -> None:
        """MARTHE's heuristic (Donini et al. 2020, as in the authors' adatune code):
        mu <- clip(lr / <grad E_val, d_t>, 0, 1) ** (1 / (1 + sum of past mu))."""
        alignment = float(hg.hypergradients([d.unsqueeze(0) for d in terms.new_buffers],
                                            val_grads)[0])
        lr = sum(state.hypers.values["lr"]) / state.hypers.n_groups
        ratio = lr / alignment if alignment else 1.0
        state.discount_sum += state.discount
        state.discount = min(max(ratio, 0.0), 1.0) ** (1.0 / (1.0 + state.discount_sum))

    def _jumped(self, state: ForwardState) -> bool:
        """Whether, JUMP_WARMUP steps after the start or the last reset, an influence norm
        exceeds `jump_reset` times its running mean (bias-corrected, so that steady growth
        from zero, norm ~ t, stays below 2x). A non-finite influence is left to the hyper-step,
        which skips and resets."""
        norms = hg.influence_norms(state.v).tolist()
        if not all(math.isfinite(n) for n in norms):
            return False
        state.since_reset += 1
        mean = state.norm_mean or [0.0] * len(norms)
        if state.since_reset > JUMP_WARMUP:
            correction = 1 - JUMP_MEMORY ** (state.since_reset - 1)
            if any(n > self.options.jump_reset * m / correction
                   for n, m in zip(norms, mean, strict=True)):
                return True
        state.norm_mean = [JUMP_MEMORY * m + (1 - JUMP_MEMORY) * n
                           for m, n in zip(mean, norms, strict=True)]
        return False

    def _back_off(self, state: ForwardState) -> None:
        if "lr" in state.hypers.values and self.options.jump_backoff != 1:
            bounds = self.options.bounds()
            state.hypers.values["lr"] = [bounds.project("lr", lr * self.options.jump_backoff)
                                         for lr in state.hypers.values["lr"]]

    @staticmethod
    def _reset(state: ForwardState) -> None:
        for x in state.v + (state.p or []):
            x.zero_()
        state.resets += 1
        state.norm_mean, state.since_reset = None, 0

    def diagnostics(self, state: ForwardState) -> dict[str, float]:
        out = super().diagnostics(state)
        if state.follows == state.hypers.tuned:
            norms = hg.influence_norms(state.v)
        else:  # shared: the norm of each group's slice
            norms = hg.sliced_influence_norms(state.v, [k for k, _ in state.follows],
                                              state.hypers.tuned, state.group_of)
        out.update({f"influence_{n}": x
                    for n, x in zip(state.hypers.tuned_names(), norms.tolist(), strict=True)})
        out["influence_resets"] = state.resets
        out["jump_resets"] = state.jump_resets
        if self.options.discount != 1.0 or self.options.adapt_discount:
            out["discount"] = state.discount
        return out


class OHOMethod(OnlineMethod):
    name = "oho"
    description = "online HPO by real-time recurrent learning (Im et al.); groups=K for K sets"
    options_type = ForwardOptions
    tunes = ("lr", "wd")
    rule_type = ForwardHypergradient


@dataclass(frozen=True)
class LayerwiseOptions(ForwardOptions):
    groups: int = 0
    meta_lr: float = 1e-6  # the OHO paper's layerwise setting
    meta_lr_wd: float = 1e-8  # meta_lr * 0.01, as the authors' code
    # The authors' layerwise (their QMLP), which the paper's layerwise results come from: it costs
    # what global OHO costs; "exact" is 2.4x that on the MNIST MLP (docs/performance.md).
    influence: str = "shared"


class OHOLayerwiseMethod(OHOMethod):
    name = "oho-layerwise"
    description = "OHO with one (lr, wd) per layer"
    options_type = LayerwiseOptions


@dataclass(frozen=True)
class RTHOOptions(ForwardOptions):
    hyper_every: int = 10  # the hyper-batch Delta
    meta_lr: float = 1e-4  # 10x OHO's, as it steps 10x less often
    meta_lr_wd: float = 1e-6


class RTHOMethod(OHOMethod):
    name = "rtho"
    description = "real-time forward hypergradient, a step per hyper-batch (Franceschi et al.)"
    options_type = RTHOOptions


@dataclass(frozen=True)
class MartheOptions(ForwardOptions):
    discount: float = 0.99


class MartheMethod(OHOMethod):
    name = "marthe"
    description = "forward hypergradient with a discounted influence (Donini et al. 2020)"
    options_type = MartheOptions
