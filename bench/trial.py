"""The trial interface: one function runs one training run from a plain config and reports a
record per epoch. Ray Tune calls `ray_trial`; tests and debugging call `run_trial` directly."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

import methods
from bench import checkpoints, harness, tasks
from bench.datasets import DataSource
from bench.errors import raise_if
from bench.experiment import TrialConfig, derive_seed
from bench.vocabulary import ONLINE
from methods import optimizers
from methods.base import Method, MethodKind, Options, UpdateRule, parse_options

__all__ = ["ONLINE", "TrialConfig", "run_trial", "ray_trial", "trial_config"]
FIELDS = {f.name for f in dataclasses.fields(TrialConfig)}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def trial_config(config: TrialConfig | Mapping[str, Any]) -> TrialConfig:
    """A TrialConfig as is; a plain mapping (a direct call, e.g. from a test) is checked and
    its `options` table parsed, naming every problem."""
    if isinstance(config, TrialConfig):
        return config
    missing = [k for k in ("task", "method", "hparams", "seed", "epochs") if k not in config]
    unknown = [k for k in config if k not in FIELDS]
    raise_if([f"trial config misses {k!r}" for k in missing]
             + [f"trial config has unknown key {k!r}" for k in unknown])
    options = config.get("options")
    if not isinstance(options, Options | None):
        method = methods.get(config["method"])
        options, problems = parse_options(method.options_type, options, config["method"])
        raise_if(problems)
    return TrialConfig(**{**config, "options": options})


def run_trial(config: TrialConfig | Mapping[str, Any],
              report: Callable[[dict], None] | None = None,
              splits: tasks.Splits | None = None,
              checkpoint: Callable[[dict], None] | None = None,
              resume: Mapping[str, Any] | None = None) -> list[dict]:
    """Run one trial. Every record carries the trial's identity and its start time. `splits`
    replaces the task's data (bench.estimate times trials on a slice of it). `checkpoint`
    gets the trial's complete state after each epoch's record (bench/checkpoints.py), and
    `resume` is such a state to continue from: the records that follow are the ones an
    uninterrupted trial would have reported."""
    cfg = trial_config(config)
    # This attempt's start: after a retry, a resumed driver or a population's pause, the
    # trial runs again from its checkpoint, and the time in between was not the trial's.
    attempt_start = time.time()
    started = attempt_start if resume is None else resume["trial_start"]
    lineage = lineage_of(cfg, resume)
    # Weights decaying toward zero (a collapsing trial) hit denormal floats, which made CPU
    # epochs up to 20x slower; flushed to zero, they cost nothing. Per process, like threads.
    torch.set_flush_denormal(True)
    task = tasks.get(cfg.task)
    method = methods.get(cfg.method)
    options = cfg.options if cfg.options is not None else method.options_type()
    device = resolve_device(cfg.device)
    raise_if(tasks.amp_problems(cfg.amp, [task], {cfg.method: method.kind}, device.type))
    if splits is None:
        splits = task.load_splits(cfg.data_seed, DataSource.resolve(cfg.data_dir, cfg.download))
    splits = splits.to(device, DTYPES[cfg.dtype])
    spec = train_spec(cfg, task, device)
    if lineage:  # the copied weights go on with this member's own draws (batch order, noise)
        spec = dataclasses.replace(spec, seed=derive_seed(cfg.seed, "cloned", lineage["cloned_at"]))
        resume = {**resume, "train": dataclasses.replace(resume["train"], rngs=None)}
    rule, optimizer = update_rule(cfg, method, options)
    identity = {"task": cfg.task, "method": cfg.method, "optimizer": optimizer,
                "scheduler": cfg.scheduler, "repetition": cfg.repetition, "trial": cfg.trial,
                "seed": cfg.seed, "trial_start": started, "attempt_start": attempt_start,
                "device": str(device)}

    follow_up = method.follow_up(options) if method.kind is MethodKind.ONLINE else None
    phase = {} if follow_up is None else {"phase": "search"}

    def tagged(record: dict) -> None:
        record.update(identity, **phase, **lineage)
        lineage.clear()
        if report is not None:
            report(record)

    def saver(first: list[dict] | None) -> Callable[[harness.TrainState], None] | None:
        if checkpoint is None:
            return None
        return lambda state: checkpoint({"phase": "retrain" if first else "search",
                                         "first": first, "trial_start": started,
                                         "trial": cfg.trial, "train": state})

    in_retrain = resume is not None and resume["phase"] == "retrain"
    if in_retrain:
        records = resume["first"]
    else:
        records = harness.train(task, rule, cfg.hparams, splits, spec, tagged, saver(None),
                                None if resume is None else resume["train"])
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

    return records + harness.train(task, rule, hparams, splits, spec, continued,
                                   saver(records), resume["train"] if in_retrain else None)



def lineage_of(cfg: TrialConfig, resume: Mapping[str, Any] | None) -> dict[str, int]:
    """A population member that continues from another's checkpoint (PBT's exploit) says so
    on its next record: which trial, at which epoch. Empty otherwise."""
    if resume is None or resume.get("trial", cfg.trial) == cfg.trial:
        return {}
    return {"cloned_from": resume["trial"], "cloned_at": resume["train"].epoch}


def train_spec(cfg: TrialConfig, task: tasks.Task, device: torch.device) -> harness.TrainSpec:
    return harness.TrainSpec(epochs=cfg.epochs, batch_size=cfg.batch_size or task.batch_size,
                             seed=cfg.seed, device=device, dtype=DTYPES[cfg.dtype],
                             val_batch_size=cfg.val_batch_size, amp=cfg.amp,
                             train_eval_size=cfg.train_eval_size)


def update_rule(cfg: TrialConfig, method: Method, options: Options) -> tuple[UpdateRule, str]:
    """The trial's update rule and the `optimizer` its records name: an online method's own
    rule, or the black-box trial's optimizer family."""
    if method.kind is MethodKind.ONLINE:
        return method.update_rule(options), ONLINE
    return optimizers.FamilyRule(optimizers.get(cfg.optimizer), cfg.epochs), cfg.optimizer

