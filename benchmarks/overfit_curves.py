"""Where does fixed-lr SGD start to overfit? The curves that choose a study's epoch budget.

    python benchmarks/overfit_curves.py --task digits --trials 12 --epochs 300 \
        --figure docs/figures/digits-overfit.png

Random fixed-lr SGD trials (the task's box, the `fixed` family), drawn as `ohobench run` draws a
random search's, on a development seed (bench/seeds.py), trained for --epochs. Printed per
trial: lr, wd, the epoch of its lowest validation loss and that loss, and the validation and
test loss at the end; then the median epoch of the lowest validation loss. A budget past that
epoch is one at which fixed-lr SGD overfits (its final test loss is above its best), as
mnist-mlp does at 100 epochs. A measurement: exit 0.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from bench import seeds, tasks
from bench.experiment import derive_seed
from bench.trial import run_trial
from methods import get as get_method
from methods.base import parse_options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="digits")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0, help="a development seed")
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args()
    if args.seed not in seeds.DEVELOPMENT_SEEDS:
        raise SystemExit(f"--seed {args.seed}: choose budgets on a development seed "
                         f"({sorted(seeds.DEVELOPMENT_SEEDS)})")
    space = tasks.get(args.task).space
    method = get_method("random")
    options = parse_options(method.options_type, {}, "random")[0]
    search = method.search(space, derive_seed(args.seed, args.task, "random", "fixed", 0),
                           args.trials, options)
    curves = []
    for t in range(args.trials):
        hparams = search.suggest()
        records = run_trial({"task": args.task, "method": "random", "hparams": hparams,
                             "seed": derive_seed(args.seed, args.task, "model", 0, t),
                             "epochs": args.epochs, "data_seed": args.seed, "device": "cpu"})
        val = np.array([r["val_loss"] for r in records])
        test = np.array([r["test_loss"] for r in records])
        best = int(np.nanargmin(val)) + 1 if np.isfinite(val).any() else 0
        curves.append((hparams, val, test, best))
        print(f"lr {hparams['lr']:.4g} wd {hparams['wd']:.3g}: lowest val {np.nanmin(val):.4f} "
              f"at epoch {best}; at the end val {val[-1]:.4f} test {test[-1]:.4f} "
              f"(test at the best val epoch {test[best - 1]:.4f})", flush=True)
    bests = [b for *_, b in curves if b]
    print(f"median epoch of the lowest validation loss: {statistics.median(bests):g} "
          f"(range {min(bests)}-{max(bests)}) over {len(bests)} trials")
    if args.figure:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.3), layout="constrained")
        ax = fig.subplots()
        for _, val, test, best in curves:
            line, = ax.plot(np.arange(1, len(val) + 1), val, lw=1)
            ax.plot(np.arange(1, len(test) + 1), test, lw=1, ls=":", color=line.get_color())
            if best:
                ax.plot(best, val[best - 1], "o", ms=4, color=line.get_color())
        ax.set(yscale="log", xlabel="epoch", ylabel="loss (solid: validation, dotted: test)",
               title=f"{args.task}: fixed-lr SGD, {args.trials} random draws (dot: lowest val)")
        fig.savefig(args.figure, dpi=110)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
