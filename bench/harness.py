"""The training loop. It owns the model, the data (on the device, batched by index), the
timing and the evaluation; an update rule only sees what `StepContext` hands it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from bench.tasks import Splits, Task
from methods.base import Batch, Params, StepContext, UpdateRule

Record = dict[str, Any]
EVAL_CHUNK = 8192
# A trial has collapsed when its training loss, after reaching half the chance level or less,
# sits at 90% of the chance level or more for this many epochs in a row. It ends there, like a
# diverged one: a network at chance (e.g. weights decayed to zero) does not come back.
COLLAPSE_EPOCHS = 3
TRAIN_EVAL_SEED = 0  # draws the training subset evaluated each epoch (TrainSpec.train_eval_size)


@dataclass(frozen=True)
class TrainSpec:
    epochs: int
    batch_size: int
    seed: int
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    val_batch_size: int | None = None  # defaults to batch_size
    amp: bool = False  # training losses under bf16 autocast (evaluation stays in dtype)
    # Training loss and accuracy per epoch on this many training examples, a subset fixed by
    # TRAIN_EVAL_SEED (the same in every trial on these splits); 0 = the whole split.
    train_eval_size: int = 0


def train_eval_split(x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The training examples a trial evaluates each epoch: all, or a fixed random subset."""
    if not size or size >= len(x):
        return x, y
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(TRAIN_EVAL_SEED))
    pick = pick[:size].sort().values.to(x.device)
    return x[pick], y[pick]


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that perf_counter measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(loss: Callable, device: torch.device) -> Callable:
    """`loss` computed under bf16 autocast; the gradients that follow are outside it."""
    def amp_loss(params: Params, batch: Batch) -> Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return loss(params, batch)
    return amp_loss


def make_model(task: Task, seed: int, device: torch.device, dtype: torch.dtype,
               hparams: Mapping[str, Any] | None = None):
    """The task's model for these hyperparameters, initialized from `seed` without touching
    the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task.build_model(hparams)
    return model.to(device=device, dtype=dtype)


class Trainee:
    """A model split into explicit parameters and pure loss functions over them."""

    def __init__(self, task: Task, model: torch.nn.Module, noise_seed: int = 0):
        self.task, self.model = task, model
        self.buffers = dict(model.named_buffers())
        self._training: bool | None = None
        self._noise: Mapping[str, Tensor] = {}
        self._noise_gen: torch.Generator | None = None  # also marks the hooks as installed
        self._noise_seed = noise_seed
        self._own: dict[str, Tensor] = {}  # parameters installed in the module (bound_params)

    def _noise_hook(self, layer: str):
        def add_noise(module, args):
            std = self._noise.get(layer)
            if std is None:
                return None
            x = args[0]
            e = torch.randn(x.shape, generator=self._noise_gen, device=x.device, dtype=x.dtype)
            return (torch.addcmul(x, std, e), *args[1:])  # x + std e in one kernel
        return add_noise

    def initial_params(self) -> Params:
        return {k: v.detach().clone().requires_grad_(True)
                for k, v in self.model.named_parameters()}

    def bound_params(self) -> Params:
        """Like `initial_params`, but the copies also replace the module's own parameters. As
        long as a rule passes these very tensors (updated in place, as torch.optim does), the
        module runs directly, without functional_call's per-call swapping (about 0.1 ms a
        forward on CPU); new tensors (online rules) go through functional_call as always."""
        params = {}
        for name, p in list(self.model.named_parameters()):
            owner, _, attr = name.rpartition(".")
            fresh = torch.nn.Parameter(p.detach().clone())
            setattr(self.model.get_submodule(owner), attr, fresh)
            params[name] = fresh
        self._own = dict(params)
        return params

    def outputs(self, params: Params, x: Tensor, training: bool) -> Tensor:
        if self._training is not training:
            self.model.train(training)
            self._training = training
        own = self._own
        if own and all(own.get(k) is v for k, v in params.items()):
            return self.model(x)  # the same tensors functional_call would install
        return functional_call(self.model, (params, self.buffers), (x,))

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return self.task.loss(self.outputs(params, batch[0], True), batch[1])

    def noisy_loss(self, params: Params, batch: Batch, noise: Mapping[str, Tensor]) -> Tensor:
        """Training loss with N(0, noise[layer]^2) added to the input of each named layer.
        The hooks that add it are installed on first use, so other rules never run them."""
        if self._noise_gen is None:
            self._install_noise()
        self._noise = noise
        try:
            return self.loss(params, batch)
        finally:
            self._noise = {}

    def _install_noise(self) -> None:
        device = next(self.model.parameters()).device
        self._noise_gen = torch.Generator(device).manual_seed(self._noise_seed)
        for name, module in self.model.named_modules():
            if any(True for _ in module.parameters(recurse=False)):
                module.register_forward_pre_hook(self._noise_hook(name))

    def noise_state(self) -> Tensor | None:
        """The noise generator's state; None while no noise was ever drawn."""
        return None if self._noise_gen is None else self._noise_gen.get_state()

    def set_noise_state(self, saved: Tensor | None) -> None:
        if saved is not None:
            if self._noise_gen is None:
                self._install_noise()
            self._noise_gen.set_state(saved)

    def val_loss(self, params: Params, batch: Batch) -> Tensor:
        return self.task.loss(self.outputs(params, batch[0], False), batch[1])

    @torch.no_grad()
    def evaluate(self, params: Params, x: Tensor, y: Tensor,
                 forward: Callable[[Params, Tensor], Tensor] | None = None
                 ) -> tuple[float, float]:
        """Mean loss and accuracy (NaN for regression) over a whole split, in eval mode, of the
        task's model or of `forward(params, x)` (a rule's `evaluator`)."""
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x), EVAL_CHUNK):
            xi = x[i:i + EVAL_CHUNK]
            out = self.outputs(params, xi, False) if forward is None else forward(params, xi)
            yi = y[i:i + EVAL_CHUNK]
            loss_sum += float(self.task.loss(out, yi)) * len(yi)
            if self.task.classification:
                correct += int((out.argmax(-1) == yi).sum())
        n = len(x)
        return loss_sum / n, (correct / n if self.task.classification else math.nan)


