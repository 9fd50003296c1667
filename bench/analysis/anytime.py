"""Anytime curves: the test loss of a method's current choice (the trial with the lowest
validation loss so far, as in `bench.report`) against the time it has spent, per repetition,
and a band over repetitions on a common time grid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import report

CLOCKS = {"compute": "compute",  # sequential compute (training seconds)
          "wall_seconds": "timestamp"}  # its own trials' running time; its records' order


def anytime_curves(df: pd.DataFrame, x: str = "compute") -> pd.DataFrame:
    """One row per record of each repetition: entry, repetition, `x` (compute:
    sequential compute; wall_seconds: the seconds one of its trials ran so far,
    `report.busy_seconds`) and test_loss, the test loss of the choice by validation at that
    moment (NaN until some trial has a finite loss)."""
    if x not in CLOCKS:
        raise ValueError(f"x must be one of {', '.join(CLOCKS)}, got {x!r}")
    if x == "wall_seconds" and not {"timestamp", "experiment_start"} <= set(df.columns):
        raise ValueError("this table has no wall-clock (timestamp, experiment_start)")
    parts = []
    for key, rep in df.groupby(report.REP, sort=False):
        trace = report.incumbent_trace(rep, CLOCKS[x])
        xs = (trace["compute"].to_numpy(dtype=float) if x == "compute"
              else report.busy_seconds(rep, trace["timestamp"]))
        parts.append(pd.DataFrame({**dict(zip(report.REP, key, strict=True)), x: xs,
                                   "test_loss": trace["chosen_test_loss"].to_numpy(float)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[*report.REP, x, "test_loss"])


def time_grid(values: np.ndarray, points: int = 100) -> np.ndarray:
    """`points` times from the smallest positive to the largest finite value: log-spaced when
    they span more than a decade, else evenly spaced."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) == 0:
        return np.array([])
    lo, hi = v.min(), v.max()
    return np.geomspace(lo, hi, points) if hi > 10 * lo else np.linspace(lo, hi, points)


def value_at(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A step curve (the value holds from each x until the next) on `grid`: NaN before the
    first x; after the last, the last value (a finished repetition keeps its final choice)."""
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    i = np.searchsorted(xs, grid, side="right") - 1
    return np.where(i >= 0, ys[np.clip(i, 0, None)], np.nan)


def anytime_band(curves: pd.DataFrame, x: str = "compute", points: int = 100,
                 grid: np.ndarray | None = None) -> pd.DataFrame:
    """Per entry and grid time: median, q25 and q75 of its repetitions' curves, and n, how many
    repetitions had a choice by then. The grid is shared by all entries of a task
    (`time_grid` of the task's times) unless given."""
    rows = []
    for task, on_task in curves.groupby("task", sort=False):
        times = time_grid(on_task[x].to_numpy(), points) if grid is None else np.asarray(grid)
        for (method, optimizer), g in on_task.groupby(["method", "optimizer"], sort=False):
            stacked = np.array([value_at(r[x].to_numpy(float), r["test_loss"].to_numpy(float),
                                         times) for _, r in g.groupby("repetition")])
            n = np.isfinite(stacked).sum(axis=0)
            q = np.full((3, len(times)), np.nan)
            some = n > 0
            if some.any():
                q[:, some] = np.nanpercentile(stacked[:, some], [50, 25, 75], axis=0)
            rows.append(pd.DataFrame({"task": task, "method": method, "optimizer": optimizer,
                                      x: times, "median": q[0], "q25": q[1], "q75": q[2],
                                      "n": n}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["task", "method", "optimizer", x, "median", "q25", "q75", "n"])


def best_of_k(df: pd.DataFrame, ks, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """For searches whose trials are independent draws (random search): the test loss of the
    choice by validation among k trials, for each k in `ks`, estimated by drawing k of the
    entry's finished trials (all repetitions pooled) without replacement, `n_resamples` times.
    One row per (entry, k): median and quartiles over the draws. Diverged trials count as
    drawn and never chosen. How many trials a search needs to reach its plateau."""
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in df.groupby(report.GROUP, sort=False):
        last = g.sort_values("epoch").groupby(["repetition", "trial"]).tail(1)
        val = last["val_loss"].to_numpy(float)
        test = last["test_loss"].to_numpy(float)
        val = np.where(np.isfinite(val) & np.isfinite(test), val, np.inf)
        for k in ks:
            if k > len(val):
                continue
            draws = np.argsort(rng.random((n_resamples, len(val))), axis=1)[:, :k]
            chosen = np.take_along_axis(draws, np.argmin(val[draws], axis=1)[:, None], 1)[:, 0]
            picked = np.where(np.isfinite(val[chosen]), test[chosen], np.nan)
            q25, q50, q75 = np.nanpercentile(picked, [25, 50, 75])
            rows.append({**dict(zip(report.GROUP, key, strict=True)), "k": int(k),
                         "pool": len(val), "median": q50, "q25": q25, "q75": q75})
    return pd.DataFrame(rows)
