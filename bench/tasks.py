"""Tasks: a named dataset with train / validation / test splits, a model factory and a loss.

Validation is always carved from the training data. The test split of a built-in task does not
depend on the seed, so test losses from different seeds are comparable.
Other packages add tasks through the entry-point group `ohobench.tasks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bench import datasets, registry
from bench.datasets import DataSource
from bench.errors import ConfigError
from bench.space import LogUniform, SearchSpace, Uniform
from bench.vocabulary import ONLINE

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
class DataShape:
    """What a task's data looks like, for a cost estimate when its files are not here."""

    example: tuple[int, ...]  # one input
    classes: int
    sizes: tuple[int, int, int]  # training, validation and test examples


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable[..., Splits]  # (data seed) or (data seed, DataSource) -> CPU tensors
    make_model: Callable[..., nn.Module]  # keyword arguments: model_hparams
    loss: Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> mean loss
    classification: bool
    space: SearchSpace  # default ranges of lr, wd, ...
    batch_size: int = 64
    epochs: int = 20
    # Known best hyperparameters for a data seed, where they have a closed form.
    optimum: Callable[[Splits], dict[str, float]] | None = field(default=None, compare=False)
    # Tasks that read files set this: it names what is missing under a DataSource in one line
    # (None: all there), and their `load` takes (seed, DataSource). Without it, `load(seed)`.
    missing_data: Callable[[DataSource], str | None] | None = field(default=None, compare=False)
    # Applied by the harness to every training batch on the device, with a generator seeded
    # from the trial seed; never to validation or test data.
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = field(default=None,
                                                                         compare=False)
    amp: bool = False  # bf16 autocast is safe here (suite key `amp`, black-box methods only)
    shape: DataShape | None = field(default=None, compare=False)  # file tasks: for estimates
    # Dimensions a suite's [space] may add, with its own choices or range (e.g. architecture
    # choices); a suite that leaves one out leaves it to make_model's default.
    optional_space: SearchSpace = field(default_factory=dict, compare=False)
    # Hyperparameters make_model takes as keyword arguments (from space or optional_space):
    # a trial passes those it has.
    model_hparams: tuple[str, ...] = ()

    def build_model(self, hparams: Mapping[str, Any] | None = None) -> nn.Module:
        """A fresh model, given the trial's values of this task's model hyperparameters."""
        given = hparams or {}
        return self.make_model(**{k: given[k] for k in self.model_hparams if k in given})

    def load_splits(self, seed: int, data: DataSource | None = None) -> Splits:
        """The splits for a data seed; file-reading tasks get `data` (default: resolved from
        $OHOBENCH_DATA or ./data) and fail with one line when their files are missing."""
        if self.missing_data is None:
            return self.load(seed)
        data = data or DataSource.resolve()
        if not data.download and (problem := self.missing_data(data)):
            raise ConfigError(f"{self.name}: {problem}")
        return self.load(seed, data)


def split_indices(n: int, n_test: int, n_val: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices of `n` examples: the test indices are the same for
    every seed (TEST_SPLIT_SEED); validation is drawn from the rest with `seed`."""
    order = np.random.default_rng(TEST_SPLIT_SEED).permutation(n)
    test, rest = order[:n_test], order[n_test:]
    rest = np.random.default_rng(seed).permutation(rest)
    return rest[n_val:], rest[:n_val], test


_split = split_indices  # its earlier, private name


# --- digits: scikit-learn's bundled 8x8 digits, nothing to download --------------------------

def load_digits(seed: int) -> Splits:
    # scikit-learn (~1.5 s): only the digits task reads its data from it
    from sklearn.datasets import load_digits as sk_digits

    x, y = sk_digits(return_X_y=True)
    x = torch.as_tensor(x / 16.0, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    train, val, test = split_indices(len(x), n_test=360, n_val=288, seed=seed)
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test])


MLP_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(sizes: tuple[int, ...], activation: str = "relu") -> nn.Sequential:
    """Linear layers of these sizes, with `activation` (a name in MLP_ACTIVATIONS) between."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(MLP_ACTIVATIONS[activation]())
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
    # scipy.optimize (~0.3 s): only the ridge task's optimum needs it
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

# --- image tasks read from files (bench/datasets.py): the OHO paper's MNIST and CIFAR-10 -----

# The paper gives no numeric ranges for its baselines' lr and wd: these are the digits ranges.
IMAGE_SPACE: SearchSpace = {"lr": LogUniform(1e-3, 0.5), "wd": Uniform(0.0, 1e-3)}
MNIST_VAL, CIFAR_VAL = 10_000, 5_000  # validation images carved from the official training set


def image_splits(name: str, seed: int, data: DataSource, n_val: int, flatten: bool = False,
                 verify: bool = True) -> Splits:
    """Official training set minus `n_val` validation images drawn with `seed`; the official
    test set as the test split. Normalized per channel; flattened for MLPs."""
    s = datasets.SETS[name]
    x, y, x_test, y_test = datasets.load_raw(name, data, verify)
    if not 0 < n_val < len(x):
        raise ConfigError(f"{name}: {n_val} validation images requested of {len(x)} training "
                          f"images in {s.directory(data.root)}")
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(x)))
    val, train = order[:n_val], order[n_val:]

    def norm(images: Tensor) -> Tensor:
        out = datasets.normalize(images, s)
        return out.flatten(1) if flatten else out

    return Splits(norm(x[train]), y[train], norm(x[val]), y[val], norm(x_test), y_test)


