"""Checks every task must pass. A test class sets `task` (a registered name) and inherits them:

    class TestMyTask(TaskConformance):
        task = "my-task"
"""

from __future__ import annotations

import torch

from bench import tasks
from bench.space import Categorical


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


class TaskConformance:
    task: str
    # The training and validation examples together are the same for every seed (a fixed
    # dataset); a task that generates its data per seed sets False.
    fixed_pool: bool = True

    def splits(self, seed: int) -> tasks.Splits:
        return tasks.get(self.task).load_splits(seed)

    def test_splits_are_deterministic_per_seed(self):
        a, b = self.splits(0), self.splits(0)
        assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors(), strict=True))

    def test_splits_are_disjoint(self):
        s = self.splits(0)
        train, val, test = rows(s.x_train), rows(s.x_val), rows(s.x_test)
        assert not train & test and not val & test and not train & val

    def test_the_test_split_does_not_depend_on_the_seed(self):
        a, b = self.splits(0), self.splits(1)
        assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)

    def test_validation_is_carved_from_the_training_data(self):
        """Another seed moves examples between training and validation, never from test."""
        if not self.fixed_pool:
            import pytest  # here only: importing the kit needs no pytest
            pytest.skip(f"{self.task} sets fixed_pool = False: its data is generated per seed, so "
                        "training and validation come from no common pool")
        a, b = self.splits(0), self.splits(1)
        pool_a = rows(a.x_train) | rows(a.x_val)
        assert pool_a == rows(b.x_train) | rows(b.x_val)
        assert rows(a.x_val) != rows(b.x_val)

    def test_every_model_hyperparameter_is_declared_and_builds_a_working_model(self):
        """Each name in model_hparams is a dimension of space or optional_space, and the model
        factory takes each of its choices (both ends of a range)."""
        task, s = tasks.get(self.task), self.splits(0)
        dims = {**task.optional_space, **task.space}
        assert set(task.model_hparams) <= set(dims), (
            f"model_hparams {sorted(set(task.model_hparams) - set(dims))} are in neither "
            "space nor optional_space")
        for name in task.model_hparams:
            dist = dims[name]
            values = dist.choices if isinstance(dist, Categorical) else (dist.low, dist.high)
            for value in values:
                assert task.build_model({name: value})(s.x_train[:5]).shape[0] == 5

    def test_the_model_maps_a_batch_to_one_output_per_example(self):
        task, s = tasks.get(self.task), self.splits(0)
        out = task.make_model()(s.x_train[:5])
        assert out.shape[0] == 5
        if task.classification:
            assert out.shape[1] > int(s.y_train.max())
        loss = task.loss(out, s.y_train[:5])
        assert loss.ndim == 0 and torch.isfinite(loss)
