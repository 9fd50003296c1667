import dataclasses

import numpy as np
import pytest
import torch

from bench import harness, suite, tasks
from bench.errors import ConfigError
from bench.experiment import plan
from bench.space import Categorical, IntUniform
from bench.testing import TaskConformance
from bench.trial import run_trial


@pytest.mark.parametrize("name", ["digits", "synthetic-ridge"])
def test_splits_are_deterministic_given_a_seed(name):
    task = tasks.get(name)
    a, b, c = task.load(0), task.load(0), task.load(1)
    for x, y in zip(a.tensors(), b.tensors(), strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.x_val, c.x_val)  # validation is drawn with the seed
    assert torch.equal(a.x_test, c.x_test)  # the test split never moves


def test_validation_is_carved_from_training_data_never_test():
    train, val, test = tasks.split_indices(1000, n_test=200, n_val=100, seed=5)
    assert len(train) + len(val) + len(test) == 1000
    assert not set(val) & set(test) and not set(train) & set(test) and not set(train) & set(val)
    _, val2, test2 = tasks.split_indices(1000, n_test=200, n_val=100, seed=6)
    assert set(test2) == set(test) and set(val2) != set(val)


def test_digits_shapes():
    s = tasks.get("digits").load(0)
    assert s.x_train.shape == (1149, 64) and len(s.x_val) == 288 and len(s.x_test) == 360
    assert float(s.x_train.max()) <= 1.0 and s.y_train.dtype == torch.long


def test_ridge_optimum_minimizes_validation_loss():
    splits = tasks.get("synthetic-ridge").load(0)
    wd = tasks.ridge_optimum(splits)["wd"]
    best = tasks.ridge_val_loss(splits, wd)
    for other in (wd / 2, wd * 2, 1e-6, 10.0):
        assert tasks.ridge_val_loss(splits, other) > best
    assert 1e-3 < wd < 10  # interior, inside the task's default range


def test_sgd_on_ridge_converges_to_the_closed_form():
    """The harness' weight-decay convention matches the closed form the optimum uses."""
    wd = 0.3
    records = run_trial({"task": "synthetic-ridge", "method": "random",
                         "hparams": {"lr": 0.2, "wd": wd}, "seed": 0, "epochs": 400,
                         "batch_size": 40, "dtype": "float64", "device": "cpu"})
    splits = tasks.get("synthetic-ridge").load(0)
    assert records[-1]["val_loss"] == pytest.approx(tasks.ridge_val_loss(splits, wd), rel=1e-6)


def test_unknown_task_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown task 'mnist'; valid: cifar10-resnet18, digits, "
                       "fashion-mnist-mlp, mnist-cnn, mnist-mlp, synthetic-ridge"):
        tasks.get("mnist")


def test_default_spaces_are_valid():
    from bench import space

    for task in tasks.all_tasks().values():
        assert space.problems(task.space) == []
        assert np.isfinite(list(space.sample(task.space, np.random.default_rng(0)).values())).all()


# --- model hyperparameters and optional dimensions --------------------------------------------

ARCH = dataclasses.replace(
    tasks.DIGITS, name="digits-arch", description="digits, MLP of searchable width and activation",
    make_model=lambda activation="relu", width=64: tasks.mlp((64, width, 10), activation),
    optional_space={"activation": Categorical(("relu", "tanh")), "width": IntUniform(8, 64)},
    model_hparams=("activation", "width"))


@pytest.fixture
def arch_task(monkeypatch):
    monkeypatch.setitem(tasks.BUILTIN, ARCH.name, ARCH)
    return ARCH


def test_the_model_factory_gets_the_trials_model_hyperparameters():
    model = harness.make_model(ARCH, 0, torch.device("cpu"), torch.float32,
                               {"lr": 0.1, "activation": "tanh", "width": 8})
    assert isinstance(model[1], torch.nn.Tanh) and model[0].out_features == 8
    default = harness.make_model(ARCH, 0, torch.device("cpu"), torch.float32, {"lr": 0.1})
    assert isinstance(default[1], torch.nn.ReLU) and default[0].out_features == 64


def test_a_suite_adds_an_optional_dimension_for_online_and_black_box_methods(arch_task):
    chosen = suite.build({"tasks": [ARCH.name], "methods": ["random", "hd"], "trials": 2,
                          "space": {"activation": ["tanh"]}}, need_data=False)
    assert chosen.space_for(ARCH.name)["activation"] == Categorical(("tanh",))
    assert "width" not in chosen.space_for(ARCH.name)  # not named: the factory's default
    for exp in plan(chosen):  # online initializations draw it too: the model needs it
        assert exp.search().suggest()["activation"] == "tanh"
    for method in ("random", "hd"):
        records = run_trial({"task": ARCH.name, "method": method, "seed": 0, "epochs": 1,
                             "hparams": {"lr": 0.1, "wd": 0.0, "activation": "tanh"},
                             "device": "cpu"})
        assert records[-1]["hp_activation"] == "tanh" and "hp_width" not in records[-1]


@pytest.mark.parametrize("space, message", [
    ({"activation": ["gelu", "tanh"]},
     "space.activation: 'gelu' not among the declared choices; valid: 'relu', 'tanh'"),
    ({"activation": "tanh"}, "space.activation: give a list of choices, got 'tanh'"),
    ({"depth": [1, 3]}, "space: unknown hyperparameter 'depth'; valid: activation, lr, wd, width"),
])
def test_bad_optional_dimensions_are_named_in_one_line(arch_task, space, message):
    with pytest.raises(ConfigError) as err:
        suite.build({"tasks": [ARCH.name], "methods": ["hd"], "space": space}, need_data=False)
    assert err.value.problems == [message]


class TestArchTask(TaskConformance):
    task = ARCH.name

    @pytest.fixture(autouse=True)
    def registered(self, arch_task):
        pass


def test_progress_lines_show_a_categorical_choice_as_it_is():
    from bench.ray_adapter import hparam_text

    assert [hparam_text(v) for v in (0.0123456, 12, "tanh", True)] == [
        "0.0123", "12", "tanh", "True"]
