"""Optimizer families that black-box trials train with: the OHO paper's baselines.

`fixed` (SGD, constant lr), `adam`, and SGD with `step`, `exp` or `cosine` decay. Each tunes lr
and wd plus its own extra hyperparameters, declared here once; every search backend translates
the same declaration. The update itself is torch.optim's SGD or Adam; the schedule is a pure
function of the epoch, applied at the start of every epoch (the OHO reference code stepped its
schedulers every 10 epochs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from bench import registry
from bench.space import Distribution, IntUniform, LogUniform, Uniform
from methods.base import Batch, Params, StepContext, UpdateRule

Schedule = Callable[[Mapping[str, Any], int, int], float]  # (hparams, epoch, epochs) -> factor


def constant(hp: Mapping[str, Any], epoch: int, epochs: int) -> float:
    return 1.0


def step_decay(hp: Mapping[str, Any], epoch: int, epochs: int) -> float:
    """torch's StepLR: lr * step_gamma every step_size epochs."""
    return hp["step_gamma"] ** ((epoch - 1) // int(hp["step_size"]))


def exp_decay(hp: Mapping[str, Any], epoch: int, epochs: int) -> float:
    """torch's ExponentialLR: lr * exp_gamma every epoch."""
    return hp["exp_gamma"] ** (epoch - 1)


def cosine(hp: Mapping[str, Any], epoch: int, epochs: int) -> float:
    """torch's CosineAnnealingLR with T_max = epochs and eta_min = 0."""
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    optimizer: str  # "sgd" or "adam"
    schedule: Schedule
    extra: Callable[[int], dict[str, Distribution]]  # epochs -> the family's own dimensions
    lr: Distribution | None = None  # replaces the task's lr range (the task's is for SGD)


def _step_space(epochs: int) -> dict[str, Distribution]:
    return {"step_size": IntUniform(1, max(1, epochs // 2)), "step_gamma": Uniform(0.1, 0.9)}


def _exp_space(epochs: int) -> dict[str, Distribution]:
    # From no decay to a factor 1e-3 over the whole run.
    return {"exp_gamma": Uniform(round(1e-3 ** (1 / max(epochs - 1, 1)), 4), 1.0)}


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("fixed", "SGD, constant learning rate", "sgd", constant, lambda e: {}),
    Family("adam", "Adam (L2 weight decay), constant learning rate; tunes beta1", "adam",
           constant, lambda e: {"beta1": Uniform(0.5, 0.99)}, lr=LogUniform(1e-4, 1e-1)),
    Family("step", "SGD, lr times step_gamma every step_size epochs", "sgd", step_decay,
           _step_space),
    Family("exp", "SGD, lr times exp_gamma every epoch", "sgd", exp_decay, _exp_space),
    Family("cosine", "SGD, cosine annealing of lr to 0 over the run", "sgd", cosine,
           lambda e: {}),
)}
# SGD families also tune heavy-ball momentum when a suite's [space] names it.
MOMENTUM = Uniform(0.0, 0.99)


def get(name: str) -> Family:
    return registry.lookup(FAMILIES, name, "optimizer")


def space(family: Family, base: Mapping[str, Distribution], epochs: int,
          momentum: bool = False) -> dict[str, Distribution]:
    """The family's search space on a task: the task's lr and wd (Adam: its own lr range), the
    family's extras and, for SGD families where enabled, momentum."""
    out = dict(base)
    if family.lr is not None and "lr" in out:
        out["lr"] = family.lr
    out.update(family.extra(epochs))
    if momentum and family.optimizer == "sgd":
        out["momentum"] = MOMENTUM
    return out


@dataclass
class FamilyState:
    optimizer: torch.optim.Optimizer
    weights: list[torch.Tensor]
    hparams: dict[str, Any]
    epoch: int = 0
    lr: float = math.nan


class FamilyRule(UpdateRule):
    """Fixed hyperparameters, torch.optim update, lr set from the schedule at each new epoch."""

    def __init__(self, family: Family, epochs: int):
        self.family, self.epochs = family, epochs

    def init(self, params: Params, hparams: Mapping[str, Any]) -> FamilyState:
        hp = dict(hparams)
        weights = list(params.values())
        lr, wd = float(hp["lr"]), float(hp.get("wd", 0.0))
        if self.family.optimizer == "adam":
            opt = torch.optim.Adam(weights, lr=lr, betas=(float(hp.get("beta1", 0.9)), 0.999),
                                   weight_decay=wd, foreach=True)
        else:
            opt = torch.optim.SGD(weights, lr=lr, momentum=float(hp.get("momentum", 0.0)),
                                  weight_decay=wd, foreach=True)
        return FamilyState(opt, weights, hp, lr=lr)

    def step(self, state: FamilyState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[FamilyState, Params]:
        if ctx.epoch != state.epoch:
            state.epoch = ctx.epoch
            state.lr = state.hparams["lr"] * self.family.schedule(state.hparams, ctx.epoch,
                                                                  self.epochs)
            for group in state.optimizer.param_groups:
                group["lr"] = state.lr
        grads = torch.autograd.grad(ctx.loss(params, batch), state.weights)
        for w, g in zip(state.weights, grads, strict=True):
            w.grad = g
        state.optimizer.step()
        return state, params

    def state_dict(self, state: FamilyState) -> dict:
        # The optimizer's own dict: pickling it would copy the weights it updates in place.
        return {"optimizer": state.optimizer.state_dict(), "epoch": state.epoch, "lr": state.lr}

    def load_state_dict(self, state: FamilyState, saved: dict) -> FamilyState:
        """The saved optimizer state (momentum buffers, Adam's moments) under this trial's own
        hyperparameters: the same as saved when a trial continues itself; a trial continued
        from another's checkpoint (population-based training's exploit) trains on with its own
        wd, momentum and betas, and its own lr from the next epoch."""
        self.check_saved(self.state_dict(state), saved, closed=True)
        fresh = [{k: v for k, v in g.items() if k != "params"}
                 for g in state.optimizer.param_groups]
        state.optimizer.load_state_dict(saved["optimizer"])
        for group, own in zip(state.optimizer.param_groups, fresh, strict=True):
            group.update({k: v for k, v in own.items() if k != "lr"})
        state.epoch, state.lr = saved["epoch"], saved["lr"]
        return state

    def hparams(self, state: FamilyState) -> dict[str, float]:
        """The lr used in the latest epoch, then the fixed values."""
        fixed = {k: v if isinstance(v, str) else float(v) for k, v in state.hparams.items()}
        return {**fixed, "lr": float(state.lr)}  # a categorical's value stays a string
