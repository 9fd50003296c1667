import re

import numpy as np
import pytest

from bench import space, suite
from bench.errors import ConfigError
from bench.space import Categorical, IntUniform, LogUniform, Uniform

SPACE = {"lr": LogUniform(1e-3, 0.5), "wd": Uniform(0.0, 1e-3), "width": IntUniform(2, 5),
         "act": Categorical(("relu", "tanh"))}


def test_samples_lie_inside_and_are_seeded():
    a = [space.sample(SPACE, np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(SPACE, np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert space.contains(SPACE, space.sample(SPACE, rng))


def test_log_uniform_is_uniform_in_log_space():
    rng = np.random.default_rng(0)
    x = np.log10([LogUniform(1e-4, 1.0).sample(rng) for _ in range(4000)])
    assert abs(np.mean(x < -2) - 0.5) < 0.03


@pytest.mark.parametrize("dist, expected", [
    (LogUniform(0.5, 1e-3), "empty or inverted"),
    (Uniform(1.0, 1.0), "empty or inverted"),
    (LogUniform(0.0, 1.0), "low > 0"),
    (IntUniform(3, 2), "inverted"),
    (Categorical(()), "at least one"),
])
def test_bad_ranges_are_named(dist, expected):
    found = space.problems({"x": dist})
    assert found and expected in found[0] and found[0].startswith("x:")


def test_learning_rate_must_be_positive():
    assert any("learning rate must be positive" in p
               for p in space.problems({"lr": Uniform(-0.1, 0.1)}))


def test_override_keeps_the_kind_and_names_unknowns():
    out, found = space.override(SPACE, {"lr": [1e-4, 1.0], "nope": [0, 1]})
    assert out["lr"] == LogUniform(1e-4, 1.0)
    assert found == ["space: unknown hyperparameter 'nope'; valid: lr, wd, width, act"]
    _, found = space.override(SPACE, {"wd": "big"})
    assert "give [low, high]" in found[0]


def test_an_online_method_that_tunes_momentum_starts_from_the_suites_momentum_range():
    """The suite's [space] momentum reaches the black-box SGD families and the online methods
    that tune momentum (their initializations), not the others."""
    from bench import suite
    from bench.experiment import plan

    values = {"methods": ["random", "oho", "hd"], "space": {"momentum": [0.5, 0.9]},
              "options": {"oho": {"tune": ["lr", "wd", "momentum"]}}}
    spaces = {e.method: e.space for e in plan(suite.build(values, need_data=False))}
    assert (spaces["oho"]["momentum"].low, spaces["oho"]["momentum"].high) == (0.5, 0.9)
    assert "momentum" in spaces["random"] and "momentum" not in spaces["hd"]


@pytest.mark.parametrize("momentum, options, expected", [
    ([0.5, 0.9], {"oho": {"tune": ["lr", "wd", "momentum"]}}, None),
    ([0.5, 1.5], {"oho": {"tune": ["lr", "wd", "momentum"]}}, "momentum must lie in [0, 1)"),
    ([0.5, 0.9], {}, "space: momentum is drawn by the black-box SGD families"),
])
def test_an_online_only_suite_may_name_the_momentum_its_methods_tune(momentum, options,
                                                                     expected):
    values = {"methods": ["oho"], "space": {"momentum": momentum}, "options": options}
    if expected is None:
        suite.build(values, need_data=False)
        return
    with pytest.raises(ConfigError, match=re.escape(expected)):
        suite.build(values, need_data=False)
