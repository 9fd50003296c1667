"""The trial interface: one function runs one training run from a plain config and reports a
record per epoch. Ray Tune calls `ray_trial`; tests and debugging call `run_trial` directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

import methods
from bench import harness, tasks
from bench.datasets import DataSource
from bench.errors import raise_if
from methods import optimizers
from methods.base import MethodKind, parse_options

# Keys of a trial config. `hparams` are the fixed (black-box) or initial (online) values.
REQUIRED = ("task", "method", "hparams", "seed", "epochs")
OPTIONAL = {"data_seed": 0, "device": "auto", "batch_size": None, "val_batch_size": None,
            "options": {}, "repetition": 0, "trial": 0, "dtype": "float32",
            "optimizer": "fixed",  # black-box: the optimizer family; ignored by online methods
            "data_dir": None, "download": False,  # file-reading tasks; None: $OHOBENCH_DATA
            "amp": False}  # bf16 autocast of training losses (black-box, tasks with amp)
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
    # Weights decaying toward zero (a collapsing trial) hit denormal floats, which made CPU
    # epochs up to 20x slower; flushed to zero, they cost nothing. Per process, like threads.
    torch.set_flush_denormal(True)
    task = tasks.get(cfg["task"])
    method = methods.get(cfg["method"])
    options, problems = parse_options(method.options_type, cfg["options"], cfg["method"])
    device = resolve_device(cfg["device"])
    raise_if(problems + tasks.amp_problems(cfg["amp"], [task], {cfg["method"]: method.kind},
                                           device.type))
    dtype = DTYPES[cfg["dtype"]]
    data = DataSource.resolve(cfg["data_dir"], cfg["download"])
    splits = task.load_splits(cfg["data_seed"], data).to(device, dtype)
    spec = harness.TrainSpec(epochs=cfg["epochs"], batch_size=cfg["batch_size"] or task.batch_size,
                             seed=cfg["seed"], device=device, dtype=dtype,
                             val_batch_size=cfg["val_batch_size"], amp=cfg["amp"])
    if method.kind is MethodKind.ONLINE:
        rule, optimizer = method.update_rule(options), ONLINE
    else:
        optimizer = cfg["optimizer"]
        rule = optimizers.FamilyRule(optimizers.get(optimizer), cfg["epochs"])
    identity = {"task": cfg["task"], "method": cfg["method"], "optimizer": optimizer,
                "repetition": cfg["repetition"], "trial": cfg["trial"], "seed": cfg["seed"],
                "trial_start": started, "device": str(device)}

    follow_up = method.follow_up(options) if method.kind is MethodKind.ONLINE else None
    phase = {} if follow_up is None else {"phase": "search"}

    def tagged(record: dict) -> None:
        record.update(identity, **phase)
        if report is not None:
            report(record)

    records = harness.train(task, rule, cfg["hparams"], splits, spec, tagged)
    if follow_up is None or records[-1]["diverged"] or records[-1]["collapsed"]:
        return records
    # The second phase continues the trial's epochs, steps and training seconds: the method
    # paid for both.
    rule, hparams = follow_up(records[-1])
    last, phase["phase"] = dict(records[-1]), "retrain"

    def continued(record: dict) -> None:
        for k in ("epoch", "step", "train_seconds_cum"):
            record[k] += last[k]
        tagged(record)

    return records + harness.train(task, rule, hparams, splits, spec, continued)


def ray_trial(config: dict, replay: Mapping[int, dict] | None = None) -> None:
    """Entry point for Ray Tune. The record travels nested so Ray's own keys cannot clash.
    `replay` holds the trials a resumed experiment had finished before it was interrupted
    (bench/journal.py): a trial found there with the same seed and hyperparameters reports its
    kept records again instead of training."""
    import ray
    from ray import tune

    node_id = ray.get_runtime_context().get_node_id()

    def report(record: dict, replayed: bool = False) -> None:
        tune.report({"val_loss": record["val_loss"], "diverged": record["diverged"],
                     "collapsed": record.get("collapsed", False),
                     "record": record, "replayed": replayed})

    kept = (replay or {}).get(config.get("trial"))
    if kept and kept["seed"] == config["seed"] and kept["hparams"] == config["hparams"]:
        for record in kept["records"]:  # as first recorded, node included
            report(dict(record), replayed=True)
        return
    run_trial(config, report=lambda r: report(dict(r, node_id=node_id)))
