"""The plugin interface. A method combines at most two roles:

- a Search decides what to try next (black-box methods); it is told how finished trials went.
  Whether a trial is stopped early is not the search's decision but its scheduler's, chosen
  apart in the suite (bench/schedulers.py), as in Ray Tune and syne-tune;
- an UpdateRule says how parameters, and possibly hyperparameters, change at each training step
  (online methods). The harness owns the loop, data and timing and calls the rule AlgoPerf style:
  `state, params = rule.step(state, params, batch, ctx)`.

Nothing here imports Ray: the runner wraps a Search as a Ray Tune Searcher.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from bench import space as spaces
from bench import vocabulary
from bench.space import SearchSpace

Params = dict[str, Tensor]
Batch = tuple[Tensor, Tensor]


class MethodKind(enum.Enum):
    BLACK_BOX = vocabulary.BLACK_BOX  # many trials, each with fixed hyperparameters
    ONLINE = vocabulary.ONLINE  # one trial per initialization, hyperparameters move while it trains


class TrialStatus(enum.Enum):
    COMPLETED = "completed"
    DIVERGED = "diverged"  # a loss became NaN or inf: a result, not a crash
    COLLAPSED = "collapsed"  # the training loss went back to chance level (bench.harness)
    ERRORED = "errored"  # the trial raised
    STOPPED = "stopped"  # stopped early by a scheduler (asha, hyperband): its time counted


@dataclass(frozen=True)
class TrialOutcome:
    """What a search learns from a finished trial. Selection is on validation loss only."""

    status: TrialStatus
    val_loss: float | None = None


class Search(ABC):
    """What to try next. Seeded: the same seed gives the same proposals when run one at a time."""

    @abstractmethod
    def suggest(self) -> dict[str, Any] | None:
        """The next configuration, or None when the budget is spent."""

    @abstractmethod
    def observe(self, config: Mapping[str, Any], outcome: TrialOutcome) -> None:
        """Told once per suggested configuration, when its trial ends."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the search after a restart (picklable)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class StepContext:
    """What an update rule may use at a training step, and nothing more."""

    loss: Callable[[Params, Batch], Tensor]  # training-mode loss of a minibatch, no penalty term
    val_loss: Callable[[Params, Batch], Tensor]  # eval-mode loss, for hypergradients
    val_batch: Callable[[], Batch]  # a fresh validation minibatch on each call
    train_sample: Callable[[], Batch]  # a fresh random training minibatch (for ablations)
    # Training loss with Gaussian noise of std noise[layer] added to each named layer's input.
    noisy_loss: Callable[[Params, Batch, Mapping[str, Tensor]], Tensor]
    step: int = 0  # global training step, counted from 0
    epoch: int = 0  # counted from 1 while training
    # The run's length, for rules that schedule over it (0: not known, e.g. a direct call).
    epochs: int = 0
    steps_per_epoch: int = 0
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None  # the task's loss(outputs, y)


