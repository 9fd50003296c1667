"""What every online hypergradient method shares: which scalar hyperparameters it tunes, the
meta-optimizer that steps them inside their bounds, and the OHO paper's ablation options.

A hyperparameter kind (lr, wd, momentum, noise) has one value per group of layers; the tuned
scalars are (kind, group) pairs, in the order hypergradients are computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from methods.base import Batch, Method, MethodKind, Options, Params, StepContext, UpdateRule

META_OPTIMIZERS = ("sgd", "adam")
FLOOR_ZONE = 10.0  # a learning rate within this factor of lr_min counts as at its floor
RMS_MEMORY, RMS_WARMUP = 1000, 100  # clip_rms: hyper-steps remembered, and seen before it acts
VALIDATE_ON = ("val", "train")
MOMENTUM_MAX = 0.99


def per_tensor(values: Sequence[float], group_of: Sequence[int]) -> list[float]:
    """A per-group hyperparameter spread over parameter tensors."""
    return [values[g] for g in group_of]


def layer_of(param_name: str) -> str:
    """The module that owns a parameter: '2.weight' -> '2'."""
    return param_name.rpartition(".")[0]


def layer_groups(param_names: Sequence[str], n_groups: int) -> tuple[list[int], int]:
    """Group index of each parameter tensor, splitting consecutive layers into `n_groups`
    sets (0 = one set per layer), and the number of groups."""
    layers = list(dict.fromkeys(layer_of(n) for n in param_names))
    if n_groups > len(layers):
        raise ValueError(f"groups={n_groups}, but the model has {len(layers)} layers; "
                         f"use 1..{len(layers)} (0 = one group per layer)")
    count = n_groups or len(layers)
    index = {layer: j * count // len(layers) for j, layer in enumerate(layers)}
    return [index[layer_of(n)] for n in param_names], count


def groups_problems(n_groups: int, task: Any) -> list[str]:
    """The layer-group count checked against a task's model, before any work starts."""
    names = [n for n, _ in task.make_model().named_parameters()]
    try:
        layer_groups(names, n_groups)
    except ValueError as exc:
        return [str(exc)]
    return []


@dataclass(frozen=True)
class Bounds:
    """Where each hyperparameter kind may go: lr in [lr_min, lr_max], wd in [0, wd_max],
    momentum in [0, MOMENTUM_MAX], noise >= 0."""

    lr_min: float = 1e-6
    lr_max: float = math.inf
    wd_max: float = math.inf

    def project(self, kind: str, value: float) -> float:
        if kind == "lr":
            return min(max(value, self.lr_min), self.lr_max)
        if kind == "wd":
            return min(max(value, 0.0), self.wd_max)
        if kind == "momentum":
            return min(max(value, 0.0), MOMENTUM_MAX)
        return max(value, 0.0)


