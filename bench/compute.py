"""Compute in units that do not move with the machine: SGD-epochs.

One SGD-epoch is the compute of one plain SGD training epoch of the same task at the same batch
size. Every training (an online method, or a black-box optimizer family) gets a cost per epoch
in SGD-epochs, counted one of two ways:

- `flops`: FLOPs from torch.utils.flop_counter.FlopCounterMode (matrix products and convolutions,
  also those of double-backward Hessian-vector products), counted once per (task, training,
  batch shapes) through the trial's own code path on a slice of data: a training step (hyper-steps
  amortized over CALIBRATION_STEPS steps), what a rule does once per epoch, and an evaluation
  pass. The published unit: it is the same on every machine.
- `calibrated`: seconds per training step, every training timed side by side and interleaved on
  the run's own device (`ohobench calibrate RUN_DIR`), over plain SGD's. For hardware where FLOPs
  mislead (a launch-bound GPU runs small matrix products at a fraction of its peak).

Training compute counts the training steps, hyper-steps included, and nothing else: every
method evaluates the same splits each epoch, so the evaluation pass is recorded
(`eval_flops_per_epoch`) but left out of the budget. `measured` (training seconds as they were
measured) stays available: it moves with the machine's load.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import results, tasks
from bench import suite as suites
from bench.datasets import DataSource
from bench.errors import ConfigError
from bench.experiment import TrialConfig, plan
from bench.trial import resolve_device, run_trial
from bench.vocabulary import ONLINE

FLOPS, CALIBRATED, MEASURED = "flops", "calibrated", "measured"
UNITS = (FLOPS, CALIBRATED, MEASURED)
UNIT_NAMES = {FLOPS: "SGD-epochs", CALIBRATED: "SGD-epochs (calibrated)",
              MEASURED: "training seconds"}
CALIBRATION_STEPS = 20  # training steps in a counted epoch; a multiple of rtho's hyper_every
EVAL_EXAMPLES = 500  # validation and test examples in a counted epoch
CALIBRATION_ROUNDS = 5  # interleaved rounds of timing per training
SGD = "black-box · fixed"  # the reference training: plain SGD at a fixed lr


def training_of(method: str, optimizer: str) -> str:
    """What a trial trains with (bench.results.trainings, for one)."""
    return method if optimizer == ONLINE else f"black-box · {optimizer}"


@dataclass(frozen=True)
class Cost:
    """What one epoch of a training costs on a task."""

    task: str
    training: str  # `training_of`
    method: str  # the method it was counted with
    optimizer: str
    batch_size: int
    val_batch_size: int
    steps_per_epoch: int
    step_flops: float  # a training step, hyper-steps amortized
    epoch_extra_flops: float  # what the rule does once per epoch, beyond its steps
    eval_flops_per_epoch: float  # the evaluation pass (training subset, validation, test)
    sgd_step_flops: float  # a plain SGD step on the same task and batch
    step_seconds: float = math.nan  # calibrated: median seconds per step, and SGD's
    sgd_step_seconds: float = math.nan
    device: str | None = None  # where it was calibrated

    @property
    def flops_per_epoch(self) -> float:
        return self.steps_per_epoch * self.step_flops + self.epoch_extra_flops

    @property
    def sgd_epochs(self) -> float:
        """One epoch of this training in SGD-epochs, counted in FLOPs."""
        return self.flops_per_epoch / (self.steps_per_epoch * self.sgd_step_flops)

    @property
    def calibrated_sgd_epochs(self) -> float:
        """One epoch of this training in SGD-epochs, from the timed steps (NaN: not timed)."""
        return self.step_seconds / self.sgd_step_seconds

    @property
    def step_ratio(self) -> float:
        """A training step's FLOPs over a plain SGD step's."""
        return self.step_flops / self.sgd_step_flops


def count_flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _slice(splits: tasks.Splits, steps: int, batch: int) -> tasks.Splits:
    """`steps` batches of training data (repeated where the split is smaller: values do not
    matter here) and EVAL_EXAMPLES of validation and test."""
    n = steps * batch
    times = math.ceil(n / len(splits.x_train))
    x, y = splits.x_train.repeat(times, *[1] * (splits.x_train.dim() - 1)), \
        splits.y_train.repeat(times, *[1] * (splits.y_train.dim() - 1))
    return tasks.Splits(x[:n], y[:n], splits.x_val[:EVAL_EXAMPLES],
                        splits.y_val[:EVAL_EXAMPLES], splits.x_test[:EVAL_EXAMPLES],
                        splits.y_test[:EVAL_EXAMPLES])


def _one_epoch(config: TrialConfig, splits: tasks.Splits, steps: int) -> list[dict]:
    batch = config.batch_size or tasks.get(config.task).batch_size
    # The same training examples evaluated whatever `steps`, so that two counts differ by
    # their steps alone.
    fixed = dataclasses.replace(config, epochs=1, train_eval_size=CALIBRATION_STEPS * batch)
    return run_trial(fixed, splits=_slice(splits, steps, batch))


def sgd_config(config: TrialConfig) -> TrialConfig:
    """Plain SGD at a fixed lr on `config`'s task and batches: the reference training."""
    return dataclasses.replace(config, method="random", optimizer="fixed", options=None,
                               hparams={"lr": 0.01, "wd": 0.0}, scheduler="fifo")