class UpdateRule(ABC):
    """How parameters (and possibly hyperparameters) change at each training step.

    State is explicit: `init` builds it, `step` returns it. Hyperparameters are plain floats in
    the state, so the harness can record them without knowing the rule.
    """

    @abstractmethod
    def init(self, params: Params, hparams: Mapping[str, Any]) -> Any: ...

    @abstractmethod
    def step(self, state: Any, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[Any, Params]: ...

    @abstractmethod
    def hparams(self, state: Any) -> dict[str, float]:
        """Current value of every hyperparameter."""

    def diagnostics(self, state: Any) -> dict[str, float]:
        """Latest hypergradients, influence norms, skipped steps... recorded every epoch."""
        return {}

    def lr_floored(self, state: Any) -> bool:
        """Whether, over the epoch that just ended, a learning rate this rule moves sat at its
        floor, so that training had all but stopped (recorded as `lr_floored`)."""
        return False

    def evaluator(self, state: Any) -> Callable[[Params, Tensor], Tensor] | None:
        """Outputs for (params, x) the harness evaluates with instead of the task's model
        (e.g. the child a controller would choose); None: the task's model."""
        return None

    def state_dict(self, state: Any) -> Any:
        """What a checkpoint keeps of `state` (saved with torch.save, loaded with pickle):
        by default the state itself. Override when it holds what pickle cannot keep as is: a
        torch.optim optimizer bound to the parameters, a torch.Generator."""
        return state

    def load_state_dict(self, state: Any, saved: Any) -> Any:
        """`state`, fresh from `init` on the restored parameters, continued from `saved` (what
        `state_dict` returned). By default `saved` replaces it, once `check_saved` found it
        whole: a dataclass that lost a field would read the field's default and train on."""
        self.check_saved(state, saved)
        return saved

    def check_saved(self, template: Any, saved: Any, closed: bool = False) -> None:
        """Raise ValueError, naming this rule and the keys, unless `saved` is whole next to
        `template` (what this rule saves, fresh): a dataclass must be of the template's type,
        with every field the template has set (in nested dataclasses too) and no attribute it
        does not declare; a mapping must have every key of the template's, and with `closed`
        no other (open by default: a rule's dict may gain keys as it trains). Other values are
        not checked."""
        if dataclasses.is_dataclass(template) and type(saved) is not type(template):
            problem = f"is a {type(saved).__name__}, not the {type(template).__name__} it builds"
        elif isinstance(template, Mapping) and not isinstance(saved, Mapping):
            problem = f"is a {type(saved).__name__}, not a mapping"
        else:
            missing, unknown = _saved_keys(template, saved, "", closed, set())
            said = ["lacks " + ", ".join(map(repr, missing))] if missing else []
            if unknown:
                said.append("has unknown " + ", ".join(map(repr, unknown)))
            if not said:
                return
            problem = f"({type(saved).__name__}) {' and '.join(said)}"
        raise ValueError(f"{type(self).__name__}: the saved rule state {problem}: a damaged "
                         "checkpoint, or one saved by another version of this rule; it cannot "
                         "be continued")


def _own(obj: Any) -> set[str]:
    """The attributes set on an instance itself (not read from its class)."""
    if hasattr(obj, "__dict__"):
        return set(vars(obj))
    return {f.name for f in dataclasses.fields(obj) if hasattr(obj, f.name)}  # __slots__


def _saved_keys(template: Any, saved: Any, path: str, closed: bool, seen: set[int]
                ) -> tuple[list[str], list[str]]:
    """UpdateRule.check_saved's walk over a `saved` of the template's kind: the dotted keys it
    lacks and those it has unknown. Nested dataclasses of the same type are walked too."""
    missing: list[str] = []
    unknown: list[str] = []
    if isinstance(template, Mapping):
        missing = [path + str(k) for k in template if k not in saved]
        if closed:
            unknown = [path + str(k) for k in saved if k not in template]
        return missing, unknown
    if not dataclasses.is_dataclass(template) or id(saved) in seen:
        return missing, unknown
    seen.add(id(saved))
    declared = [f.name for f in dataclasses.fields(template)]
    expected, own = _own(template), _own(saved)
    for key in declared:
        if key not in own:
            if key in expected:  # else a field init leaves unset (init=False, no default)
                missing.append(path + key)
            continue
        inner, value = getattr(template, key), getattr(saved, key)
        if (dataclasses.is_dataclass(inner) and not isinstance(inner, type)
                and type(value) is type(inner)):
            more = _saved_keys(inner, value, f"{path}{key}.", False, seen)
            missing += more[0]
            unknown += more[1]
    unknown += [path + k for k in sorted(own) if k not in declared]
    return missing, unknown


@dataclass(frozen=True)
class Options:
    """Base of a method's typed options. Subclasses are frozen dataclasses; `problems` checks
    values and returns one message per problem. `BOUNDS` names the options that default to
    None and stand for the top of a hyperparameter's range in the suite's space (an online
    method's `lr_max` tops the lr range its initializations come from)."""

    BOUNDS: ClassVar[dict[str, str]] = {}  # option -> the hyperparameter whose range it tops

    def problems(self) -> list[str]:
        return []


def parse_options(cls: type[Options], given: Mapping[str, Any], where: str
                  ) -> tuple[Options | None, list[str]]:
    """Build typed options from a suite's table, naming unknown keys, wrong types and
    numbers that are not finite."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    found = [f"{where}: unknown option {k!r}; valid: {', '.join(fields) or 'none'}"
             for k in given if k not in fields]
    values = {}
    for k, v in given.items():
        if k not in fields:
            continue
        default = getattr(cls, k, None)
        if isinstance(default, tuple) and isinstance(v, list):
            v = tuple(v)
        if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if default is not None and type(v) is not type(default):
            found.append(f"{where}.{k}: expected {type(default).__name__}, got {v!r}")
            continue
        if isinstance(v, float) and not math.isfinite(v):  # every option, whatever method
            found.append(f"{where}.{k}: must be a finite number, got {v}")
            continue
        values[k] = v
    if found:
        return None, found
    opts = cls(**values)
    return opts, [f"{where}.{p}" for p in opts.problems()]


class Method(ABC):
    """A named HPO method. Subclasses set the class attributes and implement what their kind
    needs: black-box methods `search`, online methods `update_rule`."""

    name: ClassVar[str]
    kind: ClassVar[MethodKind]
    description: ClassVar[str] = ""
    options_type: ClassVar[type[Options]] = Options
    # Hyperparameters an online method moves; black-box methods tune the whole space.
    tunes: ClassVar[tuple[str, ...]] = ()
    # Black-box: proposals come from a model of past results, so the runner limits how many
    # trials run at once (Ray's ConcurrencyLimiter) to keep proposals informed.
    model_based: ClassVar[bool] = False
    # A trial's first E epochs are the same whatever the run's length, and (black-box) the
    # proposals do not depend on results: the horizon study may then read a shorter epoch
    # budget off a longer run (bench.analysis.horizon). Off unless a method declares it.
    horizon_free: ClassVar[bool] = False

    def problems_for(self, options: Options, task: Any) -> list[str]:
        """Problems of these options on this task (e.g. more layer groups than layers)."""
        return []

    def search(self, space: SearchSpace, seed: int, budget: int, options: Options) -> Search:
        """Black-box: propose `budget` configurations. Online: one initialization per search."""
        return RandomSearch(space, seed, budget=1 if self.kind is MethodKind.ONLINE else budget)

    def resolve(self, given: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
        """The suite's options table for one task, with what this method derives from the
        task's space filled in: each option of `options_type.BOUNDS` that the table leaves out
        (and that defaults to None) is the top of its hyperparameter's range. A suite calls it
        once per task, before parsing."""
        out = dict(given)
        unset = {f.name for f in dataclasses.fields(self.options_type) if f.default is None}
        for option, kind in self.options_type.BOUNDS.items():
            if option in unset and out.get(option) is None and kind in space:
                out[option] = float(space[kind].high)
        return out

    def bound_problems(self, options: Options, space: SearchSpace) -> list[str]:
        """Upper bounds below the top of the initial range would clamp initial values."""
        found = []
        for option, kind in type(options).BOUNDS.items():
            value = getattr(options, option, None)
            if isinstance(value, float | int) and kind in space and value < space[kind].high:
                found.append(f"{option}: {value} is below the top of the initial {kind} range "
                             f"({space[kind].high}); use >= {space[kind].high} or narrow the "
                             f"range with [space] {kind}")
        return found

    def follow_up(self, options: Options
                  ) -> Callable[[Mapping[str, Any]], tuple[UpdateRule, dict]] | None:
        """Online: a second phase after training, trained from scratch, or None. Given the
        first phase's last record, it returns (rule, hyperparameters); e.g. retraining the
        configuration a controller chose. Its records continue the trial's epochs."""
        return None

    def update_rule(self, options: Options) -> UpdateRule:
        """Online: the rule a trial trains with. Black-box trials train with an optimizer
        family instead (methods/optimizers.py), chosen by the suite."""
        raise TypeError(f"{self.name!r} is a black-box method: its trials train with an "
                        "optimizer family (methods.optimizers)")


class RandomSearch(Search):
    """Independent draws from the space, seeded: random search's proposals, and every
    method's default (an online method's initialization)."""

    def __init__(self, space: SearchSpace, seed: int, budget: int):
        self.space, self.budget = dict(space), budget
        self.rng = np.random.default_rng(seed)
        self.suggested = 0
        self.history: list[tuple[dict, TrialOutcome]] = []

    def suggest(self) -> dict[str, Any] | None:
        if self.suggested >= self.budget:
            return None
        self.suggested += 1
        return spaces.sample(self.space, self.rng)

    def observe(self, config: Mapping[str, Any], outcome: TrialOutcome) -> None:
        self.history.append((dict(config), outcome))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "suggested": self.suggested,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.suggested, self.history = state["suggested"], list(state["history"])
