"""Online methods at long horizons: do they stay stable? (issue: OHO blows up at 100 epochs)

Run from the repository root, e.g. the cheap reproduction and the MNIST acceptance run:

    python benchmarks/online_stability.py --task digits --method oho --inits 4 --epochs 300
    python benchmarks/online_stability.py --task mnist-mlp --method oho --inits 10 --epochs 100 \
        --out /tmp/mnist-oho.jsonl

Each initialization is one trial through `bench.trial.run_trial`, drawn exactly as `ohobench
run` draws an online repetition (same seeds, same ranges), so repetition r here is repetition r
there. Trials run in --workers processes with one torch thread each. Every finished trial is
appended to --out (JSON lines, its per-epoch records included), and a rerun with the same --out
skips the trials already there: an interrupted study resumes.

`--method random` trains each initialization with its hyperparameters fixed (the `fixed` SGD
family), at the same draws and model seeds as the online methods: a random search of --inits
trials, paired with them; its choice (best final validation loss) is printed too.

Printed per trial: final and best-validation-epoch test loss, the status flags (diverged,
collapsed, lr at its floor), the largest wd and influence norm seen, and the safeguards'
counts. Then the median and IQR of the final test loss. A measurement, not a test: exit 0.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

from mnist_epoch import data_root  # benchmarks/, on sys.path when run as a script

BLACK_BOX = ("random",)  # --method random: fixed hyperparameters at the online methods' draws
COUNTERS = ("influence_resets", "jump_resets", "skipped_hypersteps", "clipped_hypersteps")


def trial_config(task: str, method: str, rep: int, epochs: int, options: dict,
                 suite_seed: int, data_dir: str | None, device: str = "cpu") -> dict:
    """The config `ohobench run` gives repetition `rep` of an online method."""
    import methods
    from bench import tasks
    from bench.experiment import derive_seed
    from methods.base import parse_options

    m, space = methods.get(method), tasks.get(task).space
    options = m.resolve(options, space)
    opts, problems = parse_options(m.options_type, options, method)
    if problems:
        raise SystemExit("; ".join(problems))
    search = m.search(space, derive_seed(suite_seed, task, "init", rep), 1, opts)
    return {"task": task, "method": method, "hparams": search.suggest(),
            "seed": derive_seed(suite_seed, task, "model", rep, 0), "epochs": epochs,
            "data_seed": suite_seed, "device": device, "options": options, "repetition": rep,
            "data_dir": data_dir}


def same_options(method: str, a: dict, b: dict) -> bool:
    """Equal once parsed: an option given at its default equals the option left out."""
    import methods
    from methods.base import parse_options

    kind = methods.get(method).options_type
    return parse_options(kind, a, method)[0] == parse_options(kind, b, method)[0]


def run_one(config: dict) -> dict:
    import torch

    from bench.trial import run_trial

    torch.set_num_threads(1)
    began = time.time()
    records = run_trial(config)
    return {"repetition": config["repetition"], "hparams": config["hparams"],
            "options": config["options"], "seconds": time.time() - began, "records": records}


def summary(run: dict) -> dict:
    recs = run["records"]
    last = recs[-1]
    best = min((r for r in recs if math.isfinite(r["val_loss"])), key=lambda r: r["val_loss"],
               default=last)
    wds = [v for r in recs for k, v in r.items() if k.startswith("hp_wd")]
    lrs = [v for r in recs for k, v in r.items() if k.startswith("hp_lr")]
    infl = [v for r in recs for k, v in r.items() if k.startswith("influence_") and
            k != "influence_resets" and math.isfinite(v)]
    return {"rep": run["repetition"], "lr0": run["hparams"]["lr"], "wd0": run["hparams"]["wd"],
            "epochs": last["epoch"], "final_val": last["val_loss"], "final_test": last["test_loss"],
            "best_val_epoch": best["epoch"], "test_at_best_val": best["test_loss"],
            "diverged": last["diverged"], "collapsed": last.get("collapsed", False),
            "lr_floored": last.get("lr_floored", False),
            "lr_end": min((v for k, v in last.items() if k.startswith("hp_lr")), default=math.nan),
            "lr_max_seen": max(lrs, default=math.nan), "wd_max_seen": max(wds, default=math.nan),
            "influence_max": max(infl, default=math.nan),
            **{c: last.get(c, 0) for c in COUNTERS},
            "epoch_seconds_max": max(r["train_seconds"] for r in recs),
            "seconds": run["seconds"]}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="digits")
    ap.add_argument("--method", default="oho")
    ap.add_argument("--inits", type=int, default=4)
    ap.add_argument("--reps", type=int, nargs="*", default=None,
                    help="run only these repetitions (of 0..inits-1)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a method option (JSON value), e.g. --option wd_max=1e-3")
    ap.add_argument("--seed", type=int, default=0, help="the suite seed")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=None, help="JSON lines; reruns skip done trials")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where the trials train (cuda: --workers processes share the GPU)")
    ap.add_argument("--report", action="store_true", help="print what --out holds; run nothing")
    ap.add_argument("--compare", type=Path, nargs="+", metavar="FILE",
                    help="one table (and --figure) of several --out files at --task's default "
                         "options, each named by its file (TASK-METHOD.jsonl); runs nothing")
    ap.add_argument("--figure", type=Path, help="with --compare: a PNG of the final test losses")
    ap.add_argument("--data-dir", default=None, help="default: ../shared/data/mnist linked in "
                    "torchvision's layout when there, else $OHOBENCH_DATA or ./data")
    args = ap.parse_args()
    if args.compare:
        return compare(args.task, args.compare, args.seed, args.figure)
    with tempfile.TemporaryDirectory() as tmp:
        run(args, data_root(args.data_dir, tmp))


def read_runs(path: Path, task: str, method: str, options: dict, seed: int) -> list[dict]:
    """The finished trials in `path` run with `options` (a line cut short by a kill is not)."""
    default = trial_config(task, method, 0, 1, options, seed, None)["options"]
    done = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [d for d in done if same_options(method, d["options"], default)]


def compare(task: str, paths: list[Path], seed: int, figure: Path | None) -> None:
    """Each file's runs at the method's default options: one row per method, then a figure."""
    rows = []
    for path in paths:
        method = path.stem.split("-", 1)[1]  # mnist-oho-layerwise.jsonl -> oho-layerwise
        for run in read_runs(path, task, method, {}, seed):
            label = "SGD, fixed" if method in BLACK_BOX else method  # at the same draws
            rows.append({"method": label, **summary(run)})
    print(f"{'method':<14} {'runs':>4} {'median':>7} {'IQR':>17} {'range':>15} {'div':>3} "
          f"{'col':>3} {'floor':>5} {'final lr (median)':>17}")
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        finals = sorted(r["final_test"] for r in mine if math.isfinite(r["final_test"]))
        q = statistics.quantiles(finals, n=4) if len(finals) >= 2 else [math.nan] * 3
        lr_end = statistics.median(r["lr_end"] for r in mine)
        print(f"{method:<14} {len(mine):>4} {statistics.median(finals):>7.4f} "
              f"[{q[0]:.4f}, {q[2]:.4f}] {finals[0]:>7.4f}-{finals[-1]:.4f} "
              f"{sum(r['diverged'] for r in mine):>3} {sum(r['collapsed'] for r in mine):>3} "
              f"{sum(r['lr_floored'] for r in mine):>5} {lr_end:>17.2e}")
    if figure is not None:
        plot_finals(rows, task, figure)


def plot_finals(rows: list[dict], task: str, figure: Path) -> None:
    """Final test loss of every run, per method, initializations paired by colour."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns
    from matplotlib import pyplot as plt

    df = pd.DataFrame(rows)
    df = df[df.final_test.map(math.isfinite)]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.boxplot(df, x="method", y="final_test", color="0.9", showfliers=False, ax=ax)
    sns.stripplot(df, x="method", y="final_test", hue="rep", palette="tab10", size=5,
                  jitter=0.15, ax=ax)
    ax.set(xlabel="", ylabel="final test loss",
           title=f"{task}: final test loss per initialization, {int(df.epochs.max())} epochs")
    ax.legend(title="initialization", fontsize=7, title_fontsize=7, ncol=2,
              bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)
    print(f"wrote {figure}")