def cnn4(in_channels: int = 1, width: int = 128, classes: int = 10) -> nn.Sequential:
    """Four 3x3 conv layers of `width` kernels (the 2nd and 4th with stride 2), ReLU, global
    average pooling, a linear classifier."""
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.Conv2d(in_channels if i == 0 else width, width, 3, stride=1 + i % 2,
                             padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))


def resnet18_cifar(classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 for 32x32 inputs: 3x3 stride-1 first conv, no max-pool."""
    # torchvision (~2 s on top of torch): only this task's model needs it
    from torchvision.models import resnet18

    model = resnet18(num_classes=classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


IMAGE_SHAPES = {"MNIST": ((1, 28, 28), 60_000, 10_000), "FashionMNIST": ((1, 28, 28), 60_000,
                                                                         10_000),
                "CIFAR10": ((3, 32, 32), 50_000, 10_000)}  # image, official train and test


def image_task(name: str, dataset: str, description: str, make_model: Callable[[], nn.Module],
               n_val: int, flatten: bool, epochs: int, **extra) -> Task:
    folder = datasets.SETS[dataset].folder
    image, n_train, n_test = IMAGE_SHAPES[dataset]
    example = (math.prod(image),) if flatten else image
    return Task(
        name=name, description=f"{description}; files in DATA_DIR/{folder}/",
        load=lambda seed, data: image_splits(dataset, seed, data, n_val, flatten),
        make_model=make_model, loss=F.cross_entropy, classification=True, space=IMAGE_SPACE,
        batch_size=100, epochs=epochs,
        missing_data=lambda data: datasets.missing_message(dataset, data),
        shape=DataShape(example, 10, (n_train - n_val, n_val, n_test)), **extra)


MNIST_MLP = image_task("mnist-mlp", "MNIST", "MNIST (50k/10k/10k test), MLP 784-128-128-128-10",
                       lambda: mlp((784, 128, 128, 128, 10)), MNIST_VAL, True, 100)
MNIST_CNN = image_task("mnist-cnn", "MNIST", "MNIST (50k/10k/10k test), CNN of 4 conv layers of "
                       "128 kernels + linear", cnn4, MNIST_VAL, False, 100, amp=True)
FASHION_MLP = image_task("fashion-mnist-mlp", "FashionMNIST", "Fashion-MNIST (50k/10k/10k test), "
                         "MLP 784-128-128-128-10", lambda: mlp((784, 128, 128, 128, 10)),
                         MNIST_VAL, True, 100)
_CIFAR = datasets.SETS["CIFAR10"]
CIFAR_RESNET = image_task(
    "cifar10-resnet18", "CIFAR10", "CIFAR-10 (45k/5k/10k test), ResNet-18 for 32x32, random "
    "crop (pad 4) + flip on the device", resnet18_cifar, CIFAR_VAL, False, 300, amp=True,
    augment=datasets.crop_flip(4, tuple(-m / s for m, s in zip(_CIFAR.mean, _CIFAR.std,
                                                                   strict=True))))

BUILTIN = {t.name: t for t in (DIGITS, RIDGE, MNIST_MLP, MNIST_CNN, FASHION_MLP, CIFAR_RESNET)}


def fetch(names: list[str] | tuple[str, ...], data: DataSource,
          progress: Callable[[str], None] = print) -> None:
    """Download (torchvision) and decode the files of the file-reading tasks among `names`
    whose files are missing under `data.root`."""
    for name in names:
        task = get(name)
        if task.missing_data is not None and task.missing_data(data):
            progress(f"ohobench: downloading the data of {name} into {data.root}")
            try:
                task.load_splits(0, data)
            except ConfigError:
                raise
            except Exception as exc:  # torchvision: no network, a mirror down, a bad checksum
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConfigError(f"{name}: downloading its data into {data.root} failed: "
                                  f"{first}") from exc


def amp_problems(amp: bool, tasks: list[Task], kinds: dict, device: str | None = None
                 ) -> list[str]:
    """Mixed precision (bf16 autocast) only for black-box methods, on tasks that allow it, on
    CUDA. `kinds`: method name -> MethodKind; `device`: the device type trials will use (None:
    not known here)."""
    if not amp:
        return []
    online = [m for m, k in kinds.items() if k.value == ONLINE]
    unsafe = [t.name for t in tasks if not t.amp]
    found = []
    if device is not None and device != "cuda":
        found.append(f"amp: bf16 autocast is for CUDA devices (on a CPU it is many times slower, "
                     f"e.g. 20x for ResNet-18), and these trials would run on {device}; drop "
                     "--amp or use --device cuda on a machine with a GPU")
    if online:
        found.append(f"amp: mixed precision is for black-box methods only (online methods "
                     f"differentiate through training steps); drop --amp or {', '.join(online)}")
    if unsafe:
        allowed = ", ".join(sorted(n for n, t in all_tasks().items() if t.amp))
        found.append(f"amp: not enabled for task {', '.join(unsafe)}; tasks with amp: {allowed}")
    return found


def all_tasks() -> dict[str, Task]:
    return registry.load("ohobench.tasks", BUILTIN, Task)


def get(name: str) -> Task:
    return registry.lookup(all_tasks(), name, "task")
