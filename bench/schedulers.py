"""Trial schedulers, chosen apart from the searches (`schedulers = ["fifo", "asha"]` in a suite,
`--scheduler`), as in Ray Tune and syne-tune: any black-box search runs under any of them, and
each (search, family, scheduler) is its own experiment. A scheduler acts within its own
experiment only (bench/multiplex.py), over epochs, on validation loss. Online methods run one
trial per initialization, so there is nothing to schedule: they always run under fifo.

Options come from `[scheduler.NAME]` tables, parsed once into these frozen dataclasses. Nothing
here imports Ray until a scheduler is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.experiment import FIFO
from methods.base import Options, parse_options

__all__ = ["FIFO", "SCHEDULERS", "SchedulerOptions", "parse"]
TIME_ATTR = "epoch"  # reported by every trial (bench/trial.py): rungs are counted in epochs


@dataclass(frozen=True)
class SchedulerOptions(Options):
    """A scheduler and its options. `max_t` = 0 (where a scheduler takes it) stands for the
    trials' epochs, resolved per task by `for_epochs`."""

    name: ClassVar[str]
    description: ClassVar[str]

    def for_epochs(self, epochs: int) -> SchedulerOptions:
        """These options with `max_t` resolved for trials of `epochs` epochs."""
        if getattr(self, "max_t", None) == 0:
            return dataclasses.replace(self, max_t=epochs)
        return self

    def epoch_problems(self, epochs: int) -> list[str]:
        """Problems of these options for trials of `epochs` epochs."""
        return []

    def build(self) -> Any:
        """Ray Tune's TrialScheduler for one experiment (None: first come, first served)."""
        return None


@dataclass(frozen=True)
class FIFOOptions(SchedulerOptions):
    name: ClassVar[str] = FIFO
    description: ClassVar[str] = "every trial runs all its epochs (no early stopping)"


@dataclass(frozen=True)
class ASHAOptions(SchedulerOptions):
    name: ClassVar[str] = "asha"
    description: ClassVar[str] = ("asynchronous successive halving, Ray Tune's ASHAScheduler: "
                                  "at rung epochs grace_period * reduction_factor^k, the best "
                                  "1/reduction_factor of a search go on")
    grace_period: int = 1  # epochs before the first rung
    reduction_factor: int = 3  # keep the best 1/3 at each rung
    brackets: int = 1  # > 1: asynchronous Hyperband, brackets with different first rungs
    max_t: int = 0  # epochs at most; 0: the trials' epochs

    def problems(self) -> list[str]:
        return _at_least(self, grace_period=1, reduction_factor=2, brackets=1, max_t=0)

    def epoch_problems(self, epochs: int) -> list[str]:
        last = self.max_t or epochs
        return _max_t_problems(self, epochs) + (
            [f"grace_period: {self.grace_period} epochs is more than max_t = {last}, so no "
             "trial could be stopped; give at most max_t"] if self.grace_period > last else [])

    def build(self) -> Any:
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr=TIME_ATTR, metric="val_loss", mode="min",
                             max_t=self.max_t, grace_period=self.grace_period,
                             reduction_factor=self.reduction_factor, brackets=self.brackets)


@dataclass(frozen=True)
class HyperBandOptions(SchedulerOptions):
    name: ClassVar[str] = "hyperband"
    description: ClassVar[str] = ("Hyperband, Ray Tune's HyperBandScheduler: brackets of "
                                  "synchronous successive halving; trials wait, paused, at rungs")
    reduction_factor: int = 3  # eta: keep the best 1/3 at each rung
    max_t: int = 0  # epochs at most; 0: the trials' epochs

    def problems(self) -> list[str]:
        return _at_least(self, reduction_factor=2, max_t=0)

    def epoch_problems(self, epochs: int) -> list[str]:
        return _max_t_problems(self, epochs)

    def build(self) -> Any:
        from ray.tune.schedulers import HyperBandScheduler

        return HyperBandScheduler(time_attr=TIME_ATTR, metric="val_loss", mode="min",
                                  max_t=self.max_t, reduction_factor=self.reduction_factor)


SCHEDULERS: dict[str, type[SchedulerOptions]] = {
    c.name: c for c in (FIFOOptions, ASHAOptions, HyperBandOptions)}


def _at_least(options: Options, **least: int) -> list[str]:
    return [f"{k}: must be >= {low}{' (0: the epochs)' if k == 'max_t' else ''}, got {v}"
            for k, low in least.items() if (v := getattr(options, k)) < low]


def _max_t_problems(options: ASHAOptions | HyperBandOptions, epochs: int) -> list[str]:
    if options.max_t > epochs:
        return [f"max_t: {options.max_t} is more than the trials' {epochs} epochs; give at "
                "most the epochs (0: the epochs)"]
    return []


def parse(name: str, table: dict[str, Any]) -> tuple[SchedulerOptions | None, list[str]]:
    """The typed options of scheduler `name` from its `[scheduler.NAME]` table, with the
    problems found."""
    return parse_options(SCHEDULERS[name], table, f"scheduler.{name}")  # type: ignore[return-value]
