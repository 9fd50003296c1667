"""The `controller` method (methods/controller.py) and its response gradients
(methods/response.py): estimators against closed forms and autodiff in float64, REINFORCE's
unbiasedness on a toy bandit, the supernet, the evaluator hook, retraining, and a digits run."""

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import methods
from bench import harness, tasks
from bench.trial import run_trial
from methods import response as resp
from methods.base import parse_options
from methods.controller import (
    Choice,
    ControllerOptions,
    ControllerRule,
    FixedChild,
    Policy,
    Supernet,
    policy_loss,
)
from methods.sgd import SGD

F64 = torch.float64


# --- response gradients ----------------------------------------------------------------------

def ridge_problem(wd: float):
    """Synthetic-ridge's data in float64, w*(wd) in closed form and the exact d L_val(w*)/dwd:
    dw*/dwd = -(H + wd I)^-1 w*, H = 2 X'X / n (bench.tasks.ridge_weights' objective)."""
    splits = tasks.RIDGE.load(0)
    x, y = splits.x_train.double().numpy(), splits.y_train.double().numpy()
    xv, yv = splits.x_val.double().numpy(), splits.y_val.double().numpy()
    w = tasks.ridge_weights(x, y, wd)
    hess = 2 * x.T @ x / len(x) + wd * np.eye(x.shape[1])
    gv = 2 * xv.T @ (xv @ w - yv) / len(xv)
    exact = float(gv @ -np.linalg.solve(hess, w))

    def mse(a, b):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return lambda ws: ((a @ ws[0] - b) ** 2).mean()

    return mse(x, y), mse(xv, yv), torch.as_tensor(w), exact, np.linalg.eigvalsh(hess)


@pytest.mark.parametrize("wd", [0.3, 2.0])
def test_ift_hypergradient_matches_the_exact_ridge_derivative(wd):
    """d L_val(w*(wd)) / d wd (with respect to wd itself, not log wd), at the closed-form w*:
    within 1% with enough Neumann terms; visibly off with too few."""
    train, val, w_star, exact, eig = ridge_problem(wd)
    # the closed form against central differences of the validation loss of w*(wd)
    fd_step = 1e-5 * wd
    splits = tasks.RIDGE.load(0)
    fd = (tasks.ridge_val_loss(splits, wd + fd_step)
          - tasks.ridge_val_loss(splits, wd - fd_step)) / (2 * fd_step)
    assert fd == pytest.approx(exact, rel=1e-5)
    alpha = 1.0 / eig.max()
    terms = int(math.ceil(eig.max() / eig.min() * math.log(1e3)))  # (1 - alpha lmin)^K < 1e-3
    hg = resp.ift_response(train, val, [w_star], wd, terms, alpha)
    assert float(hg.d_wd) == pytest.approx(exact, rel=1e-2)
    assert float(hg.d_lr) == 0.0
    assert float(hg.val_loss) == pytest.approx(tasks.ridge_val_loss(splits, wd), rel=1e-10)
    few = resp.ift_response(train, val, [w_star], wd, 2, alpha)
    assert abs(float(few.d_wd) - exact) > 0.05 * abs(exact)


def test_neumann_series_converges_to_the_inverse():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=gen, dtype=F64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=F64)
    v = torch.randn(6, generator=gen, dtype=F64)
    lmax = float(torch.linalg.eigvalsh(a).max())
    got = resp.neumann_inverse_hvp(lambda u: [a @ u[0]], [v], 2000, 1 / lmax)[0]
    torch.testing.assert_close(got, torch.linalg.solve(a, v), rtol=1e-8, atol=1e-10)