def step_flops(config: TrialConfig, splits: tasks.Splits) -> tuple[float, float]:
    """(FLOPs of a training step, FLOPs of one epoch beyond its steps: evaluation and what the
    rule does once per epoch) of `config`'s training, from one epoch of CALIBRATION_STEPS steps
    and one of twice as many: their difference is steps alone."""
    n = CALIBRATION_STEPS
    once = count_flops(lambda: _one_epoch(config, splits, n))
    twice = count_flops(lambda: _one_epoch(config, splits, 2 * n))
    step = (twice - once) / n
    return step, once - n * step


def count(config: TrialConfig, splits: tasks.Splits) -> Cost:
    """The Cost of `config`'s training on a task whose full splits are `splits` (only their
    sizes and shapes matter: FLOPs do not depend on values)."""
    task = tasks.get(config.task)
    batch = config.batch_size or task.batch_size
    step, extra = step_flops(config, splits)
    sgd_step, sgd_extra = step_flops(sgd_config(config), splits)
    n_train = len(splits.x_train)
    train_eval = min(config.train_eval_size or n_train, n_train)
    evaluated = train_eval + len(splits.x_val) + len(splits.x_test)
    counted_eval = CALIBRATION_STEPS * batch + 2 * EVAL_EXAMPLES
    return Cost(task=config.task, training=training_of(config.method, config.optimizer),
                method=config.method, optimizer=config.optimizer, batch_size=batch,
                val_batch_size=config.val_batch_size or batch,
                steps_per_epoch=math.ceil(n_train / batch), step_flops=step,
                # the rule's own per-epoch work: beyond plain SGD's (which is evaluation only)
                epoch_extra_flops=max(0.0, extra - sgd_extra),
                eval_flops_per_epoch=sgd_extra * evaluated / counted_eval,
                sgd_step_flops=sgd_step)


