"""Checks every update rule must pass. A test class sets `method` (and `options`) and inherits
them; `exact = True` adds the hypergradient verifier, run with `frozen` options that keep the
hyperparameters fixed (and `horizon = 1` for a one-step hypergradient):

    class TestMyRule(UpdateRuleConformance):
        method = "my-rule"
        exact = True
        frozen = {"meta_lr": 0.0}

A check that does not apply (the verifier on a rule that is not exact) is reported as skipped,
with its reason.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
from collections.abc import Mapping
from typing import Any

import torch

from bench.results import TIMING
from bench.testing.reference import check_hypergradients, context, problem, run_rule
from bench.trial import run_trial
from methods import get

HPARAMS = {"lr": 0.1, "wd": 1e-4}
CHECKPOINT_EPOCHS, RESUME_AFTER = 2, 1  # the checkpoint test: a trial stopped after epoch 1 of 2


def digits_trial(method: str, options: dict, epochs: int = 2, seed: int = 3,
                 **hooks: Any) -> list[dict]:
    return run_trial({"task": "digits", "method": method, "hparams": dict(HPARAMS),
                      "seed": seed, "epochs": epochs, "device": "cpu", "options": options},
                     **hooks)


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def saved_and_loaded(obj: Any) -> Any:
    """`obj` written with torch.save and read back, as a checkpoint travels (bench.checkpoints)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def keys_of(saved: Any) -> list[str] | None:
    """The keys of a rule's saved state: a mapping's keys, a dataclass's fields; None else."""
    if isinstance(saved, Mapping):
        return list(saved)
    if dataclasses.is_dataclass(saved) and not isinstance(saved, type):
        return [f.name for f in dataclasses.fields(saved)]
    return None


def without(saved: Any, key: str) -> Any:
    """A copy of a saved state that lost `key` (a dataclass: the attribute deleted)."""
    if isinstance(saved, Mapping):
        return {k: v for k, v in saved.items() if k != key}
    broken = copy.copy(saved)
    object.__delattr__(broken, key)
    return broken


class UpdateRuleConformance:
    method: str
    options: dict = {}  # noqa: RUF012 (read only)
    exact: bool = False  # its reported hypergradients are exact (see `horizon`)
    frozen: dict = {}  # noqa: RUF012 (options that keep the hyperparameters fixed)
    # Over how many of the last steps the hypergradients are exact: None, the whole run so far
    # (oho, rtho); 1, a one-step (greedy) hypergradient (hypergradient descent, t1t2).
    horizon: int | None = None

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
            assert all(0 <= v < 1 for k, v in hps.items() if k.startswith("hp_momentum")), hps

    def test_the_same_seed_gives_the_same_run(self):
        a, b = (digits_trial(self.method, self.options) for _ in range(2))
        assert without_timing(a) == without_timing(b)

    def test_a_trial_resumed_from_its_checkpoint_reports_what_an_uninterrupted_one_does(self):
        """Every epoch is checkpointed (UpdateRule.state_dict, saved with torch.save): a trial
        stopped after epoch RESUME_AFTER and continued from that checkpoint, with a fresh rule
        (load_state_dict), trains the remaining epochs and reports the records an uninterrupted
        trial reports, timings aside. Checkpointing itself changes nothing either."""
        saved: list[dict] = []
        uninterrupted = digits_trial(self.method, self.options, epochs=CHECKPOINT_EPOCHS)
        checkpointed = digits_trial(self.method, self.options, epochs=CHECKPOINT_EPOCHS,
                                    checkpoint=lambda state: saved.append(saved_and_loaded(state)))
        assert without_timing(checkpointed) == without_timing(uninterrupted), (
            "saving a checkpoint changed the trial: does state_dict change the state?")
        assert len(saved) >= CHECKPOINT_EPOCHS - 1, "the trial saved no checkpoint"
        resume = saved[RESUME_AFTER - 1]
        reported: list[dict] = []
        resumed = digits_trial(self.method, self.options, epochs=CHECKPOINT_EPOCHS,
                               report=reported.append, resume=resume)
        trained = reported[-1]["step"] - resume["train"].step if reported else 0
        assert trained > 0, "the resumed trial trained no step: it did not continue"
        assert [r["epoch"] for r in reported] == list(range(RESUME_AFTER + 1,
                                                           CHECKPOINT_EPOCHS + 1))
        assert trained == uninterrupted[-1]["step"] - uninterrupted[RESUME_AFTER - 1]["step"]
        assert without_timing(resumed) == without_timing(uninterrupted), (
            f"the trial resumed after epoch {RESUME_AFTER} reports other records than the "
            "uninterrupted one: does state_dict keep, and load_state_dict restore, everything "
            "the rule's steps depend on?")

    def test_a_rule_state_that_lost_a_key_is_refused(self):
        """A checkpoint whose rule state misses a key (each in turn) must not train on: the
        rule's load_state_dict, or at the latest its next step, raises."""
        model, params, batches, val = problem("tanh", 4)
        hparams = {"lr": 0.3, "wd": 0.01}
        rule = self.rule()
        state, trained = run_rule(rule, model, params, batches[:3], val, hparams)
        saved = saved_and_loaded(rule.state_dict(state))
        keys = keys_of(saved)
        if keys is None:
            import pytest  # here only: importing the kit needs no pytest
            pytest.skip(f"{self.method}'s state_dict returns a {type(saved).__name__}: the kit "
                        "drops keys of a mapping or fields of a dataclass only")
        for key in keys:
            fresh = self.rule()
            weights = {k: v.detach().clone().requires_grad_(True) for k, v in trained.items()}
            ctx = context(model, val)
            ctx.step, ctx.epoch = 3, 2
            try:
                restored = fresh.load_state_dict(fresh.init(weights, hparams),
                                                 without(saved_and_loaded(saved), key))
                restored, _ = fresh.step(restored, weights, batches[3], ctx)
                fresh.hparams(restored), fresh.diagnostics(restored)
                fresh.lr_floored(restored), fresh.state_dict(restored)
            except Exception:
                continue
            raise AssertionError(
                f"{self.method}: a saved rule state without {key!r} was loaded and trained on "
                "without an error: load_state_dict must refuse a state that misses a key "
                "(raise, naming it), or a damaged checkpoint trains on with defaults")

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
        """check_hypergradients: each reported hg_<name> against d E_val(w_T) / d <name> by
        autodiff of the unrolled float64 training (the last `horizon` steps live), rel 1e-6;
        on tanh and relu, and at momentum 0 and 0.9 when the options have `momentum`."""
        if not self.exact:
            import pytest  # here only: importing the kit needs no pytest
            pytest.skip(f"{self.method} does not claim exact hypergradients (exact = False)")
        for act in ("tanh", "relu"):
            check_hypergradients(self.rule(**self.frozen), act=act, horizon=self.horizon)
        fields = get(self.method).options_type.__dataclass_fields__
        if "momentum" in fields and "momentum" not in self.frozen:
            for momentum in (0.0, 0.9):
                check_hypergradients(self.rule(**self.frozen, momentum=momentum), act="relu",
                                     horizon=self.horizon)
