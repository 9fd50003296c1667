"""Layerwise OHO with a shared influence (the authors' QMLP) against the exact one: how close are
their hypergradients along a real MNIST run?

Run from the repository root:

    python benchmarks/shared_influence.py --steps 5000

Two `oho-layerwise` rules, `influence="exact"` (one influence vector per layer and kind) and
`influence="shared"` (one per kind), train their own copies of the mnist-mlp model from the same
initialization on the same batches. Their hyperparameters stay at the initial values (meta_lr 0,
and no jump reset), so both see the same weights at every step and differ only in the
hypergradients they compute there. Every step, per kind (lr, wd): the cosine between the two
vectors of per-layer hypergradients, and the relative gap of their sums (the sum is exact in
both: the shared influence is the exact one summed over the layers). Printed: median, 10th
percentile and minimum of the cosine over each block of steps. For the step cost of each
variant, see `python benchmarks/online_overhead.py --configs "oho,oho-layerwise,oho-layerwise
shared"`. A measurement, not a test: exit 0.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile

import torch
from mnist_epoch import data_root  # benchmarks/, on sys.path when run as a script

import methods
from bench import harness, tasks
from bench.datasets import DataSource
from methods.base import StepContext, parse_options

FROZEN = {"meta_lr": 0.0, "meta_lr_wd": 0.0, "jump_reset": 0.0}


def rule(influence: str):
    method = methods.get("oho-layerwise")
    options, problems = parse_options(method.options_type, {**FROZEN, "influence": influence},
                                      method.name)
    assert not problems, problems
    return method.update_rule(options)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return dot / norms if norms else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--block", type=int, default=500, help="steps per printed row")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        task = tasks.get("mnist-mlp")
        splits = task.load_splits(args.seed, DataSource.resolve(data_root(args.data_dir, tmp)))
    trainee = harness.Trainee(task, harness.make_model(task, args.seed, torch.device("cpu"),
                                                       torch.float32))
    init = trainee.initial_params()
    rules = {name: rule(name) for name in ("exact", "shared")}
    params = {n: {k: v.detach().clone().requires_grad_(True) for k, v in init.items()}
              for n in rules}
    states = {n: r.init(params[n], {"lr": args.lr, "wd": args.wd}) for n, r in rules.items()}
    gen = torch.Generator().manual_seed(args.seed)
    batch_size = task.batch_size
    val_batch: list = []
    ctx = StepContext(loss=trainee.loss, val_loss=trainee.val_loss,
                      val_batch=lambda: val_batch[0], train_sample=lambda: val_batch[0],
                      noisy_loss=trainee.noisy_loss, epoch=1, criterion=task.loss)
    kinds = ("lr", "wd")
    cosines: dict[str, list[float]] = {k: [] for k in kinds}
    sum_gaps: dict[str, list[float]] = {k: [] for k in kinds}
    print(f"mnist-mlp, lr {args.lr}, wd {args.wd}, {args.steps} steps, frozen hyperparameters")
    print(f"{'steps':>11} " + " ".join(f"{k + ' cos med/p10/min':>22} {k + ' sum gap':>10}"
                                        for k in kinds))
    for step in range(args.steps):
        i = torch.randint(len(splits.x_train), (batch_size,), generator=gen)
        j = torch.randint(len(splits.x_val), (batch_size,), generator=gen)
        batch, val_batch[:] = (splits.x_train[i], splits.y_train[i]), [(splits.x_val[j],
                                                                         splits.y_val[j])]
        ctx.step = step
        for n, r in rules.items():
            states[n], params[n] = r.step(states[n], params[n], batch, ctx)
        for kind in kinds:
            exact, shared = ([h for (k, _), h in zip(states[n].hypers.tuned, states[n].hypergrads,
                                                    strict=True) if k == kind] for n in rules)
            cosines[kind].append(cosine(exact, shared))
            sum_gaps[kind].append(abs(sum(shared) - sum(exact)) / (abs(sum(exact)) or 1.0))
        if (step + 1) % args.block == 0:
            row = []
            for kind in kinds:
                c = cosines[kind][-args.block:]
                p10 = statistics.quantiles(c, n=10)[0]
                row.append(f"{statistics.median(c):>8.3f}/{p10:>6.3f}/{min(c):>6.3f} "
                           f"{max(sum_gaps[kind][-args.block:]):>10.1e}")
            print(f"{step + 2 - args.block:>5}-{step + 1:<5} " + " ".join(row), flush=True)
    for kind in kinds:
        print(f"{kind}: cosine over all {args.steps} steps: median "
              f"{statistics.median(cosines[kind]):.3f}, min {min(cosines[kind]):.3f}")


if __name__ == "__main__":
    main()
