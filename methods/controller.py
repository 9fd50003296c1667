"""`controller`: stochastic HPO with a learned controller (Adam & Lorraine), ENAS-style.

A small policy network proposes, every `every_k` training steps, a child of a weight-sharing
supernet and SGD's hyperparameters together:
- architecture: the width of each hidden layer, from `widths`, and one activation for all hidden
  layers, from `activations`. The supernet is the task's own MLP: a child of width w uses the
  first w units of each hidden layer (sub-blocks of the shared weights);
- optimizer: log lr and log wd, from a Gaussian (mean from the policy, one learned std each).
The policy is multi-task: one trunk, an architecture head (one categorical per choice) and an
optimizer head that reads the trunk and the sampled architecture (so the policy can represent
how good optimizer settings depend on the child: p(arch) p(lr, wd | arch)).

A segment: sample (child, lr, wd); train the shared weights on `every_k` training batches with
that child, w <- w - lr (g + wd w) on its sub-blocks only; the reward is the child's validation
loss after the last step, on a fresh validation batch. The policy then takes one Adam step on
    (R - b) log pi(sample) - entropy_bonus H(pi) + <stopgrad(dR/dlambda), lambda(theta, eps)>
(REINFORCE with a moving-average baseline b, plus, for lambda = (log lr, log wd), the response
gradient dL_val/dw . dw/dlambda through the reparameterized sample lambda = mu + sigma eps).
`response`: "none" (plain ENAS, REINFORCE only), "one-step" (unrolled through the segment's
last step) or "ift" (implicit function theorem, Neumann series; see methods/response.py: its
response for lr is 0).

What it would choose is the policy's mode: the most likely width and activation, then the mean
lr and wd given that child. The harness evaluates that child every epoch (UpdateRule.evaluator)
and records it: hp_lr, hp_wd, hp_width_<layer>, hp_activation (index into `activations`),
and the policy's entropy, baseline, latest reward and response gradient. `retrain` trains a
chosen child from scratch with fixed hyperparameters (the hysteresis check of the T1-T2 paper).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods import response as resp
from methods.base import Batch, Method, MethodKind, Options, Params, StepContext, UpdateRule
from methods.online import layer_of

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "sigmoid": torch.sigmoid}
ACTIVATION_MODULES = (nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid)
RESPONSES = ("none", "one-step", "ift")
HALF_LOG_2PI_E = 0.5 * math.log(2 * math.pi * math.e)


@dataclass(frozen=True)
class ControllerOptions(Options):
    widths: tuple[int, ...] = (16, 32, 64)  # choices for each hidden layer's width
    activations: tuple[str, ...] = ("relu", "tanh")  # one for all hidden layers
    every_k: int = 10  # training steps per sampled child (one policy step each)
    response: str = "one-step"  # none | one-step | ift
    neumann_terms: int = 5  # ift: Hessian-vector products in the Neumann series
    neumann_alpha: float = 0.0  # ift: the series' step size; 0 = the sampled lr
    policy_lr: float = 0.005  # Adam on the policy's parameters
    policy_hidden: int = 16  # trunk width
    baseline_decay: float = 0.9  # b <- decay b + (1 - decay) R
    entropy_bonus: float = 1e-3
    init_std: float = 0.5  # initial std of log lr and log wd
    lr_min: float = 1e-4  # sampled values are clipped into these bounds
    lr_max: float = 1.0
    wd_min: float = 1e-6  # also the floor of an initial wd of 0 (the policy is over log wd)
    wd_max: float = 1.0
    seed: int = 0  # policy initialization and sampling, mixed with the model's initialization
    retrain: bool = False  # then train the chosen child from scratch (records phase "retrain")

    def problems(self) -> list[str]:
        found = []
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths) \
                or len(set(self.widths)) != len(self.widths):
            found.append(f"widths: {list(self.widths)} is not a non-empty list of distinct "
                         "integers >= 1")
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if bad or not self.activations or len(set(self.activations)) != len(self.activations):
            found.append(f"activations: {list(self.activations)} is not a non-empty list of "
                         f"distinct names from {', '.join(ACTIVATIONS)}")
        if self.response not in RESPONSES:
            found.append(f"response: {self.response!r} is not one of {', '.join(RESPONSES)}")
        for name in ("every_k", "policy_hidden"):
            if getattr(self, name) < 1:
                found.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.neumann_terms < 0:
            found.append(f"neumann_terms: must be >= 0, got {self.neumann_terms}")
        for name in ("neumann_alpha", "entropy_bonus"):
            if not getattr(self, name) >= 0:
                found.append(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("policy_lr", "init_std"):
            if not getattr(self, name) > 0:
                found.append(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0 <= self.baseline_decay < 1:
            found.append(f"baseline_decay: must be in [0, 1), got {self.baseline_decay}")
        for kind in ("lr", "wd"):
            lo, hi = getattr(self, f"{kind}_min"), getattr(self, f"{kind}_max")
            if not 0 < lo <= hi:
                found.append(f"{kind}_min, {kind}_max: need 0 < min <= max, got {lo}, {hi}")
        return found


# --- the supernet: the task's MLP, children as sub-blocks of its weights ----------------------

@dataclass(frozen=True)
class Supernet:
    """The parameter names of an MLP in layer order, whether each layer has a bias, and its
    sizes (input, hidden..., output)."""

    names: tuple[str, ...]
    has_bias: tuple[bool, ...]
    sizes: tuple[int, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor]) -> Supernet:
        layers = list(dict.fromkeys(layer_of(n) for n in params))
        names, has_bias, sizes = [], [], []
        for layer in layers:
            weight, bias = f"{layer}.weight", f"{layer}.bias"
            own = [n for n in params if layer_of(n) == layer]
            if weight not in params or params[weight].dim() != 2 or set(own) - {weight, bias}:
                raise ValueError(f"layer {layer!r} is not a Linear layer: {own}")
            out, inp = params[weight].shape
            if sizes and sizes[-1] != inp:
                raise ValueError(f"layer {layer!r} takes {inp} inputs after {sizes[-1]} outputs")
            sizes = sizes or [inp]
            sizes.append(out)
            names.append(weight)
            if bias in params:
                names.append(bias)
            has_bias.append(bias in params)
        return cls(tuple(names), tuple(has_bias), tuple(sizes))

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.sizes[1:-1]

    def tensors(self, params: Mapping[str, Tensor], widths: Sequence[int]) -> list[Tensor]:
        """The child's sub-blocks (views), in `names` order."""
        out, it = [], iter(self.names)
        dims = (self.sizes[0], *widths, self.sizes[-1])
        for i, bias in enumerate(self.has_bias):
            out.append(params[next(it)][:dims[i + 1], :dims[i]])
            if bias:
                out.append(params[next(it)][:dims[i + 1]])
        return out

    def forward(self, tensors: Sequence[Tensor], activation: str, x: Tensor) -> Tensor:
        act, it, h = ACTIVATIONS[activation], iter(tensors), x
        for i, bias in enumerate(self.has_bias):
            h = F.linear(h, next(it), next(it) if bias else None)
            if i < len(self.has_bias) - 1:
                h = act(h)
        return h


