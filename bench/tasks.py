"""Tasks: a named dataset with train / validation / test splits, a model factory and a loss.

Validation is always carved from the training data. The test split of a built-in task does not
depend on the seed, so test losses from different seeds are comparable.
Other packages add tasks through the entry-point group `ohobench.tasks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bench import registry
from bench.space import LogUniform, SearchSpace, Uniform

TEST_SPLIT_SEED = 20260101


@dataclass(frozen=True)
class Splits:
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Splits:
        def move(t: Tensor) -> Tensor:
            cast = dtype if dtype is not None and t.is_floating_point() else None
            return t.to(device=device, dtype=cast)
        return Splits(*(move(t) for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable[[int], Splits]  # data seed -> CPU tensors
    make_model: Callable[[], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> mean loss
    classification: bool
    space: SearchSpace  # default ranges of lr, wd, ...
    batch_size: int = 64
    epochs: int = 20
    # Known best hyperparameters for a data seed, where they have a closed form.
    optimum: Callable[[Splits], dict[str, float]] | None = field(default=None, compare=False)


def _split(n: int, n_test: int, n_val: int, seed: int) -> tuple[np.ndarray, ...]:
    """Test indices fixed for the task; validation drawn from the rest with `seed`."""
    order = np.random.default_rng(TEST_SPLIT_SEED).permutation(n)
    test, rest = order[:n_test], order[n_test:]
    rest = np.random.default_rng(seed).permutation(rest)
    return rest[n_val:], rest[:n_val], test


# --- digits: scikit-learn's bundled 8x8 digits, nothing to download --------------------------

def load_digits(seed: int) -> Splits:
    from sklearn.datasets import load_digits as sk_digits

    x, y = sk_digits(return_X_y=True)
    x = torch.as_tensor(x / 16.0, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    train, val, test = _split(len(x), n_test=360, n_val=288, seed=seed)
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test])


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


DIGITS = Task(
    name="digits",
    description="scikit-learn 8x8 digits (1149/288/360), MLP 64-64-64-10, cross-entropy",
    load=load_digits,
    make_model=lambda: mlp((64, 64, 64, 10)),
    loss=F.cross_entropy,
    classification=True,
    space={"lr": LogUniform(1e-3, 0.5), "wd": Uniform(0.0, 1e-3)},
    batch_size=32,
    epochs=20,
)


# --- synthetic-ridge: linear regression with a closed-form best L2 strength ------------------

RIDGE_DIM, RIDGE_N = 30, (40, 400, 1000)  # features; train, validation, test samples
RIDGE_NOISE = 1.0


def load_ridge(seed: int) -> Splits:
    """y = X w + noise. The true weights and the test set are fixed; train/val vary with seed."""
    fixed = np.random.default_rng(TEST_SPLIT_SEED)
    w_true = fixed.normal(size=RIDGE_DIM) / math.sqrt(RIDGE_DIM) * 2
    x_test = fixed.normal(size=(RIDGE_N[2], RIDGE_DIM))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(RIDGE_N[0] + RIDGE_N[1], RIDGE_DIM))

    def targets(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
        return x @ w_true + RIDGE_NOISE * r.normal(size=len(x))

    y, y_test = targets(x, rng), targets(x_test, fixed)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    n = RIDGE_N[0]
    return Splits(t(x[:n]), t(y[:n]), t(x[n:]), t(y[n:]), t(x_test), t(y_test))


def ridge_weights(x: np.ndarray, y: np.ndarray, wd: float) -> np.ndarray:
    """Minimizer of mean((x w - y)^2) + wd/2 |w|^2, the fixed point of SGD with weight decay."""
    n, d = x.shape
    return np.linalg.solve(2 * x.T @ x / n + wd * np.eye(d), 2 * x.T @ y / n)


def ridge_val_loss(splits: Splits, wd: float) -> float:
    x, y = splits.x_train.double().numpy(), splits.y_train.double().numpy()
    w = ridge_weights(x, y, wd)
    xv, yv = splits.x_val.double().numpy(), splits.y_val.double().numpy()
    return float(np.mean((xv @ w - yv) ** 2))


def ridge_optimum(splits: Splits) -> dict[str, float]:
    """The weight decay minimizing validation loss of the closed-form ridge solution."""
    from scipy.optimize import minimize_scalar

    grid = np.linspace(-6, 3, 91)
    best = grid[np.argmin([ridge_val_loss(splits, 10.0**g) for g in grid])]
    res = minimize_scalar(lambda g: ridge_val_loss(splits, 10.0**g),
                          bounds=(best - 0.1, best + 0.1), method="bounded",
                          options={"xatol": 1e-8})
    return {"wd": float(10.0**res.x)}


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return F.mse_loss(outputs.squeeze(-1), targets)


RIDGE = Task(
    name="synthetic-ridge",
    description=f"generated linear regression, {RIDGE_DIM} features, {RIDGE_N[0]} training "
                "samples; the best L2 strength on validation is known in closed form",
    load=load_ridge,
    make_model=lambda: nn.Linear(RIDGE_DIM, 1, bias=False),
    loss=mse,
    classification=False,
    space={"lr": LogUniform(1e-3, 0.1), "wd": LogUniform(1e-4, 10.0)},
    batch_size=10,
    epochs=50,
    optimum=ridge_optimum,
)

BUILTIN = {t.name: t for t in (DIGITS, RIDGE)}


def all_tasks() -> dict[str, Task]:
    return registry.load("ohobench.tasks", BUILTIN, Task)


def get(name: str) -> Task:
    return registry.lookup(all_tasks(), name, "task")