def tiny_supernet(act: str = "tanh"):
    torch.manual_seed(0)
    a = {"tanh": nn.Tanh, "relu": nn.ReLU}[act]
    model = nn.Sequential(nn.Linear(3, 6), a(), nn.Linear(6, 5), a(), nn.Linear(5, 2)).double()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_one_step_response_matches_autodiff_through_one_step(act):
    """d L_val(w - lr (g + wd w)) / d(lr, wd), g the training gradient at w (fixed), on a child
    of a tiny supernet, against autograd through the step, float64."""
    params = tiny_supernet(act)
    net = Supernet.from_params(params)
    gen = torch.Generator().manual_seed(1)
    xb, yb = torch.randn(8, 3, generator=gen, dtype=F64), torch.randint(0, 2, (8,), generator=gen)
    xv, yv = torch.randn(8, 3, generator=gen, dtype=F64), torch.randint(0, 2, (8,), generator=gen)
    widths = (4, 3)
    w = [t.clone().requires_grad_(True) for t in net.tensors(params, widths)]
    g = torch.autograd.grad(F.cross_entropy(net.forward(w, act, xb), yb), w)
    val = lambda ws: F.cross_entropy(net.forward(ws, act, xv), yv)  # noqa: E731
    lr, wd = 0.3, 0.05
    hg = resp.one_step_response(val, w, g, lr, wd)

    eta = torch.tensor(lr, dtype=F64, requires_grad=True)
    lam = torch.tensor(wd, dtype=F64, requires_grad=True)
    ahead = [wi.detach() - eta * (gi + lam * wi.detach()) for wi, gi in zip(w, g, strict=True)]
    loss = val(ahead)
    d_lr, d_wd = torch.autograd.grad(loss, (eta, lam))
    torch.testing.assert_close(hg.d_lr, d_lr, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(hg.d_wd, d_wd, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(hg.val_loss, loss.detach())
    assert abs(float(d_lr)) > 1e-4 and abs(float(d_wd)) > 1e-5


# --- REINFORCE on a toy bandit ----------------------------------------------------------------

def test_reinforce_gradient_is_unbiased_on_a_toy_bandit():
    """Policy over a 3-way and a 2-way choice and two Gaussian values x; reward
    R = r[c] + |x - x_opt|^2 (a loss: optimum c = argmin r, x = x_opt). Its expectation is
    known in closed form, J = sum_c p(c) (r[c] + |mu(c) - x_opt|^2 + |sigma|^2), so autograd
    gives the analytic gradient. The mean of many REINFORCE estimates (constant baseline) and
    of many pathwise estimates (the response-gradient route, dR/dx through the reparameterized
    sample) agree with it within 3 standard errors, coordinate by coordinate on the heads'
    biases and log std and along fixed directions; dropping the Gaussian's score does not."""
    torch.manual_seed(0)
    policy = Policy([3, 2], [0.5, -1.0], 0.7, hidden=4)
    with torch.no_grad():  # a policy whose optimizer head depends on the sampled child
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    r = torch.tensor([[0.3, 0.9], [0.1, 1.4], [0.7, 0.2]], dtype=F64)
    x_opt = torch.tensor([-0.5, 0.4], dtype=F64)
    params = list(policy.parameters())

    h, logits = policy.logits()
    logp = [F.log_softmax(lg, -1) for lg in logits]
    expected = sum(
        (logp[0][a] + logp[1][b]).exp()
        * (r[a, b] + ((policy.mean(h, [a, b]) - x_opt) ** 2).sum()
           + (2 * policy.log_std).exp().sum())
        for a, b in itertools.product(range(3), range(2)))
    analytic = torch.cat([g.reshape(-1) for g in torch.autograd.grad(expected, params)])

    gen = torch.Generator().manual_seed(5)
    n, baseline = 2000, 1.5
    score, pathwise, arch_only = [], [], []
    def flat(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            loss, params, retain_graph=True, materialize_grads=True)])

    for _ in range(n):
        s = policy.sample(gen)
        reward = float(r[tuple(s.choices)] + ((s.values - x_opt) ** 2).sum())
        score.append(flat(policy_loss(s, reward - baseline)))
        # pathwise: the child by its score, x given the child by dR/dx = 2 (x - x_opt)
        # through x = mu(c) + sigma eps (policy_loss's response term)
        arch_logp = sum(F.log_softmax(lg, -1)[c] for lg, c in zip(policy.logits()[1],
                                                                   s.choices, strict=True))
        pathwise.append(flat((reward - baseline) * arch_logp
                             + policy_loss(s, 0.0, 2 * (s.values - x_opt))))
        arch_only.append(flat((reward - baseline) * arch_logp))

    def z_scores(estimates):
        est = torch.stack(estimates)
        mean, se = est.mean(0), est.std(0) / math.sqrt(n)
        dirs = torch.randn(4, len(analytic), generator=torch.Generator().manual_seed(9),
                           dtype=F64)
        dirs = torch.cat([dirs, analytic[None] / analytic.norm()])
        z_dir = (est @ dirs.T).mean(0) - dirs @ analytic
        z_dir = z_dir / ((est @ dirs.T).std(0) / math.sqrt(n))
        return (mean - analytic)[heads] / se[heads], z_dir, se[heads]

    sizes = [p.numel() for p in params]
    offsets = dict(zip([id(p) for p in params], np.cumsum([0, *sizes[:-1]]), strict=True))
    heads = torch.cat([torch.arange(offsets[id(p)], offsets[id(p)] + p.numel())
                       for p in (policy.arch_head.bias, policy.opt_head.bias, policy.log_std)])
    for estimates in (score, pathwise):
        z_coord, z_dir, se = z_scores(estimates)
        assert z_coord.abs().max() < 3, z_coord
        assert z_dir.abs().max() < 3, z_dir
        assert (se < 0.1 * analytic[heads].abs().max()).all()  # the test has power
    z_coord, _, _ = z_scores(arch_only)
    assert z_coord.abs().max() > 10  # a biased estimator is caught