def chance_loss(task: Task, y: Tensor) -> float:
    """The loss of the best constant prediction on targets `y`: log class frequencies as
    logits (the label entropy, under cross-entropy), or the mean target (regression)."""
    if task.classification:
        y = y.cpu()  # once per trial: on the CPU, whatever the device
        freq = torch.bincount(y).to(torch.float64) / len(y)
        logits = freq.clamp_min(1e-12).log().expand(len(y), -1)
        return float(task.loss(logits, y))
    return float(task.loss(y.mean(0, keepdim=True).expand_as(y), y))


@dataclass
class CollapseWatch:
    """Counts the epochs in a row at chance level after the training loss was far below."""

    chance: float
    best: float = math.inf
    streak: int = 0

    def update(self, train_loss: float) -> bool:
        self.best = min(self.best, train_loss)
        learned = self.best <= 0.5 * self.chance
        self.streak = self.streak + 1 if learned and train_loss >= 0.9 * self.chance else 0
        return self.streak >= COLLAPSE_EPOCHS


@dataclass
class TrainState:
    """Everything `train` needs to continue after an epoch exactly as if it had not stopped:
    the same records follow, bit for bit on a CPU. Tensors are the live ones (see `train`)."""

    epoch: int  # epochs done
    step: int
    train_seconds: float  # training seconds so far
    params: Params
    buffers: dict[str, Tensor]  # the model's (e.g. batch-norm statistics)
    rule_state: Any  # rule.state_dict(state)
    rngs: dict[str, Tensor | None] | None  # generator states: batch order, validation batches,
    # ...; None on resume: the run's own, seeded afresh (a PBT member that copied another's)
    collapse: CollapseWatch
    records: list[Record]