@dataclass(frozen=True)
class OnlineOptions(Options):
    """Meta-optimization and the OHO paper's ablations, shared by every online method."""

    BOUNDS: ClassVar[dict[str, str]] = {"lr_max": "lr", "wd_max": "wd"}

    meta_optimizer: str = "sgd"  # steps the hyperparameters: sgd | adam
    meta_lr: float = 1e-5  # step size for learning rates (OHO paper, MNIST)
    # Step size for weight decay: the OHO authors' code uses meta_lr * 0.01 (their MNIST script
    # runs meta_lr 1e-4; the paper's text says 1e-5). Measured on digits at 300 epochs, 8 inits:
    # median final val loss 0.0972 at 1e-7 against 0.0977 at 1e-5 (docs/long-horizons.md).
    meta_lr_wd: float = 1e-7
    meta_lr_momentum: float = 1e-5  # step size for momentum, when tuned
    hyper_every: int = 1  # a hyperparameter step every k training steps
    clip: float = 0.0  # clip each hypergradient to [-clip, clip]; 0 = off
    # Clip each hypergradient to clip_rms times its running RMS (~1000 hyper-steps); 0 = off.
    # Limits one meta-step after an influence blow-up (docs/long-horizons.md).
    clip_rms: float = 10.0
    lr_min: float = 1e-6  # learning rates never go below this
    # Upper bounds. None: the top of the suite's initial range for that hyperparameter (the box
    # the black-box searches search), filled in by the suite; unbounded when a rule is built
    # directly. The OHO authors clamp wd to [0, 1e-4] in their MNIST MLP and lr only at 0.
    lr_max: float | None = None
    wd_max: float | None = None
    momentum: float = 0.0  # heavy-ball momentum (torch form); 0 = plain SGD
    tune: tuple[str, ...] = ("lr", "wd")  # which hyperparameters move
    validate_on: str = "val"  # "train": hypergradients on training batches (paper 6.5)
    perturb_epochs: tuple[int, ...] = ()  # at the start of these epochs (paper 6.3) ...
    perturb_lr: float = 0.0  # ... set every lr to this (0 = leave lr alone)
    perturb_wd_zero: bool = False  # ... and/or set every wd to 0

    TUNABLE = ("lr", "wd", "momentum")

    def problems(self) -> list[str]:
        found = []
        bad = [k for k in self.tune if k not in self.TUNABLE]
        if bad or not self.tune or len(set(self.tune)) != len(self.tune):
            found.append(f"tune: {list(self.tune)} is not a non-empty list of distinct names "
                         f"from {', '.join(self.TUNABLE)}")
        if self.meta_optimizer not in META_OPTIMIZERS:
            found.append(f"meta_optimizer: {self.meta_optimizer!r} is not one of "
                         f"{', '.join(META_OPTIMIZERS)}")
        for name in ("meta_lr", "meta_lr_wd", "meta_lr_momentum", "clip", "clip_rms",
                     "perturb_lr"):
            if not 0 <= getattr(self, name) < math.inf:
                found.append(f"{name}: must be a finite number >= 0, got {getattr(self, name)}")
        if not 0 < self.lr_min < math.inf:
            found.append(f"lr_min: must be a finite number > 0, got {self.lr_min}")
        for name in ("lr_max", "wd_max"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, float | int)
                                      or not 0 < value < math.inf):
                found.append(f"{name}: must be a finite number > 0 (or left out: the top of the "
                             f"suite's {name[:2]} range), got {value!r}")
        if (isinstance(self.lr_max, float | int) and 0 < self.lr_min < math.inf
                and self.lr_max <= self.lr_min):
            found.append(f"lr_max: must be > lr_min = {self.lr_min}, got {self.lr_max}")
        if self.hyper_every < 1:
            found.append(f"hyper_every: must be >= 1, got {self.hyper_every}")
        if not 0 <= self.momentum <= MOMENTUM_MAX:
            found.append(f"momentum: must be in [0, {MOMENTUM_MAX}], got {self.momentum}")
        if self.validate_on not in VALIDATE_ON:
            found.append(f"validate_on: {self.validate_on!r} is not one of "
                         f"{', '.join(VALIDATE_ON)}")
        bad = [e for e in self.perturb_epochs if not isinstance(e, int) or e < 1]
        if bad:
            found.append(f"perturb_epochs: epochs are integers >= 1, got {bad}")
        if self.perturb_epochs and not (self.perturb_lr or self.perturb_wd_zero):
            found.append("perturb_epochs: set perturb_lr > 0 or perturb_wd_zero = true")
        return found

    def meta_lr_for(self, kind: str) -> float:
        return getattr(self, "meta_lr" if kind == "lr" else f"meta_lr_{kind}")

    def bounds(self) -> Bounds:
        inf = math.inf
        return Bounds(self.lr_min, inf if self.lr_max is None else float(self.lr_max),
                      inf if self.wd_max is None else float(self.wd_max))


@dataclass
class FloorWatch:
    """Counts, over the current epoch, the steps at which the smallest learning rate sat within
    FLOOR_ZONE of its floor: at half of them or more, the epoch is `floored`."""

    lr_min: float
    epoch: int = -1
    steps: int = 0
    low: int = 0

    def observe(self, epoch: int, lrs: Sequence[float]) -> None:
        if epoch != self.epoch:
            self.epoch, self.steps, self.low = epoch, 0, 0
        self.steps += 1
        self.low += min(lrs) <= FLOOR_ZONE * self.lr_min

    def floored(self) -> bool:
        return self.steps > 0 and 2 * self.low >= self.steps


@dataclass(frozen=True)
class GroupedOptions(OnlineOptions):
    """Online options of methods that give K sets of consecutive layers their own (lr, wd)."""

    groups: int = 1  # consecutive layers split into this many sets; 0 = one set per layer

    def problems(self) -> list[str]:
        found = super().problems()
        if self.groups < 0:
            found.append(f"groups: must be >= 0 (0 = one per layer), got {self.groups}")
        return found


@dataclass
class Hypers:
    """Current hyperparameter values (kind -> one value per group) and which scalars move."""

    values: dict[str, list[float]]
    tuned: list[tuple[str, int]]
    n_groups: int

    def name(self, kind: str, group: int) -> str:
        return kind if self.n_groups == 1 else f"{kind}_{group}"

    def tuned_names(self) -> list[str]:
        return [self.name(k, g) for k, g in self.tuned]

    def as_dict(self) -> dict[str, float]:
        return {self.name(k, g): v for k, vs in self.values.items() for g, v in enumerate(vs)}


