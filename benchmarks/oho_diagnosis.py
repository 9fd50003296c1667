"""Why does OHO's influence blow up? One trial, traced step by step.

    python benchmarks/oho_diagnosis.py --task digits --rep 1 --epochs 300 --out /tmp/diag.parquet
    python benchmarks/oho_diagnosis.py --task mnist-mlp --rep 0 --epochs 100 --every 50 ...

Repetition r is `ohobench run`'s online repetition r (benchmarks/online_stability.py draws it).
Every training step records lr, wd, the hypergradients and the influence norms. Every --every
steps (and every step in --dense START:END), the training batch's Hessian at w_t (the one the
recursion multiplies by) is probed by power iteration: its largest eigenvalue lambda_max and its
smallest lambda_min, with the batch's loss and gradient norm. The recursion
    v <- (I - lr (H + wd I)) v - (g + wd w)
amplifies v along an eigenvector of H when |1 - lr (lambda + wd)| > 1: lr lambda_max > 2 (the
edge of stability) or lambda_min < -wd. `--plot PNG` draws lr lambda_max against 2 next to the
influence norms, wd and lr over the run.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch
from mnist_epoch import data_root  # benchmarks/, on sys.path when run as a script
from online_stability import trial_config


def power_iteration(hvp, like: list[torch.Tensor], start: list[torch.Tensor] | None,
                    iters: int, shift: float = 0.0) -> tuple[float, list[torch.Tensor]]:
    """The eigenvalue of largest magnitude of (H - shift I), and its eigenvector."""
    v = start or [torch.randn_like(x) for x in like]
    lam = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        v = [x / norm for x in v]
        hv = [h - shift * x for h, x in zip(hvp(v), v, strict=True)]
        lam = float(sum((h * x).sum() for h, x in zip(hv, v, strict=True)))
        v = hv
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    return lam, [x / norm for x in v]


def traced_rule(method: str, options: dict, every: int, iters: int, rows: list[dict],
                dense: tuple[int, int] = (0, 0)):
    import methods
    from methods.base import parse_options

    m = methods.get(method)
    opts, _ = parse_options(m.options_type, options, method)
    base = m.update_rule(opts)
    probe = {"top": None, "bottom": None}

    class Traced(type(base)):
        def step(self, state, params, batch, ctx):
            row = {"step": ctx.step, "epoch": ctx.epoch}
            if ctx.step % every == 0 or dense[0] <= ctx.step < dense[1]:
                weights = list(params.values())
                loss = ctx.loss(params, batch)
                grads = torch.autograd.grad(loss, weights, create_graph=True)
                row["batch_loss"] = float(loss)
                row["grad_norm"] = float(torch.sqrt(sum((g * g).sum() for g in grads)))

                def hvp(v):
                    return list(torch.autograd.grad(grads, weights, v, retain_graph=True))

                top, probe["top"] = power_iteration(hvp, weights, probe["top"], iters)
                low, probe["bottom"] = power_iteration(hvp, weights, probe["bottom"], iters,
                                                       shift=top)
                row.update(lambda_max=top, lambda_min=low + top)
            h = state.hypers.values
            row.update(lr=h["lr"][0], wd=h["wd"][0], lr_max_group=max(h["lr"]),
                       wd_max_group=max(h["wd"]))
            state, params = super().step(state, params, batch, ctx)
            row.update(self.diagnostics(state))
            rows.append(row)
            return state, params

    return Traced(opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="digits")
    ap.add_argument("--method", default="oho")
    ap.add_argument("--rep", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--every", type=int, default=9, help="steps between Hessian probes")
    ap.add_argument("--iters", type=int, default=12, help="power iterations per probe")
    ap.add_argument("--dense", default="0:0", metavar="START:END",
                    help="also probe every step in [START, END), e.g. around a jump")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, required=True, help="per-step trace (.parquet)")
    ap.add_argument("--epochs-out", type=Path, default=None, help="per-epoch records (.parquet)")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--replot", action="store_true", help="only draw --plot from --out")
    args = ap.parse_args()
    import json

    import pandas as pd

    from bench import harness, tasks
    from bench.datasets import DataSource

    dense = tuple(int(x) for x in args.dense.split(":"))
    if args.replot:
        plot(pd.read_parquet(args.out), args.plot, f"{args.task} · {args.method} · rep "
             f"{args.rep}", dense)
        return
    torch.set_num_threads(1)
    options = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.option)}
    tmp = tempfile.TemporaryDirectory()
    cfg = trial_config(args.task, args.method, args.rep, args.epochs, options, 0,
                       data_root(None, tmp.name))
    task = tasks.get(args.task)
    splits = task.load_splits(0, DataSource.resolve(cfg["data_dir"], False))
    rows: list[dict] = []
    rule = traced_rule(args.method, cfg["options"], args.every, args.iters, rows, dense)
    spec = harness.TrainSpec(epochs=args.epochs, batch_size=task.batch_size, seed=cfg["seed"])

    def progress(record: dict) -> None:
        if record["epoch"] % 10 == 0 or record["diverged"]:
            print(f"epoch {record['epoch']}: test {record['test_loss']:.4f} "
                  f"lr {record.get('hp_lr', math.nan):.4g} wd {record.get('hp_wd', math.nan):.3g}",
                  flush=True)

    print(f"{args.task} · {args.method} rep {args.rep}: {cfg['hparams']}", flush=True)
    records = harness.train(task, rule, cfg["hparams"], splits, spec, progress)
    trace = pd.DataFrame(rows)
    trace.to_parquet(args.out)
    if args.epochs_out:
        pd.DataFrame(records).to_parquet(args.epochs_out)
    print(f"trace: {len(trace)} steps -> {args.out}")
    if args.plot:
        plot(trace, args.plot, f"{args.task} · {args.method} · rep {args.rep}", dense)


def plot(trace, path: Path, title: str, dense: tuple[int, int] = (0, 0)) -> None:
    """The whole run; with a dense window, that window again on the right, step by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zoom = dense[1] > dense[0]
    fig, axes = plt.subplots(4, 2 if zoom else 1, figsize=(14 if zoom else 9, 10),
                             sharex="col", squeeze=False)
    draw(axes[:, 0], trace, every_probe=False)
    axes[0, 0].set_title(title)
    if zoom:
        window = trace[(trace["step"] >= dense[0]) & (trace["step"] < dense[1])]
        draw(axes[:, 1], window, every_probe=True)
        axes[0, 1].set_title(f"steps {dense[0]}-{dense[1] - 1}, probed every step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"figure -> {path}")


def draw(axes, trace, every_probe: bool) -> None:
    probes = trace.dropna(subset=["lambda_max"])
    influence = [c for c in trace if c.startswith("influence_") and c != "influence_resets"]
    marker = {"marker": ".", "ms": 4} if every_probe else {}
    ax = axes[0]
    ax.plot(probes["step"], probes["lr"] * probes["lambda_max"], lw=0.8, **marker,
            label="lr · λmax (batch Hessian)")
    ax.axhline(2, color="k", ls="--", lw=0.8, label="2: edge of stability")
    if every_probe:
        ax.plot(probes["step"], probes["batch_loss"] / probes["batch_loss"].median(), lw=0.8,
                color="C3", **marker, label="batch loss / its median")
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    for c in influence:
        ax.plot(trace["step"], trace[c], lw=0.8, **marker, label=c.replace("influence_", "|v| "))
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    ax.plot(trace["step"], trace["lr"], lw=0.8, **marker, label="lr")
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[3]
    ax.plot(trace["step"], trace["wd"], lw=0.8, **marker, label="wd", color="C3")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("training step")


if __name__ == "__main__":
    main()