def ray_trial(config: dict, replay: Mapping[tuple[str, int], dict] | None = None) -> None:
    """Entry point for Ray Tune; `config["spec"]` is the trial's TrialConfig. The record travels
    nested so Ray's own keys cannot clash; `trial_start` also travels on top, for the
    scheduler's time budgets. `replay` holds the trials a resumed run had finished before it
    was interrupted (bench/journal.py), keyed by (experiment, trial): a trial found there with
    the same seed and hyperparameters reports its kept records again instead of training.
    Every epoch's record goes to Tune with the trial's checkpoint; a trial Tune restarts (its
    worker died, the driver resumed, a scheduler paused it) continues from the latest one."""
    # Ray (seconds): only a trial run by Ray Tune needs it; run_trial runs without it
    import ray
    from ray import tune

    spec: TrialConfig = config["spec"]
    node_id = ray.get_runtime_context().get_node_id()
    kept = (replay or {}).get((spec.experiment, spec.trial))
    if kept and kept["seed"] == spec.seed and kept["hparams"] == spec.hparams:
        for record in kept["records"]:  # as first recorded, node included
            report(dict(record), replayed=True)
        return
    # The hyperparameters to train with: the search's proposal, or what PBT made of it.
    spec = dataclasses.replace(spec, hparams=config.get("hparams", spec.hparams))
    resume = None
    if (saved := tune.get_checkpoint()) is not None:
        with saved.as_directory() as folder:
            resume = checkpoints.load(Path(folder))
    # Records wait for the checkpoint that follows them; a phase's last epoch has none.
    pending: list[dict] = []

    def flush(checkpoint=None) -> None:
        for i, record in enumerate(pending, 1):
            report(record, checkpoint=checkpoint if i == len(pending) else None)
        pending.clear()

    def save(state: dict) -> None:
        with tempfile.TemporaryDirectory(prefix="ohobench-ckpt-") as folder:
            checkpoints.save(Path(folder), state)
            flush(tune.Checkpoint.from_directory(folder))

    run_trial(spec, report=lambda r: pending.append(dict(r, node_id=node_id)), checkpoint=save,
              resume=resume)
    flush()


def report(record: dict, replayed: bool = False, checkpoint=None) -> None:
    """One epoch's record to Ray Tune, with the trial's checkpoint if given."""
    # Ray (seconds, also through bench.ray_adapter): run_trial runs without it
    from ray import tune

    from bench.ray_adapter import tune_result

    tune.report(tune_result(record, replayed), checkpoint=checkpoint)
