"""A suite: which tasks, methods, budgets and resources. Built from a TOML file and flags, and
validated once, at the boundary, with one error that lists every problem."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

import methods as method_registry
from bench import registry, schedulers, seeds, space
from bench import tasks as task_registry
from bench.datasets import DataSource
from bench.errors import ConfigError, raise_if
from methods import optimizers
from methods.base import Method, MethodKind, Options, parse_options

DEVICES = ("auto", "cpu", "cuda")
NAME = re.compile(r"[A-Za-z0-9._-]+")  # a run's name: part of its directory's name
MAX_NAME = 100  # characters: the run directory adds a timestamp, and names stop at 255 bytes
MAX_SEED = 2**32 - 1
# Sane upper bounds on counts: a mistyped 9223372036854775808 is refused, not planned.
MAX_COUNT = {"repetitions": 10_000, "trials": 100_000, "epochs": 1_000_000,
             "max_failures": 1_000, "max_concurrent": 100_000, "batch_size": 10_000_000,
             "val_batch_size": 10_000_000, "train_eval_size": 1_000_000_000}


@dataclass(frozen=True)
class Resolved:
    """What `build` parsed and filled in, once: the typed options every experiment and trial
    of a (method or scheduler, task) pair carries. Nothing downstream parses a table again."""

    options: Mapping[tuple[str, str], Options] = field(default_factory=dict)  # (method, task)
    schedulers: Mapping[tuple[str, str], schedulers.SchedulerOptions] = field(
        default_factory=dict)  # (scheduler, task)


@dataclass(frozen=True)
class Suite:
    name: str = "quick"
    tasks: tuple[str, ...] = ("digits",)
    methods: tuple[str, ...] = ("random", "hd", "oho")
    optimizers: tuple[str, ...] = ("fixed",)  # families black-box trials train with
    # Schedulers black-box searches run under (bench/schedulers.py); online methods: fifo.
    schedulers: tuple[str, ...] = (schedulers.FIFO,)
    repetitions: int = 3  # independent searches (black-box) or initializations (online)
    trials: int = 6  # black-box budget per repetition
    budget_seconds: float | None = None  # black-box: wall-clock limit per repetition
    max_failures: int = 0  # retries of a trial that raises
    epochs: int | None = None  # None: the task's default
    batch_size: int | None = None  # None: the task's default
    val_batch_size: int | None = None  # hypergradient validation batches; None: batch_size
    # Training loss per epoch on a fixed random subset of this many examples; 0 = all of them
    # (validation and test are always evaluated in full).
    train_eval_size: int = 0
    seed: int = 0
    # development: defaults may be tuned on it; evaluation: a published study, which refuses
    # the development seeds (bench/seeds.py).
    purpose: str = seeds.DEVELOPMENT
    device: str = "auto"
    max_concurrent: int = 0  # trials of one search at once; 0: 4 if model-based, else no cap
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    amp: bool = False  # bf16 autocast of training losses: black-box methods, tasks with amp
    data_dir: str | None = None  # file-reading tasks; None: $OHOBENCH_DATA, else ./data
    download: bool = False  # fetch missing dataset files with torchvision, only when asked
    target: float | None = None  # test-loss target; None: median final test loss
    out: str = "results"
    address: str | None = None  # an existing Ray cluster; None starts a local one
    storage: str | None = None  # Ray Tune's storage (shared path or URI); None: RUN_DIR/ray
    # Range overrides, e.g. lr = [1e-4, 1]; a sub-table per family, e.g. [space.adam].
    space: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method options
    scheduler: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-scheduler options
    # Filled by `build`; not a suite key.
    resolved: Resolved = field(default_factory=Resolved, compare=False, repr=False)

    def epochs_for(self, task: str) -> int:
        return self.epochs or task_registry.get(task).epochs

    def batch_sizes_for(self, task: str) -> tuple[int, int]:
        """Training and validation (hypergradient) batch sizes on `task`, defaults filled."""
        batch = self.batch_size or task_registry.get(task).batch_size
        return batch, self.val_batch_size or batch

    def space_for(self, task: str, optimizer: str | None = None,
                  tunes: tuple[str, ...] = ()) -> dict:
        """The search space of (task, optimizer family), with this suite's overrides; with no
        family, the task's own space (online methods draw initializations from it, with
        momentum too where the suite's [space] names it and the method `tunes` it)."""
        return family_space(self, task_registry.get(task), optimizer, tunes)[0]

    def options_for(self, method: str, task: str) -> Options:
        """The method's options on `task`, as `build` resolved them."""
        return self.resolved.options[method, task]

    def families_for(self, method: str) -> tuple[str | None, ...]:
        """Black-box methods run once per optimizer family; online methods train with their
        own rule (None)."""
        return (None,) if method_registry.get(method).kind is MethodKind.ONLINE \
            else self.optimizers

    def schedulers_for(self, method: str) -> tuple[str, ...]:
        """Black-box searches run under each of the suite's schedulers; an online method's one
        trial per initialization has nothing to schedule (fifo)."""
        return (schedulers.FIFO,) if method_registry.get(method).kind is MethodKind.ONLINE \
            else self.schedulers

    def scheduler_options(self, name: str, task: str) -> schedulers.SchedulerOptions:
        """Scheduler `name` with this suite's options, `max_t` resolved for `task`'s epochs."""
        return self.resolved.schedulers[name, task]

    def trial_keys(self) -> dict[str, Any]:
        """What every trial config carries for data and precision; the data directory as an
        absolute path, since Ray runs trials in their own working directory."""
        return {"data_dir": DataSource.resolve(self.data_dir).root, "download": self.download,
                "amp": self.amp}

    def record(self) -> dict[str, Any]:
        """What run.json stores of this suite: its keys as given (`suite`, which `build` reads
        back on resume) and, per task, what `build` resolved (`tasks`: the task's definition
        and every method's and scheduler's options, defaults filled in)."""
        tasks = {}
        for t in self.tasks:
            batch, val_batch = self.batch_sizes_for(t)
            tasks[t] = {"epochs": self.epochs_for(t), "batch_size": batch,
                        "val_batch_size": val_batch,
                        "options": {m: asdict(self.options_for(m, t)) for m in self.methods},
                        "schedulers": {n: asdict(o) for (n, task), o
                                       in self.resolved.schedulers.items() if task == t}}
        return {"suite": self.as_dict(), "tasks": tasks}

    def as_dict(self) -> dict[str, Any]:
        """The suite's keys as given (run.json's `suite`; `build` reads it back)."""
        return {k: (list(v) if isinstance(v := getattr(self, k), tuple) else v) for k in FIELDS}