def train(task: Task, rule: UpdateRule, hparams: Mapping[str, Any], splits: Splits,
          spec: TrainSpec, report: Callable[[Record], None] | None = None,
          checkpoint: Callable[[TrainState], None] | None = None,
          resume: TrainState | None = None) -> list[Record]:
    """Train one model with `rule`; one record per epoch. Ends early, flagged, on divergence
    (a non-finite loss) or collapse (COLLAPSE_EPOCHS). `checkpoint` gets the complete state
    at the end of every epoch but the last, after `report` got the epoch's record; it must
    save it before it returns (its tensors go on training). `resume`: such a state, to
    continue from."""
    device = spec.device
    model = make_model(task, spec.seed, device, spec.dtype, hparams)
    # The model's hyperparameters are recorded whatever the rule reports (hp_<name>).
    model_hparams = {f"hp_{k}": hparams[k] for k in task.model_hparams if k in hparams}
    trainee = Trainee(task, model, noise_seed=spec.seed + 2)
    params = trainee.bound_params()
    state = rule.init(params, hparams)
    draws = Draws.seeded(spec.seed, trainee, device, augmented=task.augment is not None)
    ctx = step_context(task, trainee, splits, spec, draws)
    records: list[Record] = []
    train_total = 0.0
    collapse = CollapseWatch(chance_loss(task, splits.y_train))
    if resume is not None:
        state = restore(resume, rule, state, params, trainee, draws)
        ctx.step, train_total = resume.step, resume.train_seconds
        collapse, records = resume.collapse, list(resume.records)
        if records and (records[-1]["diverged"] or records[-1]["collapsed"]):
            return records  # it had ended
    x_eval, y_eval = train_eval_split(splits.x_train, splits.y_train, spec.train_eval_size)
    eval_on = {"train": (x_eval, y_eval), "val": (splits.x_val, splits.y_val),
               "test": (splits.x_test, splits.y_test)}
    for epoch in range(len(records) + 1, spec.epochs + 1):
        ctx.epoch = epoch
        state, params, train_seconds = train_epoch(rule, state, params, task, splits, spec,
                                                   ctx, draws)
        train_total += train_seconds
        measured = evaluate(rule, state, params, trainee, eval_on)
        collapsed = not measured["diverged"] and collapse.update(measured["train_loss"])
        record = {"epoch": epoch, "step": ctx.step, "timestamp": time.time(),
                  "train_seconds": train_seconds, "train_seconds_cum": train_total,
                  **measured, "collapsed": collapsed, **rule_columns(rule, state, model_hparams)}
        records.append(record)
        if report is not None:
            report(record)
        ended = record["diverged"] or record["collapsed"]
        if checkpoint is not None and epoch < spec.epochs and not ended:
            checkpoint(TrainState(epoch, ctx.step, train_total, params, trainee.buffers,
                                  rule.state_dict(state), draws.state(), collapse, records))
        if ended:
            break
    return records



def evaluate(rule: UpdateRule, state: Any, params: Params, trainee: Trainee,
             eval_on: Mapping[str, tuple[Tensor, Tensor]]) -> Record:
    """The epoch's losses and accuracies on each split, its evaluation seconds and whether it
    diverged (a non-finite training or validation loss)."""
    start = time.perf_counter()
    forward = rule.evaluator(state)
    losses = {}
    for split, (xs, ys) in eval_on.items():
        losses[f"{split}_loss"], losses[f"{split}_acc"] = trainee.evaluate(params, xs, ys,
                                                                           forward)
    return {"eval_seconds": time.perf_counter() - start, **losses,
            "train_eval_size": len(eval_on["train"][1]),
            "diverged": not all(math.isfinite(losses[f"{s}_loss"]) for s in ("train", "val"))}


def rule_columns(rule: UpdateRule, state: Any, model_hparams: Record) -> Record:
    """What the rule reports each epoch: lr at its floor, hyperparameters (hp_<name>, after
    the model's) and diagnostics."""
    return {"lr_floored": rule.lr_floored(state), **model_hparams,
            **{f"hp_{k}": v if isinstance(v, str) else float(v)  # categoricals stay strings
               for k, v in rule.hparams(state).items()},
            **{k: float(v) for k, v in rule.diagnostics(state).items()}}