def supernet_problems(task: Any, options: ControllerOptions) -> list[str]:
    """Why `task`'s model cannot be this controller's supernet (one line each), if it cannot."""
    model = task.make_model()
    mods = list(model) if isinstance(model, nn.Sequential) else []
    kinds = [isinstance(m, nn.Linear) for m in mods]
    alternating = (len(mods) >= 3 and all(k == (i % 2 == 0) for i, k in enumerate(kinds))
                   and mods and kinds[-1]
                   and all(isinstance(m, ACTIVATION_MODULES) for m in mods[1::2]))
    if not alternating:
        return [f"controller: task {task.name!r} has no MLP supernet (it needs an nn.Sequential "
                "of Linear layers with activations between and at least one hidden layer)"]
    hidden = min(m.out_features for m in mods[:-1:2])
    too_wide = [w for w in options.widths if w > hidden]
    if too_wide:
        return [f"controller.widths: {too_wide} exceed task {task.name!r}'s hidden width "
                f"{hidden}"]
    return []


# --- the policy --------------------------------------------------------------------------------

@dataclass
class PolicySample:
    choices: list[int]  # one index per categorical (hidden widths..., activation)
    values: Tensor  # (log lr, log wd) sampled, detached
    log_prob: Tensor  # log pi(sample), with graph
    entropy: Tensor  # H(pi), with graph
    reparam: Tensor  # mean + std eps, with graph (equals values)
    eps: Tensor  # the standard normal draw