def retrain(task: Any, choice: Choice, splits: Any, spec: Any,
            activations: Sequence[str] = ControllerOptions.activations,
            report: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `choice` from the supernet's fresh initialization (`spec.seed`) with its fixed lr
    and wd through the harness, one record per epoch, tagged phase = "retrain" (a test helper:
    the method itself retrains through its follow-up phase)."""
    from bench import harness

    def tagged(record: dict) -> None:
        record["phase"] = "retrain"
        if report is not None:
            report(record)

    return harness.train(task, FixedChild(choice, activations), {"lr": choice.lr,
                                                                  "wd": choice.wd},
                         splits, spec, tagged)




# --- the supernet, the evaluator hook, retraining ---------------------------------------------

def test_full_width_child_is_the_tasks_model_and_children_are_sub_blocks():
    model = harness.make_model(tasks.DIGITS, 0, torch.device("cpu"), F64)
    params = dict(model.named_parameters())
    net = Supernet.from_params(params)
    assert net.sizes == (64, 64, 64, 10) and net.hidden == (64, 64)
    x = torch.randn(5, 64, dtype=F64)
    torch.testing.assert_close(net.forward(net.tensors(params, (64, 64)), "relu", x), model(x))
    small = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 32), nn.Tanh(),
                          nn.Linear(32, 10)).double()
    with torch.no_grad():
        for (name, p), q in zip(small.named_parameters(), net.tensors(params, (16, 32)),
                                strict=True):
            assert p.shape == q.shape, name
            p.copy_(q)
    torch.testing.assert_close(net.forward(net.tensors(params, (16, 32)), "tanh", x), small(x))


class ZeroOutputs(SGD):
    def evaluator(self, state):
        return lambda params, x: torch.zeros(len(x), 10, dtype=x.dtype)


def test_the_harness_evaluates_with_a_rules_evaluator():
    splits = tasks.DIGITS.load(0)
    spec = harness.TrainSpec(epochs=1, batch_size=64, seed=0)
    record = harness.train(tasks.DIGITS, ZeroOutputs(), {"lr": 0.1}, splits, spec)[-1]
    assert record["test_loss"] == pytest.approx(math.log(10))
    assert record["test_acc"] == pytest.approx(float((splits.y_test == 0).float().mean()))
    plain = harness.train(tasks.DIGITS, SGD(), {"lr": 0.1}, splits, spec)[-1]
    assert abs(plain["test_loss"] - math.log(10)) > 1e-3


class Spy(ControllerRule):
    """Keeps the params and state it trained, to check what the harness recorded."""

    def step(self, state, params, batch, ctx):
        self.seen = state, params
        return super().step(state, params, batch, ctx)


def test_records_show_the_mode_childs_losses_entropy_and_choices():
    rule = Spy(ControllerOptions(every_k=3, response="one-step"))
    splits = tasks.DIGITS.load(0)
    records = harness.train(tasks.DIGITS, rule, {"lr": 0.1, "wd": 1e-4}, splits,
                            harness.TrainSpec(epochs=2, batch_size=32, seed=1))
    state, params = rule.seen
    last = records[-1]
    choice = rule.mode(state)
    assert last["hp_width_0"] == choice.widths[0] and last["hp_width_1"] == choice.widths[1]
    assert last["hp_lr"] == pytest.approx(choice.lr) and last["hp_wd"] == pytest.approx(choice.wd)
    assert ControllerOptions.activations[int(last["hp_activation"])] == choice.activation
    net = Supernet.from_params(params)
    with torch.no_grad():
        out = net.forward(net.tensors(params, choice.widths), choice.activation, splits.x_test)
    assert last["test_loss"] == pytest.approx(float(F.cross_entropy(out, splits.y_test)))
    for r in records:
        for k in ("entropy", "entropy_arch", "baseline", "reward", "hg_lr", "hg_wd",
                  "response_norm", "std_log_lr"):
            assert math.isfinite(r[k]), k
        assert r["entropy_arch"] <= math.log(3) * 2 + math.log(2) + 1e-9
    assert last["policy_updates"] == last["step"] // 3 and last["skipped_updates"] == 0
    assert records[0]["hp_lr"] != 0.1  # the policy moved
    assert last["response_norm"] > 0


@pytest.mark.parametrize("response", ["none", "ift"])
def test_runs_through_the_trial_interface(response):
    records = run_trial({"task": "digits", "method": "controller", "seed": 0, "epochs": 1,
                         "hparams": {"lr": 0.1, "wd": 1e-3}, "device": "cpu",
                         "options": {"response": response, "every_k": 4}})
    r = records[-1]
    assert not r["diverged"] and r["hp_wd"] >= 1e-6 and r["policy_updates"] > 0
    assert (r["response_norm"] == 0) == (response == "none")


def test_retraining_the_full_relu_child_is_plain_sgd():
    splits = tasks.DIGITS.load(0)
    spec = harness.TrainSpec(epochs=2, batch_size=32, seed=4)
    choice = Choice((64, 64), "relu", 0.1, 1e-3)
    got = retrain(tasks.DIGITS, choice, splits, spec)
    want = harness.train(tasks.DIGITS, SGD(), {"lr": 0.1, "wd": 1e-3}, splits, spec)
    assert [r["phase"] for r in got] == ["retrain"] * 2
    for a, b in zip(got, want, strict=True):
        for k in ("train_loss", "val_loss", "test_loss", "test_acc"):
            assert a[k] == pytest.approx(b[k], rel=1e-5), k
        assert a["hp_width_0"] == 64 and a["hp_activation"] == 0 and a["hp_lr"] == 0.1
    assert Choice.from_record(got[-1], ControllerOptions()) == choice


def test_a_fixed_child_trains_only_its_sub_blocks():
    params = tiny_supernet()
    before = {k: v.clone() for k, v in params.items()}
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    rule = FixedChild(Choice((2, 3), "tanh", 0.5, 0.1), ("relu", "tanh"))
    state = rule.init(params, {})
    from bench.testing.reference import context, tiny_mlp
    ctx = context(tiny_mlp("tanh"), None)
    ctx.criterion = F.cross_entropy
    gen = torch.Generator().manual_seed(0)
    batch = (torch.randn(8, 3, generator=gen, dtype=F64), torch.randint(0, 2, (8,), generator=gen))
    rule.step(state, params, batch, ctx)
    moved = {k: (params[k] != before[k]) for k in params}
    assert moved["0.weight"][:2].all() and not moved["0.weight"][2:].any()
    assert moved["2.weight"][:3, :2].all() and not moved["2.weight"][:, 2:].any()
    assert not moved["2.weight"][3:].any() and not moved["4.weight"][:, 3:].any()


@pytest.mark.parametrize("bad,message", [
    ({"response": "exact"}, "'exact' is not one of none, one-step, ift"),
    ({"widths": [16, 16]}, "widths: [16, 16] is not a non-empty list of distinct"),
    ({"activations": ["relu", "swish"]}, "activations: ['relu', 'swish']"),
    ({"every_k": 0}, "every_k: must be >= 1"),
    ({"neumann_terms": -1}, "neumann_terms: must be >= 0"),
    ({"baseline_decay": 1.0}, "baseline_decay: must be in [0, 1)"),
    ({"lr_min": 0.5, "lr_max": 0.1}, "lr_min, lr_max: need 0 < min <= max"),
])
def test_bad_options_are_named(bad, message):
    _, problems = parse_options(ControllerOptions, bad, "controller")
    assert any(message in p for p in problems), problems


def test_tasks_without_an_mlp_supernet_or_too_narrow_are_refused():
    m = methods.get("controller")
    assert m.problems_for(ControllerOptions(), tasks.DIGITS) == []
    (line,) = m.problems_for(ControllerOptions(), tasks.RIDGE)
    assert "'synthetic-ridge' has no MLP supernet" in line
    (line,) = m.problems_for(ControllerOptions(widths=(32, 128)), tasks.DIGITS)
    assert "[128] exceed task 'digits''s hidden width 64" in line


# --- digits: the chosen child against fixed widths ---------------------------------------------

def test_chosen_width_beats_the_worst_fixed_width_on_digits():
    """The controller's choice after a short search, retrained from scratch, has a lower
    validation loss than the worst of the fixed widths (all hidden layers that width, trained
    from scratch with the same activation, lr and wd: only the width differs)."""
    epochs, options = 8, ControllerOptions(response="one-step")
    search = run_trial({"task": "digits", "method": "controller", "seed": 0, "epochs": epochs,
                        "hparams": {"lr": 0.1, "wd": 1e-4}, "device": "cpu"})
    choice = Choice.from_record(search[-1], options)
    splits = tasks.DIGITS.load(0)
    spec = harness.TrainSpec(epochs=epochs, batch_size=32, seed=1)

    def val_loss(widths):
        c = Choice(widths, choice.activation, choice.lr, choice.wd)
        return retrain(tasks.DIGITS, c, splits, spec)[-1]["val_loss"]

    fixed = {w: val_loss((w, w)) for w in options.widths}
    chosen = val_loss(choice.widths)
    assert chosen < max(fixed.values()), (choice, chosen, fixed)


def test_a_trial_with_retrain_continues_with_the_chosen_child_trained_from_scratch():
    from bench.trial import run_trial

    records = run_trial({"task": "digits", "method": "controller", "seed": 1, "epochs": 2,
                         "hparams": {"lr": 0.05, "wd": 1e-4}, "device": "cpu",
                         "options": {"retrain": True}})
    assert [(r["epoch"], r["phase"]) for r in records] == [
        (1, "search"), (2, "search"), (3, "retrain"), (4, "retrain")]
    cum = [r["train_seconds_cum"] for r in records]
    assert cum == sorted(cum) and records[2]["step"] > records[1]["step"]
    chosen = {k: v for k, v in records[1].items() if k.startswith("hp_")}
    assert all(r[k] == v for r in records[2:] for k, v in chosen.items())
    assert records[3]["val_loss"] < records[2]["val_loss"]  # the child trains
