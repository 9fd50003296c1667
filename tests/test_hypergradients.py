"""Every exact method's hypergradient equals autodiff through the unrolled training (float64)."""

import math

import pytest

import methods
from bench.testing.reference import (
    problem,
    run_rule,
    shared_hypergradients,
    true_hypergradients,
)
from methods.online import layer_groups

REL = 1e-6
FROZEN = {"meta_lr": 0.0, "meta_lr_wd": 0.0, "meta_lr_momentum": 0.0}  # hypers stay put


def rule_for(method: str, **options):
    m = methods.get(method)
    opts = m.options_type(**{**FROZEN, **options})
    assert not opts.problems()
    return m.update_rule(opts)


def compare(state, expected: dict[str, list[float]]):
    got = dict(zip(state.hypers.tuned, state.hypergrads, strict=True))
    for (kind, group), value in got.items():
        want = expected[kind][group]
        assert math.isfinite(value)
        assert abs(value - want) <= REL * abs(want), (kind, group, value, want)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("method,groups", [("oho", 1), ("oho", 2), ("oho-layerwise", 0),
                                           ("rtho", 1), ("marthe", 1)])
def test_forward_hypergradient_matches_unrolled_autodiff(act, momentum, method, groups):
    steps = 6
    model, params, batches, val = problem(act, steps)
    options = {"groups": groups, "momentum": momentum, "influence": "exact"}
    if method == "rtho":
        options["hyper_every"] = 3
    if method == "marthe":
        options["discount"] = 1.0
    tune = ("lr", "wd", "momentum") if momentum else ("lr", "wd")
    state, _ = run_rule(rule_for(method, tune=tune, **options), model, params, batches, val,
                        {"lr": 0.3, "wd": 0.05})
    group_of, n = layer_groups(list(params), groups)
    hypers = {"lr": [0.3] * n, "wd": [0.05] * n}
    if momentum:
        hypers["momentum"] = [momentum] * n
    compare(state, true_hypergradients(model, params, batches, val, hypers, group_of))


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_shared_influence_matches_autodiff_of_its_objective(act, momentum):
    """influence = "shared" (the OHO authors' layerwise): each layer's hypergradient is the
    change of E_val through that layer's weights when every layer's value moves together."""
    model, params, batches, val = problem(act, 6)
    tune = ("lr", "wd", "momentum") if momentum else ("lr", "wd")
    state, _ = run_rule(rule_for("oho-layerwise", influence="shared", momentum=momentum,
                                 tune=tune), model, params, batches, val, {"lr": 0.3, "wd": 0.05})
    group_of, n = layer_groups(list(params), 0)
    hypers = {"lr": [0.3] * n, "wd": [0.05] * n}
    if momentum:
        hypers["momentum"] = [momentum] * n
    compare(state, shared_hypergradients(model, params, batches, val, hypers, group_of))
    exact = true_hypergradients(model, params, batches, val, hypers, group_of)
    for kind, values in exact.items():  # the layers' sum is exact; the split is not
        got = [h for (k, _), h in zip(state.hypers.tuned, state.hypergrads, strict=True)
               if k == kind]
        assert sum(got) == pytest.approx(sum(values), rel=REL)
        assert got != pytest.approx(values, rel=1e-3)


def test_shared_influence_with_one_group_is_global_oho():
    model, params, batches, val = problem("relu", 30)
    hparams = {"lr": 0.3, "wd": 0.05}
    moving = {"meta_lr": 1e-3, "meta_lr_wd": 1e-3}
    exact, _ = run_rule(rule_for("oho", **moving), model, params, batches, val, hparams)
    shared, _ = run_rule(rule_for("oho", influence="shared", **moving), model, params, batches,
                         val, hparams)
    assert shared.hypergrads == exact.hypergrads
    assert shared.hypers.values == exact.hypers.values


@pytest.mark.parametrize("chunk", [1, 2, 6])
def test_chunked_hvps_give_the_same_hypergradient(chunk):
    model, params, batches, val = problem("relu", 4)
    state, _ = run_rule(rule_for("oho-layerwise", hvp_chunk=chunk, influence="exact"), model,
                        params, batches, val,
                        {"lr": 0.3, "wd": 0.05})
    group_of, n = layer_groups(list(params), 0)
    compare(state, true_hypergradients(model, params, batches, val,
                                       {"lr": [0.3] * n, "wd": [0.05] * n}, group_of))


def test_finite_differences_are_close_on_tanh():
    model, params, batches, val = problem("tanh", 4)
    state, _ = run_rule(rule_for("oho", hvp="fd", fd_radius=1e-5), model, params, batches, val,
                        {"lr": 0.3, "wd": 0.05})
    group_of, _ = layer_groups(list(params), 1)
    want = true_hypergradients(model, params, batches, val, {"lr": [0.3], "wd": [0.05]}, group_of)
    got = dict(zip(state.hypers.tuned, state.hypergrads, strict=True))
    assert got[("lr", 0)] == pytest.approx(want["lr"][0], rel=1e-4)
    assert got[("wd", 0)] == pytest.approx(want["wd"][0], rel=1e-4)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("groups", [1, 0])
def test_trho_hypergradient_is_exact_over_its_window(act, momentum, groups):
    """After 6 steps with window 3, the last hyperparameter step differentiated steps 3..5
    only: autodiff through the unrolled run, with the first 3 steps' hyperparameters held."""
    model, params, batches, val = problem(act, 6)
    tune = ("lr", "wd", "momentum") if momentum else ("lr", "wd")
    rule = rule_for("trho", window=3, groups=groups, momentum=momentum, tune=tune)
    state, _ = run_rule(rule, model, params, batches, val, {"lr": 0.3, "wd": 0.05})
    group_of, n = layer_groups(list(params), groups)
    hypers = {"lr": [0.3] * n, "wd": [0.05] * n}
    if momentum:
        hypers["momentum"] = [momentum] * n
    compare(state, true_hypergradients(model, params, batches, val, hypers, group_of,
                                       window_start=3))
