"""What a suite runs, described once: an Experiment per (task, method, family, repetition), and
the frozen TrialConfig each of its trials carries to the worker. Both are built from a validated
Suite; nothing downstream parses options again.

A black-box repetition is an independent seeded search of `trials` trials (its own cap, budget
and scheduler); an online repetition is a search of one trial, whose initialization and
model seed it shares with the other online methods of that repetition (paired)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.vocabulary import FIFO, ONLINE, entry_name

if TYPE_CHECKING:  # kept light: a Ray worker unpickling a TrialConfig imports this module
    from bench.schedulers import SchedulerOptions
    from bench.suite import Suite
    from methods.base import Options

# Trials a model-based search runs at once when the suite sets no limit (max_concurrent = 0):
# each proposal then sees all results but those of at most 3 running trials.
MODEL_BASED_CONCURRENT = 4


def derive_seed(*parts: int | str) -> int:
    """A stable 31-bit seed from the suite seed and names (no dependence on PYTHONHASHSEED)."""
    ints = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0] >> 1)




def experiment_name(task: str, method: str, optimizer: str | None, repetition: int,
                    scheduler: str = FIFO) -> str:
    """The experiment's journal and trial directory name; fifo's are named as before
    schedulers were a choice, so older runs still resume."""
    return "__".join([task, method, *([optimizer] if optimizer else []),
                      *([scheduler] if scheduler != FIFO else []), f"rep{repetition}"])


@dataclass(frozen=True)
class TrialConfig:
    """One training run. `hparams` are the fixed (black-box) or initial (online) values;
    `options` the method's parsed options (None: its defaults)."""

    task: str
    method: str
    hparams: dict[str, Any]
    seed: int
    epochs: int
    experiment: str = ""  # the experiment's name (bench.experiment.experiment_name)
    optimizer: str = "fixed"  # black-box: the optimizer family; online: ONLINE
    scheduler: str = FIFO  # the scheduler of its experiment (bench/schedulers.py)
    options: Options | None = None
    data_seed: int = 0
    device: str = "auto"
    batch_size: int | None = None
    val_batch_size: int | None = None
    train_eval_size: int = 0  # training examples evaluated per epoch; 0 = all
    repetition: int = 0
    trial: int = 0  # the trial's index within its experiment
    dtype: str = "float32"
    data_dir: str | None = None  # file-reading tasks; None: $OHOBENCH_DATA
    download: bool = False
    amp: bool = False  # bf16 autocast of training losses (black-box, tasks with amp)


@dataclass(frozen=True)
class Experiment:
    """One search of a suite, everything the scheduler and the trials need to know about it."""

    name: str
    task: str
    method: str
    optimizer: str  # the family black-box trials train with, or ONLINE
    repetition: int
    entry: str  # its entry in the report (entry_name)
    label: str  # for progress lines
    budget: int  # trials
    cap: int | None  # trials of this search at once (None: as resources allow)
    budget_seconds: float | None  # from the search's first trial start; None: no limit
    search_seed: int
    scheduler: SchedulerOptions  # over epochs, within this search only
    model_based: bool
    space: dict = field(repr=False)
    options: Options = field(repr=False)
    trial_base: dict = field(repr=False)  # TrialConfig fields shared by its trials
    model_seed_parts: tuple = ()

    def trial_config(self, index: int, hparams: dict) -> TrialConfig:
        seed = derive_seed(*self.model_seed_parts, index)
        return TrialConfig(hparams=hparams, seed=seed, trial=index, **self.trial_base)

    def search(self):
        # methods imports torch: kept off this module, which a Ray worker imports to unpickle
        import methods as method_registry

        return method_registry.get(self.method).search(self.space, self.search_seed,
                                                       self.budget, self.options)


def cap_for(model_based: bool, max_concurrent: int, budget: int) -> int | None:
    """A search's own cap: `max_concurrent` (0: none), and MODEL_BASED_CONCURRENT for a
    model-based search by default; never above its budget."""
    cap = max_concurrent or (MODEL_BASED_CONCURRENT if model_based else 0)
    return min(cap, budget) if cap else None


def plan(suite: Suite) -> list[Experiment]:
    """Every experiment of `suite`, in suite order."""
    # methods imports torch: kept off this module, which a Ray worker imports to unpickle
    import methods as method_registry
    from methods.base import MethodKind

    out = []
    for task in suite.tasks:
        for name in suite.methods:
            method = method_registry.get(name)
            online = method.kind is MethodKind.ONLINE
            options = suite.options_for(name, task)  # parsed and resolved once, by suite.build
            for family in suite.families_for(name):
                for scheduler in suite.schedulers_for(name):
                    for rep in range(suite.repetitions):
                        out.append(_experiment(suite, task, name, method, online, options,
                                               family, suite.scheduler_options(scheduler, task),
                                               rep))
    return out


def _experiment(suite: Suite, task: str, name: str, method, online: bool, options: Options,
                family: str | None, scheduler: SchedulerOptions, rep: int) -> Experiment:
    # A population-based search is its population, every member live at once (paused members
    # wait for the rest at each exploit step, so Ray's slots limit how many train together).
    population = getattr(scheduler, "population", None)
    budget = 1 if online else population or suite.trials
    optimizer = ONLINE if online else family
    exp = experiment_name(task, name, family, rep, scheduler.name)
    entry = entry_name(name, family, scheduler.name)
    batch_size, val_batch_size = suite.batch_sizes_for(task)
    base = {"task": task, "method": name, "experiment": exp, "optimizer": optimizer,
            "scheduler": scheduler.name,
            "options": options, "epochs": suite.epochs_for(task), "data_seed": suite.seed,
            "device": suite.device, "batch_size": batch_size,
            "val_batch_size": val_batch_size, "train_eval_size": suite.train_eval_size,
            "repetition": rep, **suite.trial_keys()}
    return Experiment(
        name=exp, task=task, method=name, optimizer=optimizer, repetition=rep, entry=entry,
        label=f"{task} · {entry} · rep {rep + 1}/{suite.repetitions}", budget=budget,
        cap=None if population else cap_for(method.model_based, suite.max_concurrent, budget),
        budget_seconds=None if online else suite.budget_seconds,
        # Online methods share initializations per repetition; each search is independent.
        # A search's seed does not depend on its scheduler: under asha, random search tries
        # the configurations it tries under fifo (common random numbers).
        search_seed=(derive_seed(suite.seed, task, "init", rep) if online else
                     derive_seed(suite.seed, task, name, family, rep)),
        scheduler=scheduler, model_based=method.model_based,
        space=suite.space_for(task, family, (*method.tunes, *getattr(options, "tune", ()))),
        options=options, trial_base=base,
        model_seed_parts=(suite.seed, task, "model", rep))
