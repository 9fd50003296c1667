"""MNIST MLP epoch time: the harness against a bare PyTorch loop, and throughput with N trials
at once on one machine.

Run from the repository root:

    python benchmarks/mnist_epoch.py --threads 1

1. Ratio. The mnist-mlp task (MLP 784-128-128-128-10, batch 100, 50k training images on the
   device) trains one process two ways, from the same initialization and batch order: through
   `bench.harness.train` with the `fixed` optimizer family (methods/optimizers.py FamilyRule:
   torch.optim.SGD behind the harness' functional model), and with a bare loop (module,
   zero_grad, backward, plain `torch.optim.SGD`). The two are interleaved over rounds
   (alternating which goes first) and the medians of per-epoch training time are compared.
   Evaluation is outside the timed region in both. Target: harness / bare <= 1.10.
2. Throughput. N separate processes (N = 1, 2 on CPU; 1, 2, 4 on GPU) each train one mnist-mlp
   trial through the harness at once, each with --threads torch threads; printed: total
   training samples per second, as the sum of each trial's samples / training seconds, and as
   all samples / wall-clock from the common start to the last finish (evaluation included).

Data: --data-dir (torchvision's layout, DIR/MNIST/raw/), by default a temporary root linking
../shared/data/mnist when that holds the MNIST files, else $OHOBENCH_DATA or ./data; without
files it falls back to random data of MNIST's shape and says so. A measurement, not a test: it
exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import torch
from harness_overhead import LR, SEED, WD  # benchmarks/, on sys.path when run as a script
from harness_overhead import bare_epochs as plain_loop_epochs

from bench import harness, tasks
from bench.datasets import DataSource
from bench.errors import ConfigError
from methods import optimizers

TARGET = 1.10
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def data_root(arg: str | None, tmp: str) -> str | None:
    if arg or not SHARED_MNIST.is_dir():
        return arg
    raw = Path(tmp) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in SHARED_MNIST.glob("*-ubyte*"):
        (raw / f.name).symlink_to(f)
    return tmp


def load(root: str | None) -> tuple[tasks.Splits, str]:
    task = tasks.get("mnist-mlp")
    source = DataSource.resolve(root)
    try:
        return task.load_splits(SEED, source), f"MNIST from {source.root}"
    except ConfigError as exc:
        print(f"note: {exc}\nnote: timing on random data of MNIST's shape instead")
    g = torch.Generator().manual_seed(SEED)
    x = lambda n: torch.randn(n, 784, generator=g)  # noqa: E731
    y = lambda n: torch.randint(0, 10, (n,), generator=g)  # noqa: E731
    return tasks.Splits(x(50_000), y(50_000), x(10_000), y(10_000), x(10_000), y(10_000)), \
        "random N(0, 1) data of MNIST's shape"


def harness_epochs(splits, epochs: int, device: torch.device, batch_size: int) -> list[float]:
    task = tasks.get("mnist-mlp")
    spec = harness.TrainSpec(epochs=epochs, batch_size=batch_size, seed=SEED, device=device)
    rule = optimizers.FamilyRule(optimizers.get("fixed"), epochs)
    records = harness.train(task, rule, {"lr": LR, "wd": WD}, splits, spec)
    return [r["train_seconds"] for r in records]


def bare_epochs(splits, epochs: int, device: torch.device, batch_size: int) -> list[float]:
    return plain_loop_epochs(tasks.get("mnist-mlp"), splits, epochs, device, batch_size)


def worker(path: str, device: str, threads: int, epochs: int, batch_size: int, barrier, out):
    torch.set_num_threads(threads)
    splits = torch.load(path, weights_only=False)
    dev = torch.device(device)
    splits = splits.to(dev)
    harness_epochs(splits, 1, dev, batch_size)  # warm-up (CUDA context, allocator)
    barrier.wait()
    start = time.perf_counter()
    seconds = harness_epochs(splits, epochs, dev, batch_size)
    out.put((start, time.perf_counter(), sum(seconds), epochs * len(splits.x_train)))


def throughput(splits, n: int, device: torch.device, threads: int, epochs: int,
               batch_size: int, tmp: str) -> dict:
    path = str(Path(tmp) / "splits.pt")
    if not Path(path).exists():
        torch.save(splits.to("cpu"), path)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(path, str(device), threads, epochs, batch_size,
                                              barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    samples = sum(r[3] for r in results)
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    return {"trials": n, "train_samples_per_s": sum(r[3] / r[2] for r in results),
            "wall_samples_per_s": samples / wall}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads per process")
    ap.add_argument("--data-dir", help="root holding MNIST/raw/ (default: the shared files)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per way per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--concurrent", help="trial counts, e.g. 1,2 (default: 1,2 on CPU; "
                    "1,2,4 on GPU); 0 skips")
    ap.add_argument("--concurrent-epochs", type=int, default=2)
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    counts = ([int(c) for c in args.concurrent.split(",") if int(c) > 0]
              if args.concurrent else [1, 2, 4] if device.type == "cuda" else [1, 2])
    with tempfile.TemporaryDirectory(prefix="ohobench-bench-") as tmp:
        splits, what = load(data_root(args.data_dir, tmp))
        on_device = splits.to(device)
        ways = {"harness": harness_epochs, "bare": bare_epochs}
        for way in ways.values():  # warm-up
            way(on_device, 1, device, args.batch_size)
        times: dict[str, list[float]] = {k: [] for k in ways}
        for r in range(args.rounds):
            for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
                times[name] += ways[name](on_device, args.epochs, device, args.batch_size)
        del on_device
        flows = [throughput(splits, n, device, args.threads, args.concurrent_epochs,
                            args.batch_size, tmp) for n in counts]

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["harness"] / med["bare"]
    # each harness epoch against the bare epoch of the same round: robust to drifting load
    paired = statistics.median(h / b for h, b in zip(times["harness"], times["bare"],
                                                     strict=True))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"data: {what}\ndevice={device} ({name}) threads={args.threads} "
          f"batch_size={args.batch_size} n_train={len(splits.x_train)} epochs={args.epochs} "
          f"rounds={args.rounds}")
    print(f"{'way':<10}{'median ms/epoch':>17}{'min':>9}{'max':>9}")
    for k, v in times.items():
        print(f"{k:<10}{med[k] * 1e3:>17.1f}{min(v) * 1e3:>9.1f}{max(v) * 1e3:>9.1f}")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"ratio harness/bare = {ratio:.3f}  (target <= {TARGET:.2f}): {verdict}; "
          f"median of per-round ratios {paired:.3f}")
    print(f"concurrent trials (separate processes, {args.threads} thread(s) each, "
          f"{args.concurrent_epochs} epochs each):")
    print(f"{'trials':<8}{'train samples/s':>17}{'wall samples/s':>16}")
    for f in flows:
        print(f"{f['trials']:<8}{f['train_samples_per_s']:>17.0f}{f['wall_samples_per_s']:>16.0f}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "device_name": name, "threads": args.threads,
                       "data": what, "target": TARGET, "median_seconds": med, "ratio": ratio,
                       "paired_ratio": paired, "pass": ratio <= TARGET, "epoch_seconds": times,
                       "concurrent": flows},
                      fh, indent=2)


if __name__ == "__main__":
    main()
