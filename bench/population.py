"""Population-based training of one search: Ray Tune's PopulationBasedTraining and PB2, in
their synchronous form, fitted to ohobench's trials.

- A member is a trial of the search. The search proposes its first hyperparameters; the
  scheduler changes them in `config["hparams"]`, which the trial trains with
  (bench/trial.py: `ray_trial`). `config["spec"]` stays the member's own: an exploit copies
  another member's checkpoint and hyperparameters, never its identity.
- Perturbed values stay within the search space (clipped to its bounds).
- Synchronous: members wait, paused, at every `interval` epochs until the whole population is
  there, so a population larger than the cluster's slots still trains in step.
- A member's last epoch is never an exploit step: it ends there.
- Lineage: a member that continues from another's checkpoint reports `cloned_from` and
  `cloned_at` on its next record (bench/trial.py).
"""

from __future__ import annotations

import random
from typing import Any

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2

from bench import ray_internals
from bench import space as spaces
from bench.vocabulary import TIME_ATTR


class Member(ray_internals.PopulationHooks):
    """What both schedulers need changed: the member keeps its spec, values stay in the
    space, a member's last epoch ends it, and the choices (which member to copy, how to
    perturb) come from the search's own seeded random state, not the driver's. (Restored
    members and a population whose member errored: bench/ray_internals.py.)"""

    space: dict[str, Any]
    random_state: tuple

    def adjust_config(self, trial, config: dict) -> dict:
        config["spec"] = trial.config["spec"]
        config["hparams"] = clip(config["hparams"], self.space)
        return config

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(TIME_ATTR, 0) >= trial.config["spec"].epochs:
            return TrialScheduler.CONTINUE
        driver = random.getstate()  # Ray's PBT and PB2 draw from the `random` module
        random.setstate(self.random_state)
        try:
            return super().on_trial_result(tune_controller, trial, result)
        finally:
            self.random_state = random.getstate()
            random.setstate(driver)


class MemberPBT(Member, PopulationBasedTraining):
    pass


class MemberPB2(Member, PB2):
    pass


def build(options, space: dict[str, Any], seed: int) -> PopulationBasedTraining:
    """Ray's PBT, or PB2 (`options.name`), for one search; `options`: bench.schedulers'
    PBTOptions or PB2Options."""
    common = dict(time_attr=TIME_ATTR, metric="val_loss", mode="min", synch=True,
                  perturbation_interval=options.interval, quantile_fraction=options.quantile,
                  log_config=False)
    if options.name == "pb2":
        scheduler = MemberPB2(hyperparam_bounds={"hparams": bounds(space)}, **common)
    else:
        scheduler = MemberPBT(hyperparam_mutations={"hparams": mutations(space)},
                              resample_probability=options.resample_probability, **common)
    scheduler.space = space
    scheduler.random_state = random.Random(seed).getstate()
    return scheduler


def mutations(space: dict[str, Any]) -> dict[str, Any]:
    """The space in Ray Tune's terms: a value is perturbed (x0.8, x1.2; a categorical's
    neighbour) or resampled from these."""
    out: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, spaces.LogUniform):
            out[name] = tune.loguniform(dist.low, dist.high)
        elif isinstance(dist, spaces.Uniform):
            out[name] = tune.uniform(dist.low, dist.high)
        elif isinstance(dist, spaces.IntUniform):
            out[name] = tune.randint(dist.low, dist.high + 1)
        else:
            out[name] = list(dist.choices)
    return out


def bounds(space: dict[str, Any]) -> dict[str, list]:
    """PB2's GP bandit explores the numeric hyperparameters within these [low, high]."""
    return {name: [dist.low, dist.high] for name, dist in space.items()
            if not isinstance(dist, spaces.Categorical)}


def clip(hparams: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    out = dict(hparams)
    for name, dist in space.items():
        if name in out and not isinstance(dist, spaces.Categorical):
            value = min(max(out[name], dist.low), dist.high)
            out[name] = int(round(value)) if isinstance(dist, spaces.IntUniform) else value
    return out