FIELDS = {f.name: f for f in fields(Suite) if f.name != "resolved"}
TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[str, ...]": tuple,
         "dict[str, Any]": dict, "dict[str, dict[str, Any]]": dict}
LISTS = ("tasks", "methods", "optimizers", "schedulers")
# Names that were methods once: why they are refused, and the new spelling.
RETIRED_METHODS = {
    "asha": "method 'asha' is now the scheduler asha: random search under ASHA is "
            "methods = [\"random\"] with schedulers = [\"asha\"] (--method random --scheduler "
            "asha), its options in [scheduler.asha]"}


def family_space(s: Suite, task, optimizer: str | None, tunes: tuple[str, ...] = ()
                 ) -> tuple[dict, list[str]]:
    """The space of (task, optimizer family) as the family declares it (None: the task's own,
    which online initializations are drawn from, with momentum where the suite names it and
    the online method `tunes` it), with the task's optional dimensions that the suite names
    added, then the suite's flat overrides, then its [space.FAMILY] table; with the problems
    found."""
    if optimizer is None:
        declared = dict(task.space)
        if "momentum" in tunes and "momentum" in s.space:  # from the black-box draws' range
            declared["momentum"] = optimizers.MOMENTUM
    else:
        declared = optimizers.space(optimizers.get(optimizer), task.space,
                                    s.epochs_for(task.name), momentum="momentum" in s.space)
    flat = {k: v for k, v in s.space.items() if not isinstance(v, dict)}
    declared.update({k: d for k, d in task.optional_space.items() if k in flat})  # added
    flat = {k: v for k, v in flat.items() if k in declared}
    out, found = space.override(declared, flat)
    table = s.space.get(optimizer, {}) if optimizer else {}
    out, bad = space.override(out, table if isinstance(table, dict) else {})
    return out, found + [f"space.{optimizer}: {p.removeprefix('space: ')}" for p in bad]


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read suite file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"suite file {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"suite file {str(path)!r} is not UTF-8 text (byte "
                          f"{exc.object[exc.start]:#04x} at offset {exc.start}); save it as "
                          "UTF-8") from None


