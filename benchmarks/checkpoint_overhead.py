"""What does checkpointing every epoch cost, as a share of an epoch? (target: < 3%)

Run from the repository root:

    python benchmarks/checkpoint_overhead.py --epochs 5

Each method trains one mnist-mlp trial (real MNIST when ../shared/data/mnist or --data-dir has
it, else random data of its shape; batch 100, 500 steps per epoch) through `run_trial` with a
checkpoint callback that does what `bench.trial.ray_trial` and Ray Tune do after every epoch:
write the trial's state to a fresh temporary folder (bench/checkpoints.py, torch.save), then
copy it into a storage folder and delete the previous copy (Ray persists a reported checkpoint
to the run's storage and keeps the latest, `num_to_keep=1`; Ray's own bookkeeping is not
timed). The callback's time is measured around it; the epoch's is the record's training plus
evaluation seconds. Printed per method: median and range of each, the checkpoint's size and
the median share, from epoch 2 on (epoch 1 warms up). One torch thread. A measurement, not a
test: it exits 0 either way.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from mnist_epoch import data_root  # benchmarks/, on sys.path when run as a script

from bench import checkpoints
from bench.trial import run_trial

TARGET = 0.03


def measure(method: str, epochs: int, data_dir: str | None, storage: Path) -> dict:
    seconds, sizes = [], []

    def save(state: dict) -> None:
        began = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            path = checkpoints.save(Path(folder), state)
            sizes.append(path.stat().st_size)
            kept = storage / f"checkpoint_{len(seconds):06d}"
            shutil.copytree(folder, kept)
        previous = storage / f"checkpoint_{len(seconds) - 1:06d}"
        if previous.exists():
            shutil.rmtree(previous)
        seconds.append(time.perf_counter() - began)

    records = run_trial({"task": "mnist-mlp", "method": method, "seed": 0, "epochs": epochs,
                         "hparams": {"lr": 0.05, "wd": 1e-4}, "device": "cpu",
                         "data_dir": data_dir, "train_eval_size": 10_000}, checkpoint=save)
    epoch = [r["train_seconds"] + r["eval_seconds"] for r in records][1:]
    ckpt = seconds[1:]
    return {"method": method, "epoch": epoch, "checkpoint": ckpt, "bytes": sizes[-1],
            "share": statistics.median(c / e for c, e in zip(ckpt, epoch, strict=True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--methods", default="random,oho,oho-layerwise,t1t2")
    ap.add_argument("--data-dir", default=None, help="root holding MNIST/raw/")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'method':<15} {'epoch s (median, range)':>26} {'checkpoint ms (median, range)':>31}"
          f" {'size MB':>8} {'share':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = data_root(args.data_dir, tmp)
        for method in args.methods.split(","):
            storage = Path(tmp) / f"storage-{method}"
            storage.mkdir()
            m = measure(method, args.epochs, data_dir, storage)
            e, c = m["epoch"], [s * 1000 for s in m["checkpoint"]]
            verdict = "PASS" if m["share"] < TARGET else "FAIL"
            print(f"{method:<15} {statistics.median(e):>10.3f} [{min(e):.3f}, {max(e):.3f}]"
                  f" {statistics.median(c):>14.1f} [{min(c):.1f}, {max(c):.1f}]"
                  f" {m['bytes'] / 1e6:>8.2f} {m['share']:>6.2%}  (target < {TARGET:.0%}) "
                  f"{verdict}", flush=True)


if __name__ == "__main__":
    main()
