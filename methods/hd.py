"""Hypergradient descent on the learning rate (Baydin et al. 2018), SGD-HD.

After the step w_t = w_{t-1} - lr d_{t-1}, the training loss at w_t changes with lr as
dL/dlr = -<g_t, d_{t-1}>. HD moves lr against it before taking the next step:
lr <- lr - beta dL/dlr. Unlike the original, lr is kept >= lr_min and a non-finite
hypergradient skips the update and is counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from methods.base import Batch, Method, MethodKind, Options, Params, StepContext, UpdateRule
from methods.hypergrad import dot_all
from methods.online import FloorWatch
from methods.sgd import SGD, SGDState, sgd_direction


@dataclass(frozen=True)
class HDOptions(Options):
    BOUNDS: ClassVar[dict[str, str]] = {"lr_max": "lr"}

    beta: float = 1e-3  # hypergradient step size (the authors' value for SGD)
    lr_min: float = 1e-6  # lr never goes below this
    lr_max: float | None = None  # nor above this; None: the top of the suite's lr range

    def problems(self) -> list[str]:
        found = []
        if not self.beta > 0:
            found.append(f"beta: must be > 0, got {self.beta}")
        if not 0 < self.lr_min < math.inf:
            found.append(f"lr_min: must be a finite number > 0, got {self.lr_min}")
        elif self.lr_max is not None and (isinstance(self.lr_max, bool) or not isinstance(
                self.lr_max, float | int) or not self.lr_min < self.lr_max < math.inf):
            found.append(f"lr_max: must be a finite number > lr_min = {self.lr_min} (or left "
                         f"out: the top of the suite's lr range), got {self.lr_max!r}")
        return found


@dataclass
class HDState(SGDState):
    previous_direction: list[torch.Tensor] | None = None
    hypergradient: float = math.nan
    skipped: int = 0
    floor: FloorWatch | None = None


class HypergradientDescent(UpdateRule):
    def __init__(self, options: HDOptions):
        self.options = options

    def init(self, params: Params, hparams: Mapping[str, Any]) -> HDState:
        base = SGD().init(params, hparams)
        return HDState(lr=base.lr, wd=base.wd, momentum=base.momentum,
                       floor=FloorWatch(self.options.lr_min))

    def step(self, state: HDState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[HDState, Params]:
        state.floor.observe(ctx.epoch, [state.lr])
        weights = list(params.values())
        grads = torch.autograd.grad(ctx.loss(params, batch), weights)
        with torch.no_grad():
            if state.previous_direction is not None:
                hg = -float(dot_all(grads, state.previous_direction))
                state.hypergradient = hg
                if math.isfinite(hg):
                    lr_max = self.options.lr_max or math.inf
                    state.lr = min(max(state.lr - self.options.beta * hg, self.options.lr_min),
                                   lr_max)
                else:
                    state.skipped += 1
            direction = sgd_direction(state, weights, grads)
            state.previous_direction = [d.clone() for d in direction] if state.momentum \
                else direction
            torch._foreach_add_(weights, direction, alpha=-state.lr)
        return state, params

    def hparams(self, state: HDState) -> dict[str, float]:
        return SGD().hparams(state)

    def lr_floored(self, state: HDState) -> bool:
        return state.floor.floored()

    def diagnostics(self, state: HDState) -> dict[str, float]:
        return {"hg_lr": state.hypergradient, "skipped_hypersteps": float(state.skipped)}


class HDMethod(Method):
    name = "hd"
    kind = MethodKind.ONLINE
    horizon_free = True
    description = "hypergradient descent on the learning rate (Baydin et al. 2018)"
    options_type = HDOptions
    tunes = ("lr",)

    def update_rule(self, options: HDOptions) -> UpdateRule:
        return HypergradientDescent(options)