class Policy(nn.Module):
    """One trunk (a learned input embedding through Linear + tanh), an architecture head (logits
    of each categorical) and an optimizer head (the Gaussian's mean, from the trunk and the
    one-hot sampled architecture); log std learned, state-independent. Float64, on the CPU."""

    def __init__(self, n_choices: Sequence[int], init_mean: Sequence[float], init_std: float,
                 hidden: int = 32):
        super().__init__()
        self.n_choices = list(n_choices)
        kw = {"dtype": torch.float64}
        self.embed = nn.Parameter(torch.randn(hidden, **kw))
        self.trunk = nn.Linear(hidden, hidden, **kw)
        self.arch_head = nn.Linear(hidden, sum(self.n_choices), **kw)
        self.opt_head = nn.Linear(hidden + sum(self.n_choices), len(init_mean), **kw)
        self.log_std = nn.Parameter(torch.full((len(init_mean),), math.log(init_std), **kw))
        with torch.no_grad():  # start uniform over children, at the initial (lr, wd)
            self.arch_head.weight.mul_(0.01)
            self.arch_head.bias.zero_()
            self.opt_head.weight.zero_()
            self.opt_head.bias.copy_(torch.tensor(list(init_mean), **kw))

    def logits(self) -> tuple[Tensor, list[Tensor]]:
        h = torch.tanh(self.trunk(self.embed))
        return h, list(self.arch_head(h).split(self.n_choices))

    def mean(self, h: Tensor, choices: Sequence[int]) -> Tensor:
        onehot = torch.cat([F.one_hot(torch.tensor(c), n).to(h.dtype)
                            for c, n in zip(choices, self.n_choices, strict=True)])
        return self.opt_head(torch.cat([h, onehot]))

    def entropies(self, logits: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(architecture entropy, total entropy): categoricals plus the Gaussian's."""
        arch = sum(-(F.softmax(lg, -1) * F.log_softmax(lg, -1)).sum() for lg in logits)
        return arch, arch + (self.log_std + HALF_LOG_2PI_E).sum()

    def sample(self, gen: torch.Generator) -> PolicySample:
        h, logits = self.logits()
        logps = [F.log_softmax(lg, -1) for lg in logits]
        choices = [int(torch.multinomial(lp.detach().exp(), 1, generator=gen)) for lp in logps]
        eps = torch.randn(self.log_std.shape, generator=gen, dtype=self.log_std.dtype)
        return self._scored(h, logits, logps, choices, eps)

    def score(self, choices: list[int], eps: Tensor) -> PolicySample:
        """The sample drawn as (`choices`, standard normal `eps`), with its graph through the
        policy's current parameters (a checkpoint keeps only the draws)."""
        h, logits = self.logits()
        return self._scored(h, logits, [F.log_softmax(lg, -1) for lg in logits], choices, eps)

    def _scored(self, h: Tensor, logits: list[Tensor], logps: list[Tensor], choices: list[int],
                eps: Tensor) -> PolicySample:
        log_prob = 0.0
        for lp, c in zip(logps, choices, strict=True):
            log_prob = log_prob + lp[c]
        mean, std = self.mean(h, choices), self.log_std.exp()
        reparam = mean + std * eps
        values = reparam.detach()
        log_prob = log_prob + (-0.5 * ((values - mean) / std) ** 2 - self.log_std
                               - 0.5 * math.log(2 * math.pi)).sum()
        return PolicySample(choices, values, log_prob, self.entropies(logits)[1], reparam, eps)

    @torch.no_grad()
    def mode(self) -> tuple[list[int], Tensor]:
        h, logits = self.logits()
        choices = [int(lg.argmax()) for lg in logits]
        return choices, self.mean(h, choices)


def policy_loss(sample: PolicySample, advantage: float, response_grad: Tensor | None = None,
                entropy_bonus: float = 0.0) -> Tensor:
    """A surrogate whose gradient is the controller's estimate of the gradient of the expected
    validation loss: REINFORCE (advantage x score), minus the entropy bonus's gradient, plus
    the response gradient (dL/dlambda, in the sample's units) through the reparameterized
    sample."""
    loss = advantage * sample.log_prob - entropy_bonus * sample.entropy
    if response_grad is not None:
        loss = loss + (response_grad.to(sample.reparam.dtype) * sample.reparam).sum()
    return loss


# --- children, and SGD on one child's sub-blocks ------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """A child and its fixed optimizer hyperparameters."""

    widths: tuple[int, ...]
    activation: str
    lr: float
    wd: float

    def hparams(self, activations: Sequence[str]) -> dict[str, float]:
        return {"lr": self.lr, "wd": self.wd,
                **{f"width_{i}": float(w) for i, w in enumerate(self.widths)},
                "activation": float(activations.index(self.activation))}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], options: ControllerOptions) -> Choice:
        """The choice a controller's record shows (its hp_* columns)."""
        n = sum(1 for k in record if k.startswith("hp_width_"))
        return cls(tuple(int(record[f"hp_width_{i}"]) for i in range(n)),
                   options.activations[int(record["hp_activation"])],
                   float(record["hp_lr"]), float(record["hp_wd"]))