def make_hypers(options: OnlineOptions, initial: Mapping[str, float], n_groups: int
                ) -> Hypers:
    """One value per group for every kind in `initial`; the kinds in `options.tune` move.
    Tuned scalars are ordered kind-major: lr_0..lr_G, wd_0..wd_G, ..."""
    bounds = options.bounds()
    values = {k: [bounds.project(k, float(v))] * n_groups for k, v in initial.items()}
    tuned = [(k, g) for k in options.tune for g in range(n_groups)]
    return Hypers(values, tuned, n_groups)


def initial_values(options: OnlineOptions, hparams: Mapping[str, Any]) -> dict[str, float]:
    """lr and wd from the trial's hyperparameters; momentum from the trial or the options."""
    out = {"lr": float(hparams["lr"]), "wd": float(hparams.get("wd", 0.0))}
    momentum = float(hparams.get("momentum", options.momentum))
    if momentum or "momentum" in options.tune:
        out["momentum"] = momentum
    return out


@dataclass
class MetaOptimizer:
    """SGD or Adam over the tuned scalars, then projection into the bounds. A non-finite
    hypergradient skips the step and is counted. Plain float arithmetic on purpose: it runs
    every training step, and torch.optim over K scalar tensors measured ~50x slower (95 us a
    step for SGD, 380 us for Adam, against a 3 ms oho step on digits)."""

    kind: str
    step_sizes: list[float]
    clip: float
    bounds: Bounds
    clip_rms: float = 0.0  # clip each hypergradient to this many times its running RMS
    skipped: int = 0
    clipped: int = 0  # steps where a clip changed a hypergradient
    seen: int = 0  # hyper-steps taken (for clip_rms)
    mean_sq: list[float] = field(default_factory=list)  # running mean of hypergradient^2
    t: int = 0
    m: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)

    def step(self, hypers: Hypers, hypergrads: Sequence[float]) -> bool:
        """Move `hypers` against `hypergrads`; False (and counted) if any is non-finite."""
        if not all(math.isfinite(h) for h in hypergrads):
            self.skipped += 1
            return False
        limits = [self.clip or math.inf] * len(hypergrads)
        if self.clip_rms:
            limits = [min(lim, limit) for lim, limit in
                      zip(limits, self._rms_limits(hypergrads), strict=True)]
        if any(abs(h) > lim for h, lim in zip(hypergrads, limits, strict=True)):
            self.clipped += 1
            hypergrads = [min(max(h, -lim), lim)
                          for h, lim in zip(hypergrads, limits, strict=True)]
        if self.clip_rms:
            self._remember(hypergrads)
        steps = self._directions(hypergrads)
        for (kind, group), size, d in zip(hypers.tuned, self.step_sizes, steps, strict=True):
            value = hypers.values[kind][group] - size * d
            hypers.values[kind][group] = self.bounds.project(kind, value)
        return True

    def _rms_limits(self, hg: Sequence[float]) -> list[float]:
        """`clip_rms` times each hypergradient's running RMS (over ~RMS_MEMORY hyper-steps,
        bias-corrected), once RMS_WARMUP hyper-steps have been seen; inf before."""
        if self.seen < RMS_WARMUP:
            return [math.inf] * len(hg)
        correction = 1 - (1 - 1 / RMS_MEMORY) ** self.seen
        return [self.clip_rms * math.sqrt(m / correction) for m in self.mean_sq]

    def _remember(self, hg: Sequence[float]) -> None:
        """The running mean of squares takes the clipped values: one outlier cannot raise it."""
        decay = 1 - 1 / RMS_MEMORY
        self.mean_sq = [decay * m + (1 - decay) * h * h
                        for m, h in zip(self.mean_sq or [0.0] * len(hg), hg, strict=True)]
        self.seen += 1

    def _directions(self, hg: Sequence[float]) -> list[float]:
        """SGD: the hypergradient. Adam (Kingma & Ba, torch's defaults): m_hat / (sqrt(v_hat)
        + eps)."""
        if self.kind == "sgd":
            return list(hg)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        if not self.m:
            self.m, self.v = [0.0] * len(hg), [0.0] * len(hg)
        self.t += 1
        self.m = [beta1 * m + (1 - beta1) * h for m, h in zip(self.m, hg, strict=True)]
        self.v = [beta2 * v + (1 - beta2) * h * h for v, h in zip(self.v, hg, strict=True)]
        c1, c2 = 1 - beta1 ** self.t, 1 - beta2 ** self.t
        return [(m / c1) / (math.sqrt(v / c2) + eps) for m, v in zip(self.m, self.v, strict=True)]


