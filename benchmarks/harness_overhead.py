"""How much slower is training through the harness than a bare PyTorch loop?

Run from the repository root:

    python benchmarks/harness_overhead.py

It trains the task's model in one process two ways, on the same data, initialization and batch
order: through `bench.harness.train` with `methods.sgd.SGD`, and with a plain
`torch.optim.SGD` loop. The two are interleaved over several rounds (alternating which goes first)
so that machine noise hits both alike, and the medians of per-epoch training time are compared.
Evaluation is outside the timed region in both. Target: harness / bare <= 1.10. This is a
measurement, not a test: it exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import bench.tasks
from bench import harness
from methods.sgd import SGD

TARGET = 1.10
LR, WD, SEED = 0.1, 1e-4, 0


def harness_epochs(task, splits, epochs: int, device: torch.device) -> list[float]:
    spec = harness.TrainSpec(epochs=epochs, batch_size=task.batch_size, seed=SEED, device=device)
    records = harness.train(task, SGD(), {"lr": LR, "wd": WD}, splits, spec)
    return [r["train_seconds"] for r in records]


def bare_epochs(task, splits, epochs: int, device: torch.device,
                batch_size: int | None = None) -> list[float]:
    """Seconds per epoch of a plain PyTorch loop: the model, torch.optim.SGD, nothing else."""
    model = harness.make_model(task, SEED, device, torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD)
    g = torch.Generator().manual_seed(SEED)  # same batch order as the harness
    x, y, n = splits.x_train, splits.y_train, len(splits.x_train)
    bs = batch_size or task.batch_size
    model.train()
    times = []
    for _ in range(epochs):
        harness.sync(device)
        start = time.perf_counter()
        order = torch.randperm(n, generator=g).to(device)
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            opt.zero_grad()
            loss = task.loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        harness.sync(device)
        times.append(time.perf_counter() - start)
    return times


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--task", default="digits")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    task = bench.tasks.get(args.task)
    splits = task.load(SEED).to(device, torch.float32)

    ways = {"harness": harness_epochs, "bare": bare_epochs}
    times: dict[str, list[float]] = {k: [] for k in ways}
    for r in range(args.rounds):
        for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
            times[name] += ways[name](task, splits, args.epochs, device)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["harness"] / med["bare"]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"task={task.name} device={device} threads={args.threads} epochs={args.epochs} "
          f"rounds={args.rounds} batch_size={task.batch_size} n_train={len(splits.x_train)}")
    print(f"{'way':<10}{'median ms/epoch':>17}{'min':>9}{'max':>9}")
    for k, v in times.items():
        print(f"{k:<10}{med[k] * 1e3:>17.2f}{min(v) * 1e3:>9.2f}{max(v) * 1e3:>9.2f}")
    print(f"ratio harness/bare = {ratio:.3f}  (target <= {TARGET:.2f}): {verdict}")

    if args.json:
        out = {"task": task.name, "device": str(device), "threads": args.threads,
               "epochs": args.epochs, "rounds": args.rounds, "target": TARGET,
               "median_seconds": med, "ratio": ratio, "pass": ratio <= TARGET,
               "epoch_seconds": times}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
