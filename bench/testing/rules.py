"""Checks every update rule must pass. A test class sets `method` (and `options`) and inherits
them; `exact = True` adds the hypergradient verifier, run with `frozen` options that keep the
hyperparameters fixed:

    class TestMyRule(UpdateRuleConformance):
        method = "my-rule"
        exact = True
        frozen = {"meta_lr": 0.0}
"""

from __future__ import annotations

import math

import torch

from bench.results import TIMING
from bench.testing.reference import check_hypergradients, problem, run_rule
from bench.trial import run_trial
from methods import get

HPARAMS = {"lr": 0.1, "wd": 1e-4}


def digits_trial(method: str, options: dict, epochs: int = 2, seed: int = 3) -> list[dict]:
    return run_trial({"task": "digits", "method": method, "hparams": dict(HPARAMS),
                      "seed": seed, "epochs": epochs, "device": "cpu", "options": options})


class UpdateRuleConformance:
    method: str
    options: dict = {}  # noqa: RUF012 (read only)
    exact: bool = False  # its hypergradients are exact over the whole run so far
    frozen: dict = {}  # noqa: RUF012 (options that keep the hyperparameters fixed)

    def rule(self, **extra):
        m = get(self.method)
        return m.update_rule(m.options_type(**{**self.options, **extra}))

    def test_records_carry_finite_hyperparameters_within_bounds(self):
        records = digits_trial(self.method, self.options)
        assert len(records) == 2 and not records[-1]["diverged"]
        for r in records:
            hps = {k: v for k, v in r.items() if k.startswith("hp_")}
            assert hps, "the rule records no hyperparameter (UpdateRule.hparams)"
            assert all(math.isfinite(v) for v in hps.values()), hps
            assert all(v > 0 for k, v in hps.items() if k.startswith("hp_lr")), hps
            assert all(v >= 0 for k, v in hps.items() if k.startswith("hp_wd")), hps

    def test_the_same_seed_gives_the_same_run(self):
        a, b = (digits_trial(self.method, self.options) for _ in range(2))
        assert [{k: v for k, v in r.items() if k not in TIMING} for r in a] == \
               [{k: v for k, v in r.items() if k not in TIMING} for r in b]

    def test_a_non_finite_hypergradient_is_skipped_and_counted(self):
        model, params, batches, val = problem("tanh", 4)
        nan_batch = (torch.full_like(batches[0][0], math.nan), batches[0][1])
        rule = self.rule()
        state, _ = run_rule(rule, model, params, batches[:2] + [nan_batch] * 20, val,
                            {"lr": 0.3, "wd": 0.01})  # every rule takes a hyper-step in 20
        assert all(math.isfinite(v) for v in rule.hparams(state).values())
        diagnostics = rule.diagnostics(state)
        if any(k.startswith("hg_") for k in diagnostics):  # a hypergradient rule
            assert diagnostics.get("skipped_hypersteps", 0) > 0, diagnostics

    def test_exact_hypergradients_match_autodiff_of_the_unrolled_run(self):
        if not self.exact:
            return
        for act in ("tanh", "relu"):
            check_hypergradients(self.rule(**self.frozen), act=act)
        if "momentum" in {f for f in get(self.method).options_type.__dataclass_fields__}:
            check_hypergradients(self.rule(**self.frozen, momentum=0.9), act="relu")