def _criterion(ctx: StepContext) -> Callable[[Tensor, Tensor], Tensor]:
    if ctx.criterion is None:
        raise ValueError("controller: StepContext.criterion (the task's loss) is not set")
    return ctx.criterion


def child_loss(net: Supernet, activation: str, criterion, batch: Batch):
    """The child's loss on `batch` as a function of its sub-block tensors."""
    return lambda ws: criterion(net.forward(ws, activation, batch[0]), batch[1])


def sgd_apply(views: Sequence[Tensor], grads: Sequence[Tensor], lr: float, wd: float) -> None:
    """w <- w - lr (g + wd w) in place on the sub-blocks (over the gradients' storage)."""
    with torch.no_grad():
        grads = list(grads)
        if wd:
            torch._foreach_add_(grads, list(views), alpha=wd)
        torch._foreach_add_(list(views), grads, alpha=-lr)


def child_grads(net: Supernet, params: Params, choice_widths, activation, criterion,
                batch: Batch) -> tuple[list[Tensor], tuple[Tensor, ...]]:
    """(the child's sub-block views of the shared weights, its training gradient there)."""
    views = net.tensors({k: v.detach() for k, v in params.items()}, choice_widths)
    leaves = [v.detach().requires_grad_(True) for v in views]
    loss = child_loss(net, activation, criterion, batch)(leaves)
    return views, torch.autograd.grad(loss, leaves)


# --- the update rule -----------------------------------------------------------------------------

@dataclass
class ControllerState:
    net: Supernet
    policy: Policy
    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    n_hidden: int
    sample: PolicySample | None = None
    child: Choice | None = None  # the sampled child and (lr, wd) of the current segment
    t: int = 0  # training steps taken
    baseline: float = math.nan
    reward: float = math.nan
    hypergrad: tuple[float, float] = (math.nan, math.nan)  # response, d/dlog lr, d/dlog wd
    updates: int = 0
    skipped: int = 0  # policy steps skipped for a non-finite reward or response
    extra: dict[str, float] = field(default_factory=dict)


