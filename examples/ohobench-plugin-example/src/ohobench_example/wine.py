"""`wine`: scikit-learn's wine data (178 wines, 13 features, 3 cultivars), nothing to download.
The test split is fixed; validation is drawn from the rest with the data seed. The MLP's
activation and width are optional dimensions: a suite searches them by naming them in its
[space], e.g. `activation = ["relu", "tanh"]`."""

from __future__ import annotations

import numpy as np
import torch
from bench.space import Categorical, IntUniform, LogUniform, Uniform
from bench.tasks import Splits, Task, mlp, split_indices
from torch.nn import functional as F


def load_wine(seed: int) -> Splits:
    from sklearn.datasets import load_wine as sklearn_wine

    x, y = sklearn_wine(return_X_y=True)
    train, val, test = split_indices(len(x), n_test=36, n_val=28, seed=seed)
    pool = np.concatenate([train, val])  # standardized on non-test data, the same every seed
    x = torch.as_tensor((x - x[pool].mean(0)) / x[pool].std(0), dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test])


def wine_mlp(activation: str = "relu", width: int = 32):
    return mlp((13, width, 3), activation)


WINE = Task(
    name="wine",
    description="scikit-learn wine (114/28/36), MLP 13-32-3 (relu), cross-entropy",
    load=load_wine,
    make_model=wine_mlp,
    loss=F.cross_entropy,
    classification=True,
    space={"lr": LogUniform(1e-3, 0.5), "wd": Uniform(0.0, 1e-3)},
    optional_space={"activation": Categorical(("relu", "tanh")), "width": IntUniform(8, 64)},
    model_hparams=("activation", "width"),  # wine_mlp's keyword arguments
    batch_size=16,
    epochs=30,
)
