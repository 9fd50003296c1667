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

from bench.vocabulary import FIFO, TIME_ATTR
from methods.base import Options, parse_options

__all__ = ["FIFO", "SCHEDULERS", "SchedulerOptions", "parse"]


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

    def build(self, space: dict | None = None, seed: int = 0) -> Any:
        """Ray Tune's TrialScheduler for one experiment, over its search `space`, its random
        choices seeded by `seed` (None: first come, first served)."""
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

    def build(self, space: dict | None = None, seed: int = 0) -> Any:
        # Ray Tune (seconds): suites are checked and listed without it; only a run builds this
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

    def build(self, space: dict | None = None, seed: int = 0) -> Any:
        # Ray Tune (seconds): suites are checked and listed without it; only a run builds this
        from ray.tune.schedulers import HyperBandScheduler

        return HyperBandScheduler(time_attr=TIME_ATTR, metric="val_loss", mode="min",
                                  max_t=self.max_t, reduction_factor=self.reduction_factor)


@dataclass(frozen=True)
class PBTOptions(SchedulerOptions):
    """A population of `population` members (the search proposes their first hyperparameters)
    trains in step: every `interval` epochs, the worst `quantile` of it copy the checkpoint of
    one of the best `quantile` and go on with its hyperparameters perturbed, within the search
    space. A member is a trial: its records carry its lineage (bench/population.py)."""

    name: ClassVar[str] = "pbt"
    description: ClassVar[str] = (
        "population-based training, Ray Tune's PopulationBasedTraining (synchronous): every "
        "interval epochs the worst quantile of the population copy a best member's checkpoint "
        "and perturb its hyperparameters (x0.8 or x1.2, or resampled)")
    population: int = 8  # members, each a trial of the search's budget
    interval: int = 2  # epochs between exploit steps
    quantile: float = 0.25  # share of the population that copies / is copied
    resample_probability: float = 0.25  # a perturbed value is drawn anew from the space instead

    def problems(self) -> list[str]:
        found = _at_least(self, population=2, interval=1)
        if not 0 < self.quantile <= 0.5:
            found.append(f"quantile: must be in (0, 0.5], got {self.quantile}")
        if not 0 <= self.resample_probability <= 1:
            found.append(f"resample_probability: must be in [0, 1], got "
                         f"{self.resample_probability}")
        return found

    def epoch_problems(self, epochs: int) -> list[str]:
        if self.interval >= epochs:
            return [f"interval: {self.interval} epochs leaves no exploit step in trials of "
                    f"{epochs} epochs; give fewer than the epochs"]
        return []

    def build(self, space: dict | None = None, seed: int = 0) -> Any:
        from bench import population  # imports Ray: only when a population is built

        return population.build(self, space or {}, seed)


@dataclass(frozen=True)
class PB2Options(PBTOptions):
    """PBT whose explore step is a GP bandit over the continuous hyperparameters (PB2,
    Parker-Holder et al. 2020): categorical ones stay the copied member's."""

    name: ClassVar[str] = "pb2"
    description: ClassVar[str] = (
        "population-based bandits, Ray Tune's PB2 (synchronous): PBT whose new hyperparameters "
        "come from a GP bandit over the population's history, within the space's bounds")


SCHEDULERS: dict[str, type[SchedulerOptions]] = {
    c.name: c for c in (FIFOOptions, ASHAOptions, HyperBandOptions, PBTOptions, PB2Options)}


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
