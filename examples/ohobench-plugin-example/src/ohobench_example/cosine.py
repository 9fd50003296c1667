"""`lr-cosine-warm`: SGD whose learning rate warms up linearly, then follows a cosine down to a
fraction of its initial value at the end of the run. The harness tells the rule the run's
length (StepContext.epochs, .steps_per_epoch); the initial lr is the hyperparameter a
repetition draws from the task's space."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from methods.base import Batch, Method, MethodKind, Options, Params, StepContext
from methods.sgd import SGD, SGDState

from ohobench_example.checkpoint import fields_of, restore


@dataclass(frozen=True)
class CosineWarmOptions(Options):
    warmup_epochs: int = 1  # epochs of linear warm-up to the initial lr
    final_fraction: float = 0.01  # the lr at the end of the run, over the initial lr

    def problems(self) -> list[str]:
        found = []
        if self.warmup_epochs < 0:
            found.append(f"warmup_epochs: must be >= 0, got {self.warmup_epochs}")
        if not 0 <= self.final_fraction <= 1:
            found.append(f"final_fraction: must lie in [0, 1], got {self.final_fraction}")
        return found


def lr_factor(step: int, total: int, warmup: int, final_fraction: float) -> float:
    """The lr at `step` (from 0) of `total` steps, over the initial lr: linear over the first
    `warmup` steps, then a cosine from 1 down to `final_fraction` (reached after the run)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class CosineWarmState(SGDState):
    initial_lr: float = 0.0


class CosineWarm(SGD):
    def __init__(self, options: CosineWarmOptions):
        self.options = options

    def init(self, params: Params, hparams: Mapping[str, Any]) -> CosineWarmState:
        sgd = super().init(params, hparams)
        return CosineWarmState(lr=sgd.lr, wd=sgd.wd, momentum=sgd.momentum, initial_lr=sgd.lr)

    def step(self, state: CosineWarmState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[CosineWarmState, Params]:
        if ctx.epochs and ctx.steps_per_epoch:  # 0: the run's length is not known
            state.lr = state.initial_lr * lr_factor(
                ctx.step, ctx.epochs * ctx.steps_per_epoch,
                self.options.warmup_epochs * ctx.steps_per_epoch, self.options.final_fraction)
        return super().step(state, params, batch, ctx)

    # Every epoch is checkpointed: a saved state that misses a field is refused in one line.
    def state_dict(self, state: CosineWarmState) -> dict[str, Any]:
        return fields_of(state)

    def load_state_dict(self, state: CosineWarmState, saved: Any) -> CosineWarmState:
        return restore(CosineWarmState, saved, "lr-cosine-warm")


class CosineWarmMethod(Method):
    name = "lr-cosine-warm"
    kind = MethodKind.ONLINE
    description = "SGD with a linear warm-up, then a cosine learning-rate decay over the run"
    options_type = CosineWarmOptions
    tunes = ("lr",)

    def update_rule(self, options: CosineWarmOptions) -> CosineWarm:
        return CosineWarm(options)
