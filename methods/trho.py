"""`trho`: truncated reverse-mode hypergradients (Franceschi et al. 2017, TRHO).

Train `window` steps keeping each step's weights, buffers and batch; then take the validation
gradient at the last weights and run the adjoint of the inner dynamics back over the window
(methods.hypergrad.reverse_step), which gives the exact derivative of the validation loss with
respect to the hyperparameters used inside the window. One hyperparameter step per window.
Memory: `window` copies of the optimizer state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class TRHOOptions(GroupedOptions):
    window: int = 10  # Delta: steps differentiated through, one hyperparameter step per window
    meta_lr: float = 1e-4  # 10x OHO's, as it steps 10x less often
    meta_lr_wd: float = 1e-6  # meta_lr * 0.01, as the OHO authors' code

    def problems(self) -> list[str]:
        found = super().problems()
        if self.window < 1:
            found.append(f"window: must be >= 1, got {self.window}")
        if self.hyper_every != 1:
            found.append(f"hyper_every: trho steps once per window; set window instead of "
                         f"hyper_every={self.hyper_every}")
        return found


@dataclass(kw_only=True)
class TRHOState(OnlineState):
    # (weights, buffers, batch) before each step of the current window
    window: list[tuple[list[torch.Tensor], list[torch.Tensor] | None, Batch]] = field(
        default_factory=list)


class TruncatedReverse(OnlineRule):
    options: TRHOOptions

    def init(self, params: Params, hparams: Mapping[str, Any]) -> TRHOState:
        return TRHOState(**self.state_fields(params, hparams, self.options.groups))

    def step(self, state: TRHOState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[TRHOState, Params]:
        self.begin_step(state, ctx)
        weights = list(params.values())
        state.window.append(([w.detach().clone() for w in weights], state.buffers, batch))
        grads = torch.autograd.grad(ctx.loss(params, batch), weights)
        terms = hg.inner_step(grads, weights, state.buffers, *self._coefficients(state))
        self._apply(state, weights, terms)
        if len(state.window) == self.options.window:
            self._hyper_step(state, params, ctx)
        return state, params

    def _hyper_step(self, state: TRHOState, params: Params, ctx: StepContext) -> None:
        names, weights = list(params), list(params.values())
        alpha_w = list(torch.autograd.grad(
            ctx.val_loss(params, hyper_batch(self.options, ctx)), weights))
        alpha_b = None if state.buffers is None else [torch.zeros_like(a) for a in alpha_w]
        hypergrads = [0.0] * len(state.hypers.tuned)
        coefficients = self._coefficients(state)
        for w_then, b_then, batch in reversed(state.window):
            leaves = [w.requires_grad_(True) for w in w_then]
            grads = torch.autograd.grad(ctx.loss(dict(zip(names, leaves, strict=True)), batch),
                                        leaves, create_graph=True)
            terms = hg.inner_step(grads, leaves, b_then, *coefficients)

            def hvp(c, grads=grads, leaves=leaves):
                return [h[0] for h in hg.hvp(grads, leaves, [x.unsqueeze(0) for x in c])]

            alpha_w, alpha_b = hg.reverse_step(alpha_w, alpha_b, hvp, terms, state.hypers.tuned,
                                               state.group_of, hypergrads)
        state.window.clear()
        state.hypergrads = hypergrads
        state.meta.step(state.hypers, hypergrads)


class TRHOMethod(OnlineMethod):
    name = "trho"
    description = "truncated reverse-mode hypergradient over a window (Franceschi et al.)"
    options_type = TRHOOptions
    tunes = ("lr", "wd")
    rule_type = TruncatedReverse
