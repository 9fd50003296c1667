"""The plugin's tests: ohobench's conformance kit (bench.testing) on each part, then what is
particular to each. They need the package installed: the kit finds the parts by name, through
the entry points, as `ohobench run` does."""

import math

import numpy as np
import pytest
import torch
from bench.space import Categorical, IntUniform, LogUniform
from bench.testing import SearchConformance, TaskConformance, UpdateRuleConformance
from bench.trial import run_trial

from ohobench_example.cosine import lr_factor
from ohobench_example.sobol import SobolSearch


class TestSobol(SearchConformance):
    method = "sobol"


class TestCosineWarm(UpdateRuleConformance):
    method = "lr-cosine-warm"


class TestWine(TaskConformance):
    task = "wine"


def test_the_first_sobol_points_fill_every_bin_of_every_dimension():
    """The first 2^k scrambled Sobol points put one value in each of 2^k equal bins of a
    dimension: on a log scale for LogUniform, one of each choice for a categorical."""
    space = {"lr": LogUniform(1e-4, 1.0), "act": Categorical(("relu", "tanh")),
             "width": IntUniform(1, 4)}
    search = SobolSearch(space, seed=0, budget=16)
    configs = [search.suggest() for _ in range(16)]
    bins = np.floor((np.log10([c["lr"] for c in configs]) + 4) / 4 * 16)
    assert sorted(bins) == list(range(16))
    assert sorted(c["act"] for c in configs) == ["relu"] * 8 + ["tanh"] * 8
    assert sorted(c["width"] for c in configs) == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert search.suggest() is None


def test_the_schedule_warms_up_then_decays_by_a_cosine():
    total, warmup = 100, 10
    factors = [lr_factor(t, total, warmup, 0.01) for t in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[warmup - 1] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(factors[warmup:], factors[warmup + 1:], strict=False))
    assert factors[55] == pytest.approx(0.01 + 0.99 * 0.5)  # halfway through the decay
    assert 0.01 < factors[-1] < 0.0105


def test_the_wine_models_activation_and_width_are_optional_dimensions():
    from ohobench_example.wine import WINE

    model = WINE.build_model({"activation": "tanh", "width": 8, "lr": 0.1})
    assert isinstance(model[1], torch.nn.Tanh) and model[0].out_features == 8
    records = run_trial({"task": "wine", "method": "lr-cosine-warm", "seed": 0, "epochs": 1,
                         "hparams": {"lr": 0.2, "wd": 0.0, "activation": "tanh"},
                         "device": "cpu"})
    assert records[-1]["hp_activation"] == "tanh"


def test_the_harness_tells_the_rule_the_run_length():
    """Trained 4 epochs on wine: the lr recorded at the end of each epoch follows the
    schedule over the whole run, which only the run's length makes possible."""
    records = run_trial({"task": "wine", "method": "lr-cosine-warm", "seed": 0, "epochs": 4,
                         "hparams": {"lr": 0.2, "wd": 0.0}, "device": "cpu"})
    per_epoch = 8  # 114 training wines in batches of 16
    expected = [0.2 * lr_factor(e * per_epoch - 1, 4 * per_epoch, per_epoch, 0.01)
                for e in (1, 2, 3, 4)]
    assert [r["hp_lr"] for r in records] == pytest.approx(expected)
    assert records[0]["hp_lr"] == pytest.approx(0.2) and records[-1]["hp_lr"] < 0.005
    assert math.isfinite(records[-1]["test_loss"])
