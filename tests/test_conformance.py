"""The conformance kit (bench.testing) run on built-in update rules and tasks; the searches
run it in tests/test_searches.py."""

import pytest

import methods
from bench.testing import TaskConformance, UpdateRuleConformance, check_hypergradients

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
    method = "hd"  # its hypergradient is one step's, not the unrolled run's


class TestDigits(TaskConformance):
    task = "digits"


class TestSyntheticRidge(TaskConformance):
    task, fixed_pool = "synthetic-ridge", False  # generated per seed


def test_the_verifier_catches_a_wrong_hypergradient():
    """The shared layerwise influence is exact for its own objective, not for each layer's
    derivative of the unrolled run: the verifier must say so, naming the hypergradient."""
    m = methods.get("oho-layerwise")
    rule = m.update_rule(m.options_type(**FROZEN, influence="shared"))
    with pytest.raises(AssertionError, match="hypergradient lr_0: the rule reports"):
        check_hypergradients(rule, act="relu")