class ControllerRule(UpdateRule):
    def __init__(self, options: ControllerOptions):
        self.options = options

    def init(self, params: Params, hparams: Mapping[str, Any]) -> ControllerState:
        o = self.options
        net = Supernet.from_params(params)
        first = next(iter(params.values())).detach().cpu().double().numpy().tobytes()
        seed = (o.seed * 1_000_003 + zlib.crc32(first)) % (2**63)
        lr = min(max(float(hparams["lr"]), o.lr_min), o.lr_max)
        wd = min(max(float(hparams.get("wd", 0.0)), o.wd_min), o.wd_max)
        n_hidden = len(net.hidden)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            policy = Policy([len(o.widths)] * n_hidden + [len(o.activations)],
                            [math.log(lr), math.log(wd)], o.init_std, o.policy_hidden)
        return ControllerState(net, policy, torch.optim.Adam(policy.parameters(), o.policy_lr),
                               torch.Generator().manual_seed(seed + 1), n_hidden)

    def _to_choice(self, choices: Sequence[int], values: Tensor) -> Choice:
        o = self.options
        log_lr = min(max(float(values[0]), math.log(o.lr_min)), math.log(o.lr_max))
        log_wd = min(max(float(values[1]), math.log(o.wd_min)), math.log(o.wd_max))
        return Choice(tuple(o.widths[c] for c in choices[:-1]), o.activations[choices[-1]],
                      math.exp(log_lr), math.exp(log_wd))

    def step(self, state: ControllerState, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[ControllerState, Params]:
        o, net = self.options, state.net
        if state.sample is None:
            state.sample = state.policy.sample(state.gen)
            state.child = self._to_choice(state.sample.choices, state.sample.values)
        child, criterion = state.child, _criterion(ctx)
        views, grads = child_grads(net, params, child.widths, child.activation, criterion, batch)
        state.t += 1
        if state.t % o.every_k:
            sgd_apply(views, grads, child.lr, child.wd)
            return state, params
        # the segment's last step: reward, response gradient, policy step, then a new sample
        val = child_loss(net, child.activation, criterion, ctx.val_batch())
        if o.response == "one-step":
            hg = resp.one_step_response(val, views, grads, child.lr, child.wd)
            sgd_apply(views, grads, child.lr, child.wd)
        else:
            sgd_apply(views, grads, child.lr, child.wd)
            if o.response == "ift":
                train = child_loss(net, child.activation, criterion, batch)
                hg = resp.ift_response(train, val, views, child.wd, o.neumann_terms,
                                       o.neumann_alpha or child.lr)
            else:
                with torch.no_grad():
                    hg = resp.Hypergrad(*torch.zeros(2), val([v.detach() for v in views]))
        self._policy_step(state, hg)
        state.sample = None
        return state, params

    def _policy_step(self, state: ControllerState, hg: resp.Hypergrad) -> None:
        o, sample, child = self.options, state.sample, state.child
        reward = float(hg.val_loss)
        # chain rule into the policy's units (log lr, log wd); zero where the value was clipped
        inside = [math.log(o.lr_min) < float(sample.values[0]) < math.log(o.lr_max),
                  math.log(o.wd_min) < float(sample.values[1]) < math.log(o.wd_max)]
        g = [child.lr * float(hg.d_lr) * inside[0], child.wd * float(hg.d_wd) * inside[1]]
        if not (math.isfinite(reward) and all(map(math.isfinite, g))):
            state.skipped += 1
            return
        state.reward, state.hypergrad = reward, (g[0], g[1])
        if math.isnan(state.baseline):
            state.baseline = reward
        response = None if o.response == "none" else torch.tensor(g, dtype=torch.float64)
        loss = policy_loss(sample, reward - state.baseline, response, o.entropy_bonus)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.baseline = o.baseline_decay * state.baseline + (1 - o.baseline_decay) * reward
        state.updates += 1

    def mode(self, state: ControllerState) -> Choice:
        """What the controller would choose now: the policy's mode."""
        choices, mean = state.policy.mode()
        return self._to_choice(choices, mean)

    def hparams(self, state: ControllerState) -> dict[str, float]:
        return self.mode(state).hparams(self.options.activations)

    def diagnostics(self, state: ControllerState) -> dict[str, float]:
        with torch.no_grad():
            arch, total = state.policy.entropies(state.policy.logits()[1])
            std = state.policy.log_std.exp().tolist()
        return {"entropy": float(total), "entropy_arch": float(arch),
                "std_log_lr": std[0], "std_log_wd": std[1],
                "baseline": state.baseline, "reward": state.reward,
                "hg_lr": state.hypergrad[0], "hg_wd": state.hypergrad[1],
                "response_norm": math.hypot(*state.hypergrad),
                "policy_updates": float(state.updates), "skipped_updates": float(state.skipped)}

    def evaluator(self, state: ControllerState) -> Callable[[Params, Tensor], Tensor]:
        return child_forward(state.net, self.mode(state))

    def state_dict(self, state: ControllerState) -> ControllerState:
        # A Generator won't pickle, nor would a sample's graph into the policy: keep the draws.
        sample = state.sample and (state.sample.choices, state.sample.eps)
        return dataclasses.replace(state, gen=state.gen.get_state(), sample=sample)

    def load_state_dict(self, state: ControllerState, saved: ControllerState
                        ) -> ControllerState:
        self.check_saved(self.state_dict(state), saved)
        sample = saved.sample and saved.policy.score(*saved.sample)
        return dataclasses.replace(saved, gen=torch.Generator().set_state(saved.gen),
                                   sample=sample)


def child_forward(net: Supernet, choice: Choice) -> Callable[[Params, Tensor], Tensor]:
    return lambda params, x: net.forward(net.tensors(params, choice.widths), choice.activation, x)


# --- retraining a chosen child from scratch --------------------------------------------------

class FixedChild(UpdateRule):
    """SGD on one child's sub-blocks of the supernet with fixed lr and wd: a chosen child
    trained from scratch (the rest of the supernet's weights never move nor matter)."""

    def __init__(self, choice: Choice, activations: Sequence[str]):
        self.choice, self.activations = choice, tuple(activations)

    def init(self, params: Params, hparams: Mapping[str, Any]) -> Supernet:
        return Supernet.from_params(params)

    def step(self, state: Supernet, params: Params, batch: Batch, ctx: StepContext
             ) -> tuple[Supernet, Params]:
        c = self.choice
        views, grads = child_grads(state, params, c.widths, c.activation, _criterion(ctx), batch)
        sgd_apply(views, grads, c.lr, c.wd)
        return state, params

    def hparams(self, state: Supernet) -> dict[str, float]:
        return self.choice.hparams(self.activations)

    def evaluator(self, state: Supernet) -> Callable[[Params, Tensor], Tensor]:
        return child_forward(state, self.choice)


class ControllerMethod(Method):
    name = "controller"
    kind = MethodKind.ONLINE
    description = ("ENAS-style policy over hidden widths, activation, log lr and log wd; "
                   "REINFORCE plus response gradients (Adam & Lorraine)")
    options_type = ControllerOptions
    tunes = ("lr", "wd", "width", "activation")

    def update_rule(self, options: ControllerOptions) -> UpdateRule:
        return ControllerRule(options)

    def problems_for(self, options: ControllerOptions, task: Any) -> list[str]:
        return supernet_problems(task, options)

    def follow_up(self, options: ControllerOptions):
        """With `retrain`: the policy's mode child, trained from scratch with its lr and wd."""
        if not options.retrain:
            return None

        def retrain_rule(last: Mapping[str, Any]) -> tuple[UpdateRule, dict]:
            choice = Choice.from_record(last, options)
            return FixedChild(choice, options.activations), {"lr": choice.lr, "wd": choice.wd}
        return retrain_rule