@dataclass
class Draws:
    """A training's random streams: batch order, validation (and training-sample) batches,
    augmentation, the model's noise, torch's global stream and CUDA's. A checkpoint saves
    them; a resume sets them back, so the same draws follow."""

    batch: torch.Generator
    val: torch.Generator
    augment: torch.Generator | None
    trainee: Trainee
    device: torch.device

    @classmethod
    def seeded(cls, seed: int, trainee: Trainee, device: torch.device, augmented: bool
               ) -> Draws:
        return cls(torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1),
                   torch.Generator(device).manual_seed(seed + 3) if augmented else None,
                   trainee, device)

    def generators(self) -> dict[str, torch.Generator]:
        return {k: g for k, g in (("batch", self.batch), ("val", self.val),
                                  ("augment", self.augment)) if g is not None}

    def state(self) -> dict[str, Tensor | None]:
        return {**{k: g.get_state() for k, g in self.generators().items()},
                "noise": self.trainee.noise_state(), "torch": torch.get_rng_state(),
                "cuda": (torch.cuda.get_rng_state(self.device) if self.device.type == "cuda"
                         else None)}

    def restore(self, saved: dict[str, Tensor | None]) -> None:
        for k, g in self.generators().items():
            g.set_state(saved[k])
        self.trainee.set_noise_state(saved["noise"])
        torch.set_rng_state(saved["torch"])
        if saved.get("cuda") is not None:
            torch.cuda.set_rng_state(saved["cuda"], self.device)


def step_context(task: Task, trainee: Trainee, splits: Splits, spec: TrainSpec, draws: Draws
                 ) -> StepContext:
    """What an update rule sees of the training: losses, and validation and training-sample
    batches of the validation batch size, drawn from `draws.val`."""
    device, val_bs = spec.device, spec.val_batch_size or spec.batch_size

    def val_batch() -> Batch:
        idx = torch.randint(len(splits.x_val), (val_bs,), generator=draws.val).to(device)
        return splits.x_val[idx], splits.y_val[idx]

    def train_sample() -> Batch:
        idx = torch.randint(len(splits.x_train), (val_bs,), generator=draws.val).to(device)
        return splits.x_train[idx], splits.y_train[idx]

    return StepContext(loss=autocast(trainee.loss, device) if spec.amp else trainee.loss,
                       val_loss=trainee.val_loss, val_batch=val_batch,
                       train_sample=train_sample, noisy_loss=trainee.noisy_loss,
                       criterion=task.loss, epochs=spec.epochs,
                       steps_per_epoch=math.ceil(len(splits.x_train) / spec.batch_size))


def restore(resume: TrainState, rule: UpdateRule, state: Any, params: Params,
            trainee: Trainee, draws: Draws) -> Any:
    """Parameters, buffers and draws set back to `resume`'s; the rule's state loaded."""
    saved = {**resume.params, **resume.buffers}
    with torch.no_grad():
        for name, p in [*params.items(), *trainee.buffers.items()]:
            p.copy_(saved[name])
    state = rule.load_state_dict(state, resume.rule_state)
    if resume.rngs is not None:  # None: this run's own draws, seeded by spec.seed
        draws.restore(resume.rngs)
    return state


def train_epoch(rule: UpdateRule, state: Any, params: Params, task: Task, splits: Splits,
                spec: TrainSpec, ctx: StepContext, draws: Draws) -> tuple[Any, Params, float]:
    """One pass over the training split in a fresh random order: (state, params, seconds)."""
    x, y = splits.x_train, splits.y_train
    sync(spec.device)
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=draws.batch).to(spec.device)
    for i in range(0, len(x), spec.batch_size):
        idx = order[i:i + spec.batch_size]
        xb = x[idx] if task.augment is None else task.augment(x[idx], draws.augment)
        state, params = rule.step(state, params, (xb, y[idx]), ctx)
        ctx.step += 1
    sync(spec.device)
    return state, params, time.perf_counter() - start