def build(values: dict[str, Any], where: str = "suite", need_data: bool = True) -> Suite:
    """A validated Suite from plain values (a TOML table merged with flags). Without
    `need_data`, missing dataset files are no problem (a cost estimate)."""
    problems = [f"{where}: unknown key {k!r}; valid: {', '.join(FIELDS)}"
                for k in values if k not in FIELDS]
    known = {k: v for k, v in values.items() if k in FIELDS}
    for k in LISTS:
        if isinstance(known.get(k), str):
            known[k] = [known[k]]
        if isinstance(known.get(k), list):
            if not all(isinstance(v, str) for v in known[k]):
                problems.append(f"{k}: expected a list of names (strings), got {known[k]!r}")
                del known[k]
                continue
            known[k] = tuple(known[k])
    for k, v in list(known.items()):
        expected = TYPES[FIELDS[k].type.removesuffix(" | None")]
        if expected is float and isinstance(v, int) and not isinstance(v, bool):
            known[k] = v = float(v)
        if not isinstance(v, expected) or (isinstance(v, bool) and expected is not bool):
            problems.append(f"{k}: expected {expected.__name__}, got {v!r}")
            del known[k]
    suite = replace(Suite(), **known)
    resolved, found = resolve(suite)
    raise_if(problems + check(suite, need_data) + found)
    return replace(suite, resolved=resolved)


def resolve(s: Suite) -> tuple[Resolved, list[str]]:
    """Every method's options, parsed once per task with its defaults filled in (an online
    method's bounds from the task's ranges), and every scheduler's, parsed once with max_t
    filled per task from its epochs;
    with the problems found, each named once. Names and tables that `check` refuses are
    skipped here."""
    all_tasks, all_methods = task_registry.all_tasks(), method_registry.all_methods()
    options, chosen, found = {}, {}, []
    scheduled = {}  # parsed once; fifo too: online methods run under it whatever the suite's
    for name in [n for n in dict.fromkeys((*s.schedulers, schedulers.FIFO))
                 if n in schedulers.SCHEDULERS and isinstance(s.scheduler.get(n, {}), dict)]:
        parsed, bad = schedulers.parse(name, s.scheduler.get(name, {}))
        found += bad
        if parsed is not None and not bad:
            scheduled[name] = parsed
            population = getattr(parsed, "population", None)
            if population is not None and population > s.trials:
                found.append(f"scheduler.{name}.population: {population} members is more than "
                             f"the suite's trials ({s.trials}); a population trains population "
                             "x epochs, as a search of `trials` trials does at most: give "
                             f"population <= {s.trials} in [scheduler.{name}], or trials >= "
                             f"{population} (--trials {population})")
    for t in [t for t in s.tasks if t in all_tasks]:
        task = all_tasks[t]
        for m in [m for m in s.methods if m in all_methods]:
            method, table = all_methods[m], s.options.get(m, {})
            if not isinstance(table, dict):
                continue  # named by check
            initial = family_space(s, task, None, tuned_by(s, m, method))[0]
            parsed, bad = parse_options(method.options_type, method.resolve(table, initial),
                                        f"options.{m}")
            found += bad
            if parsed is not None and not bad:
                options[m, t] = parsed
                found += [f"options.{m} ({t}): {p}" for p in method.problems_for(parsed, task)
                          + method.bound_problems(parsed, initial)]
        for name, parsed in scheduled.items():  # max_t per task
            chosen[name, t] = parsed.for_epochs(s.epochs_for(t))
            found += [f"scheduler.{name}.{p}" for p in parsed.epoch_problems(s.epochs_for(t))]
    return Resolved(options, chosen), list(dict.fromkeys(found))