def meta_optimizer(options: OnlineOptions, hypers: Hypers) -> MetaOptimizer:
    sizes = [options.meta_lr_for(kind) for kind, _ in hypers.tuned]
    return MetaOptimizer(options.meta_optimizer, sizes, options.clip, options.bounds(),
                         options.clip_rms)


def perturb(hypers: Hypers, options: OnlineOptions, epoch: int) -> None:
    """The OHO paper's perturbation experiment: overwrite hyperparameters as `epoch` starts."""
    if epoch not in options.perturb_epochs:
        return
    if options.perturb_lr and "lr" in hypers.values:
        hypers.values["lr"] = [options.perturb_lr] * hypers.n_groups
    if options.perturb_wd_zero and "wd" in hypers.values:
        hypers.values["wd"] = [0.0] * hypers.n_groups


def hyper_batch(options: OnlineOptions, ctx: StepContext) -> Batch:
    """The batch hypergradients are taken on: fresh validation data, or training data (6.5)."""
    return ctx.val_batch() if options.validate_on == "val" else ctx.train_sample()


@dataclass(kw_only=True)
class OnlineState:
    """What every online rule keeps; rules subclass it for their own extras."""

    hypers: Hypers
    meta: MetaOptimizer
    group_of: list[int]  # group index of each parameter tensor
    buffers: list[torch.Tensor] | None = None  # momentum buffers
    hypergrads: list[float] = field(default_factory=list)  # latest, one per tuned scalar
    epoch: int = 0
    floor: FloorWatch | None = None  # set when lr is tuned


class OnlineRule(UpdateRule):
    """Base of the hypergradient rules: options, hyperparameters per group of layers, the
    perturbation schedule, the parameter step and the records they share."""

    def __init__(self, options: OnlineOptions):
        self.options = options

    def state_fields(self, params: Params, hparams: Mapping[str, Any], groups: int,
                extra: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The OnlineState fields, for a subclass state's constructor (part of the plugin API:
        docs/plugins.md, "A hypergradient rule, step by step")."""
        group_of, n_groups = layer_groups(list(params), groups)
        hypers = make_hypers(self.options, {**initial_values(self.options, hparams),
                                            **(extra or {})}, n_groups)
        floor = FloorWatch(self.options.lr_min) if "lr" in self.options.tune else None
        return {"hypers": hypers, "meta": meta_optimizer(self.options, hypers),
                "group_of": group_of, "hypergrads": [math.nan] * len(hypers.tuned),
                "floor": floor}

    def begin_step(self, state: OnlineState, ctx: StepContext) -> None:
        """Call first in `step`: the perturbation schedule at a new epoch, and the lr floor's
        watch (plugin API, like `state_fields`)."""
        if ctx.epoch != state.epoch:
            perturb(state.hypers, self.options, ctx.epoch)
            state.epoch = ctx.epoch
        if state.floor is not None:
            state.floor.observe(ctx.epoch, state.hypers.values["lr"])

    def lr_floored(self, state: OnlineState) -> bool:
        return state.floor is not None and state.floor.floored()

    @staticmethod
    def _coefficients(state: OnlineState):
        """lr, wd and momentum (None without) of each parameter tensor."""
        h, group_of = state.hypers.values, state.group_of
        momentum = per_tensor(h["momentum"], group_of) if "momentum" in h else None
        return per_tensor(h["lr"], group_of), per_tensor(h["wd"], group_of), momentum

    @staticmethod
    def _apply(state: OnlineState, weights: Sequence[torch.Tensor], terms) -> None:
        """w <- w - lr b_{t+1} in place; keep the buffers when there is momentum."""
        with torch.no_grad():
            for w, b, lr in zip(weights, terms.new_buffers, terms.lr, strict=True):
                w.sub_(b, alpha=lr)  # fused: no lr b temporary
        if terms.momentum is not None:
            state.buffers = terms.new_buffers

    def hparams(self, state: OnlineState) -> dict[str, float]:
        return state.hypers.as_dict()

    def diagnostics(self, state: OnlineState) -> dict[str, float]:
        names = state.hypers.tuned_names()
        out = {f"hg_{n}": g for n, g in zip(names, state.hypergrads, strict=True)}
        out["skipped_hypersteps"] = state.meta.skipped
        out["clipped_hypersteps"] = state.meta.clipped
        return out


class OnlineMethod(Method):
    """An online method whose trials train with `rule_type(options)`. Options with a `groups`
    field are checked against the task's layer count before any work starts."""

    kind = MethodKind.ONLINE
    horizon_free = True
    rule_type: ClassVar[type[OnlineRule]]

    def update_rule(self, options: Options) -> UpdateRule:
        return self.rule_type(options)

    def problems_for(self, options: Options, task: Any) -> list[str]:
        groups = getattr(options, "groups", None)
        return [] if groups is None else groups_problems(groups, task)