def run(args: argparse.Namespace, data_dir: str | None) -> None:
    options = dict(kv.split("=", 1) for kv in args.option)
    options = {k: parse_value(v) for k, v in options.items()}
    configs = [trial_config(args.task, args.method, r, args.epochs, options, args.seed,
                            data_dir, args.device) for r in (args.reps or range(args.inits))]

    done: list[dict] = []
    if args.out and args.out.exists():
        done = read_runs(args.out, args.task, args.method, options, args.seed)
    todo = [] if args.report else [
        c for c in configs if c["repetition"] not in {d["repetition"] for d in done}]
    print(f"{args.task} · {args.method} {options or ''}: {args.inits} inits x {args.epochs} "
          f"epochs, {len(done)} done, {len(todo)} to run on {args.workers} workers "
          f"({args.device})", flush=True)
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for run in pool.imap_unordered(run_one, todo):
            done.append(run)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with args.out.open("a") as fh:  # one line per finished trial
                    fh.write(json.dumps(run) + "\n")
            print(json.dumps(summary(run)), flush=True)
    rows = sorted((summary(d) for d in done), key=lambda s: s["rep"])
    print(f"\n{'rep':>3} {'lr0':>8} {'final':>7} {'@bestval':>8} {'div':>4} {'col':>4} "
          f"{'floor':>5} {'lr_end':>8} {'wd_max':>8} {'infl_max':>9} {'resets':>6} {'jumps':>5} "
          f"{'clipped':>7} {'s/ep max':>8}")
    for s in rows:
        print(f"{s['rep']:>3} {s['lr0']:>8.4f} {s['final_test']:>7.4f} "
              f"{s['test_at_best_val']:>8.4f} {int(s['diverged']):>4} {int(s['collapsed']):>4} "
              f"{int(s['lr_floored']):>5} {s['lr_end']:>8.2e} {s['wd_max_seen']:>8.2e} "
              f"{s['influence_max']:>9.2e} {s['influence_resets']:>6} {s['jump_resets']:>5} "
              f"{s['clipped_hypersteps']:>7} {s['epoch_seconds_max']:>8.2f}")
    vals = [s["final_val"] for s in rows if math.isfinite(s["final_val"])]
    finals = [s["final_test"] for s in rows if math.isfinite(s["final_test"])]
    if len(finals) >= 2:
        q = statistics.quantiles(finals, n=4)
        print(f"final val loss: median {statistics.median(vals):.4f}; "
              f"final test loss: median {statistics.median(finals):.4f}, IQR [{q[0]:.4f}, "
              f"{q[2]:.4f}], {sum(s['diverged'] for s in rows)} diverged, "
              f"{sum(s['collapsed'] for s in rows)} collapsed, "
              f"{sum(s['lr_floored'] for s in rows)} with lr at its floor, of {len(rows)}")
    if args.method in BLACK_BOX and rows:
        choice = min(rows, key=lambda s: s["final_val"] if math.isfinite(s["final_val"])
                     else math.inf)
        print(f"a random search of these {len(rows)} trials chooses rep {choice['rep']} (best "
              f"final val loss {choice['final_val']:.4f}): final test loss "
              f"{choice['final_test']:.4f}")


if __name__ == "__main__":
    main()
