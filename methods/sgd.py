"""SGD with weight decay (and optional heavy-ball momentum), hyperparameters held fixed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from methods.base import Batch, Params, StepContext, UpdateRule


@dataclass
class SGDState:
    lr: float
    wd: float
    momentum: float = 0.0
    buffers: list[torch.Tensor] | None = None


class SGD(UpdateRule):
    """w <- w - lr (g + wd w); with momentum, torch's form b <- mu b + g + wd w; w <- w - lr b."""

    def init(self, params: Params, hparams: Mapping[str, Any]) -> SGDState:
        return SGDState(lr=float(hparams["lr"]), wd=float(hparams.get("wd", 0.0)),
                        momentum=float(hparams.get("momentum", 0.0)))

    def step(self, state: SGDState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[SGDState, Params]:
        weights = list(params.values())
        grads = torch.autograd.grad(ctx.loss(params, batch), weights)
        with torch.no_grad():
            direction = sgd_direction(state, weights, grads)
            torch._foreach_add_(weights, direction, alpha=-state.lr)
        return state, params

    def hparams(self, state: SGDState) -> dict[str, float]:
        out = {"lr": state.lr, "wd": state.wd}
        if state.momentum:
            out["momentum"] = state.momentum
        return out


def sgd_direction(state: SGDState, weights: list[torch.Tensor], grads) -> list[torch.Tensor]:
    """The step direction d (w <- w - lr d): g + wd w, through the momentum buffer if any."""
    direction = torch._foreach_add(grads, weights, alpha=state.wd) if state.wd else list(grads)
    if not state.momentum:
        return direction
    if state.buffers is None:
        state.buffers = [d.clone() for d in direction]
    else:
        torch._foreach_mul_(state.buffers, state.momentum)
        torch._foreach_add_(state.buffers, direction)
    return state.buffers
