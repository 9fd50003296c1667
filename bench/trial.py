"""The trial interface: one function runs one training run from a plain config and reports a
record per epoch. Ray Tune calls `ray_trial`; tests and debugging call `run_trial` directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

import methods
from bench import harness, tasks
from bench.errors import raise_if
from methods import optimizers
from methods.base import MethodKind, parse_options

# Keys of a trial config. `hparams` are the fixed (black-box) or initial (online) values.
REQUIRED = ("task", "method", "hparams", "seed", "epochs")
OPTIONAL = {"data_seed": 0, "device": "auto", "batch_size": None, "val_batch_size": None,
            "options": {}, "repetition": 0, "trial": 0, "dtype": "float32",
            "optimizer": "fixed"}  # black-box: the optimizer family; ignored by online methods
ONLINE = "online"  # the `optimizer` recorded for online methods, which train with their own rule
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_trial(config: Mapping[str, Any],
              report: Callable[[dict], None] | None = None) -> list[dict]:
    """Run one trial. Every record carries the trial's identity and its start time."""
    missing = [k for k in REQUIRED if k not in config]
    unknown = [k for k in config if k not in REQUIRED and k not in OPTIONAL]
    raise_if([f"trial config misses {k!r}" for k in missing]
             + [f"trial config has unknown key {k!r}" for k in unknown])
    cfg = {**OPTIONAL, **config}
    started = time.time()
    task = tasks.get(cfg["task"])
    method = methods.get(cfg["method"])
    options, problems = parse_options(method.options_type, cfg["options"], cfg["method"])
    raise_if(problems)
    device = resolve_device(cfg["device"])
    dtype = DTYPES[cfg["dtype"]]
    splits = task.load(cfg["data_seed"]).to(device, dtype)
    spec = harness.TrainSpec(epochs=cfg["epochs"], batch_size=cfg["batch_size"] or task.batch_size,
                             seed=cfg["seed"], device=device, dtype=dtype,
                             val_batch_size=cfg["val_batch_size"])
    if method.kind is MethodKind.ONLINE:
        rule, optimizer = method.update_rule(options), ONLINE
    else:
        optimizer = cfg["optimizer"]
        rule = optimizers.FamilyRule(optimizers.get(optimizer), cfg["epochs"])
    identity = {"task": cfg["task"], "method": cfg["method"], "optimizer": optimizer,
                "repetition": cfg["repetition"], "trial": cfg["trial"], "seed": cfg["seed"],
                "trial_start": started, "device": str(device)}

    def tagged(record: dict) -> None:
        record.update(identity)
        if report is not None:
            report(record)

    return harness.train(task, rule, cfg["hparams"], splits, spec, tagged)


def ray_trial(config: dict) -> None:
    """Entry point for Ray Tune. The record travels nested so Ray's own keys cannot clash."""
    from ray import tune

    run_trial(config, report=lambda r: tune.report(
        {"val_loss": r["val_loss"], "diverged": r["diverged"], "record": r}))
