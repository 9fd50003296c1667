"""What a suite will cost, before it runs: `ohobench run --dry-run`.

Each (task, method, family) of the suite trains one trial, through the same code path as a real
trial, for two short epochs on a slice of its data (random data of the task's shape when the
files are not here). The second epoch's seconds per training step and per evaluated example,
times the suite's steps, epochs, trials and repetitions, give the estimate. It assumes every
trial runs all its epochs: schedulers (asha, hyperband) and `budget_seconds` lower it. A search
under several schedulers is one entry per scheduler, timed once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import torch

from bench import compute, tasks
from bench.compute import task_data
from bench.experiment import Experiment, plan
from bench.suite import Suite
from bench.tasks import Splits
from bench.trial import run_trial

CALIBRATION_STEPS = 20  # training steps in each timed epoch
EVAL_EXAMPLES = 500  # validation and test examples evaluated per timed epoch


@dataclass(frozen=True)
class Cost:
    """The estimated cost of one (task, method, family) over all its repetitions."""

    task: str
    label: str  # its entry: method, method · family or method · scheduler · family
    trials: int  # over all repetitions
    epochs: int
    steps_per_epoch: int
    eval_examples: int  # per epoch: training subset, validation and test
    step_seconds: float
    eval_seconds_per_example: float
    data: str  # what it was timed on
    sgd_epochs_per_epoch: float = math.nan  # an epoch's training compute (bench.compute)

    @property
    def epoch_seconds(self) -> float:
        return (self.steps_per_epoch * self.step_seconds
                + self.eval_examples * self.eval_seconds_per_example)

    @property
    def trial_seconds(self) -> float:
        return self.epochs * self.epoch_seconds

    @property
    def seconds(self) -> float:
        return self.trials * self.trial_seconds

    @property
    def sgd_epochs(self) -> float:
        """Training compute of all its trials in SGD-epochs, every trial at all its epochs."""
        return self.trials * self.epochs * self.sgd_epochs_per_epoch


def calibration_slice(splits: Splits, batch_size: int) -> Splits:
    n = batch_size * CALIBRATION_STEPS
    return Splits(splits.x_train[:n], splits.y_train[:n], splits.x_val[:EVAL_EXAMPLES],
                  splits.y_val[:EVAL_EXAMPLES], splits.x_test[:EVAL_EXAMPLES],
                  splits.y_test[:EVAL_EXAMPLES])


def time_trial(exp: Experiment, splits: Splits) -> tuple[float, float]:
    """Seconds per training step and per evaluated example of this experiment's first trial,
    from the second of two epochs on `splits` (the first one warms up)."""
    hparams = exp.search().suggest()
    config = dataclasses.replace(exp.trial_config(0, hparams), epochs=2)
    records = run_trial(config, splits=splits)
    last = records[-1]
    steps = last["step"] - (records[-2]["step"] if len(records) > 1 else 0)
    examples = last["train_eval_size"] + len(splits.x_val) + len(splits.x_test)
    return last["train_seconds"] / steps, last["eval_seconds"] / examples


def estimate(suite: Suite) -> list[Cost]:
    """One Cost per (task, entry: method, scheduler and family), timed with the torch threads
    a trial gets."""
    groups: dict[tuple[str, str], list[Experiment]] = {}
    for exp in plan(suite):
        groups.setdefault((exp.task, exp.entry), []).append(exp)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(suite.cpus_per_trial)))
    try:
        data: dict[str, tuple[Splits, str]] = {}
        timed: dict[tuple[str, str, str], tuple[float, float]] = {}  # the same trial: once
        costs = []
        for (task_name, entry), exps in groups.items():
            task = tasks.get(task_name)
            if task_name not in data:
                data[task_name] = task_data(task, suite)
            splits, source = data[task_name]
            batch = suite.batch_sizes_for(task_name)[0]
            first = exps[0]
            key = (task_name, first.method, first.optimizer)
            if key not in timed:
                config = first.trial_config(0, first.search().suggest())
                timed[key] = (*time_trial(first, calibration_slice(splits, batch)),
                              compute.count(dataclasses.replace(config, device="cpu"),
                                            splits).sgd_epochs)
            step_s, eval_s, sgd_epochs = timed[key]
            n_train = len(splits.x_train)
            train_eval = min(suite.train_eval_size or n_train, n_train)
            costs.append(Cost(
                task=task_name, label=entry,
                trials=sum(e.budget for e in exps), epochs=suite.epochs_for(task_name),
                steps_per_epoch=math.ceil(n_train / batch),
                eval_examples=train_eval + len(splits.x_val) + len(splits.x_test),
                step_seconds=step_s, eval_seconds_per_example=eval_s, data=source,
                sgd_epochs_per_epoch=sgd_epochs))
        return costs
    finally:
        torch.set_num_threads(threads)


def local_slots(suite: Suite) -> int:
    """Trials this machine runs at once under the suite's resources per trial."""
    if suite.gpus_per_trial:
        return max(1, int(torch.cuda.device_count() / suite.gpus_per_trial))
    return max(1, int((os.cpu_count() or 1) / suite.cpus_per_trial))


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def format_estimate(costs: list[Cost], slots: int) -> str:
    lines = [f"{'task':<18} {'method':<26} {'trials':>6} {'epochs':>6} {'ms/step':>8} "
             f"{'s/epoch':>8} {'per trial':>10} {'total':>10} {'SGD-ep/ep':>9} "
             f"{'SGD-epochs':>10}"]
    for c in costs:
        lines.append(f"{c.task:<18} {c.label:<26} {c.trials:>6} {c.epochs:>6} "
                     f"{c.step_seconds * 1e3:>8.2f} {c.epoch_seconds:>8.2f} "
                     f"{duration(c.trial_seconds):>10} {duration(c.seconds):>10} "
                     f"{c.sgd_epochs_per_epoch:>9.2f} {c.sgd_epochs:>10.0f}")
    total = sum(c.seconds for c in costs)
    lines.append(f"training compute: {sum(c.sgd_epochs for c in costs):,.0f} SGD-epochs "
                 "(FLOPs over those of one plain SGD epoch of the task; bench/compute.py)")
    longest = max((c.trial_seconds for c in costs), default=0.0)
    wall = max(total / slots, longest)
    lines.append(f"total: {duration(total)} of trial time; on this machine, {slots} trials at "
                 f"once: at least {duration(wall)} of wall-clock (the longer of total / {slots} "
                 f"and the longest trial), plus Ray's start-up and scheduling")
    for task, source in dict.fromkeys((c.task, c.data) for c in costs):
        lines.append(f"{task}: timed on {source}, {CALIBRATION_STEPS} steps per epoch, "
                     f"the second of two epochs")
    lines.append("every trial is assumed to run all its epochs: schedulers that stop trials "
                 "early (asha, hyperband) and budget_seconds lower this")
    return "\n".join(lines)