def calibrate(configs: Iterable[TrialConfig], splits_of, rounds: int = CALIBRATION_ROUNDS
              ) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (task, training): (median seconds per step, plain SGD's), timed on `config.device`, one
    torch thread on a CPU, every training and SGD interleaved round by round so that a change
    of load hits them alike. `splits_of(task)` gives a task's splits."""
    configs = list(configs)
    timed = {f"{c.task}:{training_of(c.method, c.optimizer)}": c for c in configs}
    for c in configs:
        timed.setdefault(f"{c.task}:{SGD}", sgd_config(c))
    seconds: dict[str, list[float]] = {k: [] for k in timed}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(rounds + 1):  # the first round warms up
            for key, config in timed.items():
                records = _timed_epoch(config, splits_of(config.task))
                seconds[key].append(records[-1]["train_seconds"] / CALIBRATION_STEPS)
    finally:
        torch.set_num_threads(threads)
    return {(c.task, key.partition(":")[2]): (statistics.median(seconds[key][1:]),
                                              statistics.median(seconds[f"{c.task}:{SGD}"][1:]))
            for key, c in timed.items()}


def _timed_epoch(config: TrialConfig, splits: tasks.Splits) -> list[dict]:
    return _one_epoch(config, splits, CALIBRATION_STEPS)


def costs_series(costs: Iterable[Cost], unit: str) -> pd.Series:
    """Per (task, training): one epoch's cost in SGD-epochs, by `unit` (flops or calibrated)."""
    rows = {(c.task, c.training): (c.sgd_epochs if unit == FLOPS else c.calibrated_sgd_epochs)
            for c in costs}
    if unit == CALIBRATED and any(math.isnan(v) for v in rows.values()):
        raise ConfigError("--compute calibrated: this run has no calibration; run `ohobench "
                          "calibrate RUN_DIR` first (it times every training on this device)")
    index = pd.MultiIndex.from_tuples(list(rows), names=["task", "training"])
    return pd.Series(list(rows.values()), index=index, name="epoch_cost", dtype=float)


def as_rows(costs: Iterable[Cost]) -> list[dict]:
    """Costs as plain rows, for run.json."""
    return [dataclasses.asdict(c) for c in costs]


def from_rows(rows: Iterable[dict]) -> list[Cost]:
    names = {f.name for f in dataclasses.fields(Cost)}
    return [Cost(**{k: v for k, v in r.items() if k in names}) for r in rows]


def task_data(task: tasks.Task, suite) -> tuple[tasks.Splits, str]:
    """The task's splits, or random data of its shape when its files are missing."""
    try:
        return task.load_splits(suite.seed, DataSource.resolve(suite.data_dir)), "its data"
    except ConfigError:
        if task.shape is None:
            raise
    s, gen = task.shape, torch.Generator().manual_seed(0)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randn(n, *s.example, generator=gen),
                torch.randint(s.classes, (n,), generator=gen))

    return tasks.Splits(*draw(s.sizes[0]), *draw(s.sizes[1]), *draw(s.sizes[2])), \
        "random data of its shape (files missing)"


def training_configs(suite) -> list[TrialConfig]:
    """One trial config per (task, training) a suite runs: its first experiment's first."""
    out, seen = [], set()
    for exp in plan(suite):
        key = (exp.task, training_of(exp.method, exp.optimizer))
        if key not in seen:
            seen.add(key)
            out.append(exp.trial_config(0, exp.search().suggest()))
    return out


def costs_for(suite, device: str | None = None) -> list[Cost]:
    """The Cost of every (task, training) a suite runs, counted in FLOPs on the CPU, on the
    task's data or random data of its shape; with `device`, also timed there (`calibrate`)."""
    configs = training_configs(suite)
    data = {c.task: task_data(tasks.get(c.task), suite)[0] for c in configs}
    costs = [count(dataclasses.replace(c, device="cpu"), data[c.task]) for c in configs]
    if device is None:
        return costs
    where = str(resolve_device(device))
    timed = calibrate([dataclasses.replace(c, device=where) for c in configs],
                      lambda task: data[task])
    return [dataclasses.replace(c, step_seconds=timed[c.task, c.training][0],
                                sgd_step_seconds=timed[c.task, c.training][1], device=where)
            for c in costs]


def run_costs(info: dict, where: str = "run") -> list[Cost]:
    """The Costs a run's run.json holds (`compute`: written at the run's end and by `ohobench
    calibrate`), else counted now from its suite (FLOPs depend on shapes alone, so a count
    made later is the same count)."""
    if info.get("compute"):
        return from_rows(info["compute"])
    return costs_for(suites.build(results.suite_values(info), where=where, need_data=False))


def in_unit(df: pd.DataFrame, info: dict, unit: str, where: str = "run") -> pd.DataFrame:
    """One run's table with its `compute` clock in `unit` (measured: as it is)."""
    if unit == MEASURED or df.empty:
        return df
    return results.at_epoch_costs(df, costs_series(run_costs(info, where), unit))


def check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ConfigError(f"--compute {unit!r}: unknown unit; valid: {', '.join(UNITS)}")


def calibration_devices(infos: dict[str, dict]) -> None:
    """Refuse runs calibrated on different devices: their ratios are not one unit."""
    devices = {n: {r.get("device") for r in info.get("compute", []) if r.get("device")}
               for n, info in infos.items()}
    found = {d for ds in devices.values() for d in ds}
    if len(found) > 1:
        named = "; ".join(f"{n}: {', '.join(sorted(d))}" for n, d in devices.items() if d)
        raise ConfigError(f"--compute calibrated: the runs were calibrated on different devices "
                          f"({named}); report them apart, or calibrate them on one device")