def check(s: Suite, need_data: bool = True) -> list[str]:
    all_tasks, all_methods = task_registry.all_tasks(), method_registry.all_methods()
    retired = [m for m in s.methods if m in RETIRED_METHODS and m not in all_methods]
    found = [RETIRED_METHODS[m] for m in retired]
    for what, names, reg in (("task", s.tasks, all_tasks), ("method", s.methods, all_methods),
                             ("optimizer", s.optimizers, optimizers.FAMILIES),
                             ("scheduler", s.schedulers, schedulers.SCHEDULERS)):
        if not names:
            found.append(f"{what}s: give at least one; valid: {', '.join(sorted(reg))}")
        found += registry.unknown([n for n in names if n not in retired], reg, what)
        found += [f"{what}s: {n!r} is named twice; name each {what} once"
                  for n in dict.fromkeys(names) if names.count(n) > 1]
    if not NAME.fullmatch(s.name):
        found.append(f"name: {s.name!r} is not a plain name; use letters, digits, '-', '_' "
                     "and '.' only")
    elif len(s.name) > MAX_NAME:
        found.append(f"name: {len(s.name)} characters is too long for a directory name; give "
                     f"at most {MAX_NAME}")
    if not 0 <= s.seed <= MAX_SEED:
        found.append(f"seed: must be 0 to {MAX_SEED}, got {s.seed}")
    for k, most in MAX_COUNT.items():
        value = getattr(s, k)
        if value is not None and value > most:
            found.append(f"{k}: {value} is more than this suite allows ({most:,}); give at "
                         f"most {most:,}")
    found += seeds.problems(s.purpose, s.seed)
    for k in ("repetitions", "trials"):
        if getattr(s, k) < 1:
            found.append(f"{k}: must be >= 1, got {getattr(s, k)}")
    for k in ("epochs", "batch_size", "val_batch_size"):
        if getattr(s, k) is not None and getattr(s, k) < 1:
            found.append(f"{k}: must be >= 1, got {getattr(s, k)}")
    if s.budget_seconds is not None and not (s.budget_seconds > 0
                                             and math.isfinite(s.budget_seconds)):
        found.append(f"budget_seconds: must be a positive number of seconds, "
                     f"got {s.budget_seconds}")
    if s.train_eval_size < 0:
        found.append(f"train_eval_size: must be >= 0 (0 = the whole training split), got "
                     f"{s.train_eval_size}")
    if s.max_failures < 0:
        found.append(f"max_failures: must be >= 0, got {s.max_failures}")
    if s.device not in DEVICES and not s.device.startswith("cuda:"):
        found.append(f"device: {s.device!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    elif s.device.startswith("cuda") and not s.address:
        if not torch.cuda.is_available():
            found.append(f"device: {s.device!r} requested but CUDA is not available here; "
                         "use --device auto or cpu")
    if not 0 < s.cpus_per_trial < math.inf:
        found.append(f"cpus_per_trial: must be a finite number > 0, got {s.cpus_per_trial}")
    if not 0 <= s.gpus_per_trial < math.inf:
        found.append(f"gpus_per_trial: must be a finite number >= 0, got {s.gpus_per_trial}")
    elif s.gpus_per_trial > 1 and not s.gpus_per_trial.is_integer():
        found.append(f"gpus_per_trial: a fraction must be below 1 (trials share a GPU) or a "
                     f"whole number of GPUs, got {s.gpus_per_trial}")
    if s.max_concurrent < 0:
        found.append(f"max_concurrent: must be >= 0, got {s.max_concurrent}")
    elif s.max_concurrent > s.trials >= 1 and any(
            all_methods[m].kind is MethodKind.BLACK_BOX for m in s.methods if m in all_methods):
        found.append(f"max_concurrent: {s.max_concurrent} trials of one search at once is more "
                     f"than its budget of {s.trials} trials (trials); give at most {s.trials}, "
                     "or 0 (model-based searches 4 at once, others as resources allow)")
    if s.target is not None and not (s.target > 0 and math.isfinite(s.target)):
        found.append(f"target: must be a positive, finite test loss, got {s.target}")
    found += space_problems(s, all_tasks) + data_problems(s, all_tasks, all_methods, need_data)
    found += scheduler_problems(s, all_tasks, all_methods)
    for m, opts in s.options.items():
        if m not in s.methods:
            found.append(f"options.{m}: method {m!r} is not in this suite's methods "
                         f"({', '.join(s.methods)})")
        elif m in all_methods and not isinstance(opts, dict):
            found.append(f"options.{m}: expected a table, got {opts!r}")
    return found


def scheduler_problems(s: Suite, all_tasks: dict, all_methods: dict) -> list[str]:
    """[scheduler.NAME] tables that name no scheduler of the suite or hold bad options, and
    schedulers in a suite with nothing for them to schedule (online methods only)."""
    found = []
    for name, table in s.scheduler.items():
        if name not in schedulers.SCHEDULERS:
            found.append(f"scheduler.{name}: unknown scheduler {name!r}; valid: "
                         f"{', '.join(sorted(schedulers.SCHEDULERS))}")
        elif name not in s.schedulers:
            found.append(f"scheduler.{name}: scheduler {name!r} is not in this suite's "
                         f"schedulers ({', '.join(s.schedulers)})")
        elif not isinstance(table, dict):
            found.append(f"scheduler.{name}: expected a table, got {table!r}")
    scheduled = [n for n in s.schedulers if n != schedulers.FIFO]
    kinds = [all_methods[m].kind for m in s.methods if m in all_methods]
    if scheduled and kinds and MethodKind.BLACK_BOX not in kinds and len(kinds) == len(s.methods):
        found.append(f"schedulers: {', '.join(scheduled)} "
                     f"{'applies' if len(scheduled) == 1 else 'apply'} to the trials of "
                     f"black-box searches only, and this suite's methods ({', '.join(s.methods)})"
                     " are all online (one trial per initialization, nothing to stop early); "
                     "drop the scheduler or add a black-box method")
    return found


def data_problems(s: Suite, all_tasks: dict, all_methods: dict, need_data: bool = True
                  ) -> list[str]:
    """Missing dataset files (unless `download`, or not `need_data`) and mixed precision where
    it is not allowed, found before Ray starts."""
    chosen = [all_tasks[t] for t in s.tasks if t in all_tasks]
    data = DataSource.resolve(s.data_dir, s.download)
    found = [f"{t.name}: {problem}" for t in chosen if t.missing_data and need_data
             and not s.download and (problem := t.missing_data(data))]
    kinds = {m: all_methods[m].kind for m in s.methods if m in all_methods}
    device = None  # on a cluster (address), trials check their own device
    if s.amp and not s.address and s.device in DEVICES:
        device = "cuda" if s.device == "cuda" or torch.cuda.is_available() else "cpu"
    return found + task_registry.amp_problems(s.amp, chosen, kinds, device)


def tuned_by(s: Suite, name: str, method: Method) -> tuple[str, ...]:
    """What method `name` tunes in this suite: its own `tunes` and its options' `tune` list, as
    given (parse_options checks that list)."""
    table = s.options.get(name, {})
    tune = table.get("tune", ()) if isinstance(table, dict) else ()
    tune = tuple(tune) if isinstance(tune, list | tuple) and all(
        isinstance(v, str) for v in tune) else ()
    return (*method.tunes, *tune)


def space_problems(s: Suite, all_tasks: dict) -> list[str]:
    """Unknown names and bad ranges in [space], for every (task, family) the suite runs, and
    for the online initializations."""
    all_methods = method_registry.all_methods()
    black_box = any(all_methods[m].kind is MethodKind.BLACK_BOX for m in s.methods
                    if m in all_methods)
    online_tunes = tuple(dict.fromkeys(
        k for m in s.methods if m in all_methods and all_methods[m].kind is MethodKind.ONLINE
        for k in tuned_by(s, m, all_methods[m])))
    families = [f for f in s.optimizers if f in optimizers.FAMILIES] if black_box else []
    tasks = [all_tasks[t] for t in s.tasks if t in all_tasks]
    declared = {k for t in tasks for f in [None, *families]
                for k in (optimizers.space(optimizers.FAMILIES[f], t.space, s.epochs_for(t.name),
                                           momentum=True) if f else t.space)}
    declared |= {k for t in tasks for k in t.optional_space}
    found = []
    for k, v in s.space.items():
        if isinstance(v, dict):
            if k not in families:
                found.append(f"space.{k}: {k!r} is not an optimizer family that this suite's "
                             f"black-box methods run ({', '.join(families) or 'none'})")
                continue
            own = {n for t in tasks for n in family_space(s, t, k)[0]}
            found += [f"space.{k}: unknown hyperparameter {n!r}; valid: {', '.join(sorted(own))}"
                      for n in v if n not in own]
        elif k not in declared and k != "momentum":
            found.append(f"space: unknown hyperparameter {k!r}; valid: "
                         f"{', '.join(sorted(declared))}")
    if "momentum" in s.space and "momentum" not in online_tunes and not any(
            optimizers.FAMILIES[f].optimizer == "sgd" for f in families):
        found.append("space: momentum is drawn by the black-box SGD families (fixed, step, exp, "
                     "cosine) and by online methods that tune it (options.METHOD.tune), and "
                     "this suite runs neither")
    for t in tasks:
        seen: set[str] = set()
        for f in [None, *families]:
            overridden, bad = family_space(s, t, f, online_tunes if f is None else ())
            new = [p for p in space.problems(overridden) if p not in seen]
            seen.update(new)
            found += bad + [f"space ({t.name}{', ' + f if f else ''}): {p}" for p in new]
    return found
