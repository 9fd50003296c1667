"""The conformance kit (bench.testing) run on built-in update rules and tasks; the searches
run it in tests/test_searches.py. Then the kit's own checks: that they fail what they must,
in one line that says what was compared."""

import pytest

import methods
from bench.testing import TaskConformance, UpdateRuleConformance, check_hypergradients
from methods.base import Method, MethodKind
from methods.sgd import SGD, SGDState

FROZEN = {"meta_lr": 0.0, "meta_lr_wd": 0.0}


class TestOHO(UpdateRuleConformance):
    method, exact, frozen = "oho", True, FROZEN


class TestOHOLayerwiseExact(UpdateRuleConformance):
    method, exact, frozen = "oho-layerwise", True, FROZEN
    options = {"influence": "exact"}  # noqa: RUF012


class TestRTHO(UpdateRuleConformance):
    method, exact = "rtho", True
    frozen = {**FROZEN, "hyper_every": 3}  # noqa: RUF012 (6 verified steps: 2 hyper-steps)


class TestHD(UpdateRuleConformance):
    method = "hd"  # its hypergradient is one step's of the training loss: nothing to verify


class TestDigits(TaskConformance):
    task = "digits"


class TestSyntheticRidge(TaskConformance):
    task, fixed_pool = "synthetic-ridge", False  # generated per seed


def test_the_verifier_catches_a_wrong_hypergradient():
    """The shared layerwise influence is exact for its own objective, not for each layer's
    derivative of the unrolled run: the verifier must say so, naming the hypergradient, both
    values and what it compared."""
    m = methods.get("oho-layerwise")
    rule = m.update_rule(m.options_type(**FROZEN, influence="shared"))
    with pytest.raises(AssertionError, match="hypergradient lr_0: the rule reports") as info:
        check_hypergradients(rule, act="relu")
    assert "\n" not in str(info.value)
    assert ("relative error" in str(info.value) and "> rel = 1e-06" in str(info.value)
            and "against d E_val(w_6) / d lr_0, lr_0 a variable over the whole run"
            in str(info.value)), str(info.value)


def test_the_verifier_checks_a_one_step_hypergradient_over_the_last_step():
    """t1t2's weight-decay hypergradient is greedy (only the last step counts): exact with
    horizon 1, and told apart from the derivative through the whole run."""
    m = methods.get("t1t2")
    rule = m.update_rule(m.options_type(tune=("wd",), meta_lr_wd=0.0, hyper_every=1))
    errors = check_hypergradients(rule, act="relu", horizon=1)
    assert set(errors) == {"wd_0", "wd_1", "wd_2"} and max(errors.values()) < 1e-10, errors
    with pytest.raises(AssertionError, match="hypergradient wd_0: .* over the whole run"):
        check_hypergradients(rule, act="relu")


class MomentumProbe(SGD):
    """Reports a hypergradient of the momentum; at momentum 0, SGD.hparams leaves momentum
    out (methods/sgd.py): the verifier must say so, not raise KeyError: 'momentum'."""

    def diagnostics(self, state: SGDState) -> dict[str, float]:
        return {"hg_momentum": 0.0}


def test_a_hypergradient_without_its_hyperparameter_is_named_in_one_line():
    with pytest.raises(AssertionError, match=r"reports hg_momentum, but its hparams\(\) has no "
                                             r"'momentum' \(it has lr, wd\)") as info:
        check_hypergradients(MomentumProbe())
    assert "\n" not in str(info.value)
    assert "SGD.hparams leaves momentum out at momentum 0" in str(info.value)


def test_the_verifier_refuses_hyperparameters_that_moved():
    m = methods.get("oho")
    with pytest.raises(AssertionError, match=r"moved during the check \(lr 0.3 -> 0.29"):
        check_hypergradients(m.update_rule(m.options_type(meta_lr=1e-2)), act="relu")


class ForgetfulSchedule(SGD):
    """Halves the lr every 10 steps; its checkpoint keeps the state, but load_state_dict
    starts afresh: a resumed trial trains on with the initial lr."""

    def step(self, state, params, batch, ctx):
        if ctx.step and ctx.step % 10 == 0:
            state.lr /= 2
        return super().step(state, params, batch, ctx)

    def load_state_dict(self, state, saved):
        return state


class ForgetfulMethod(Method):
    name, kind = "forgetful", MethodKind.ONLINE

    def update_rule(self, options):
        return ForgetfulSchedule()


def test_the_checkpoint_check_catches_a_rule_that_forgets_its_state(monkeypatch):
    monkeypatch.setitem(methods.BUILTIN, "forgetful", ForgetfulMethod())
    kit = type("TestForgetful", (UpdateRuleConformance,), {"method": "forgetful"})()
    with pytest.raises(AssertionError, match="resumed after epoch 1 reports other records"):
        kit.test_a_trial_resumed_from_its_checkpoint_reports_what_an_uninterrupted_one_does()
