"""Statistics over the results table: time-to-target, final test-loss distributions with
bootstrap intervals, mean ranks and performance profiles.

An entry of the comparison is (task, method, optimizer). Time-to-target and the choice by
validation loss come from `bench.report`; this module only aggregates them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench import intervals, report

ENTRY = report.GROUP  # task, method, optimizer
TIMES = ("compute_to_target", "wall_seconds_to_target", "trials_to_target")


def time_to_target(df: pd.DataFrame, target: report.Target = None,
                   reach: str = report.SUSTAINED) -> pd.DataFrame:
    """Per repetition: compute, wall-clock seconds and trials until the choice reaches the
    task's target by rule `reach` (inf: never), the target used and `reached`. `target`: a
    number for every task, one per task, or None: the median final test loss over all methods
    of the task."""
    targets = report.targets_for(report.repetitions(df), target)
    return times_to_targets(df, {task: [value] for task, value in targets.items()}, reach)


def times_to_targets(df: pd.DataFrame, targets: dict[str, list[float]],
                     reach: str = report.SUSTAINED) -> pd.DataFrame:
    """`time_to_target` for several targets per task (a row per repetition and target), each
    repetition's choice traced once."""
    ttt = report.times_to_targets(df, targets, reach)
    return ttt.assign(reached=np.isfinite(ttt["compute_to_target"].to_numpy(dtype=float)))


def entry_times(ttt: pd.DataFrame) -> pd.DataFrame:
    """Per entry: the median of each time-to-target over repetitions (a never-reached
    repetition counts as infinite, so the median is inf when half or more never reached it)
    and how many repetitions reached the target."""
    grouped = ttt.groupby(ENTRY, sort=False)
    out = grouped[list(TIMES)].median()
    out["reached"] = grouped["reached"].sum()
    out["reps"] = grouped.size()
    return out.reset_index()


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (scipy's trim_mean, 25% cut each end).
    An inf (a diverged run, counted as the worst) in the middle half makes it inf."""
    return stats.trim_mean(x, 0.25, axis=axis)


def pooled_iqm(per_task: Sequence[np.ndarray]) -> float:
    """The IQM over several tasks with each task weighing the same, whatever its number of runs:
    the mean of the middle half of the mixture of the tasks' empirical distributions (rliable's
    IQM over a runs x tasks matrix, where every task has as many runs). Run i of a task with n
    runs carries weight 1/(n * tasks); the runs straddling the 25% and 75% marks count in part.
    An inf (a diverged run, the worst) with weight in the middle half makes it inf."""
    values = np.concatenate([np.asarray(x, float) for x in per_task])
    weights = np.concatenate([np.full(len(x), 1.0 / (len(x) * len(per_task))) for x in per_task])
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    upper = np.cumsum(weights)
    kept = np.clip(np.minimum(upper, 0.75) - np.maximum(upper - weights, 0.25), 0.0, None)
    inside = kept > 1e-12
    if np.isinf(values[inside]).any():
        return math.inf
    return float(np.sum(kept[inside] * values[inside]) / np.sum(kept[inside]))


def pooled_iqm_interval(per_task: Sequence[np.ndarray], rng: np.random.Generator,
                        resamples: int = 2000, confidence: float = 0.95,
                        min_n: int = intervals.BOOTSTRAP_MIN_N) -> tuple[float, float]:
    """A stratified percentile bootstrap interval of `pooled_iqm`: each task's runs resampled
    within the task. (nan, nan) where a task has fewer than `min_n` runs. Its coverage is
    simulated in tests/test_intervals.py."""
    if min(map(len, per_task)) < min_n:
        return math.nan, math.nan
    boot = [pooled_iqm([x[rng.integers(len(x), size=len(x))] for x in per_task])
            for _ in range(resamples)]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha], method="inverted_cdf")  # no inf - inf
    return float(lo), float(hi)


def median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def bootstrap_ci(x: Sequence[float], statistic: Callable = median, confidence: float = 0.95,
                 n_resamples: int = 2000, method: str = "percentile",
                 seed: int = 0) -> tuple[float, float]:
    """Seeded bootstrap interval (scipy.stats.bootstrap, `percentile` or `BCa`) of
    `statistic` over the finite values of `x`, at any n from 2 (bench.intervals says where its
    coverage holds: the report uses those). Fewer than two values: (nan, nan). All values
    equal: (value, value). BCa can still be undefined on heavily tied data: scipy then gives
    nan, returned as is."""
    return intervals.bootstrap_interval(x, statistic, confidence, n_resamples, seed, min_n=2,
                                        method=method)


def final_losses(df: pd.DataFrame) -> pd.DataFrame:
    """Per repetition: the final choice (by validation loss) and its test loss."""
    return report.repetitions(df)


def distribution(reps: pd.DataFrame, confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """Per entry, over the finite final test losses of its repetitions (`final_losses`):
    n, n_missing (repetitions with no finite choice), median with its distribution-free
    interval and IQM with its BCa bootstrap interval (NaN where n is too small for an honest
    one: bench.analysis.intervals), quartiles, min and max."""
    rows = []
    for key, g in reps.groupby(ENTRY, sort=False):
        x = g["final_test_loss"].to_numpy(dtype=float)
        finite = x[np.isfinite(x)]
        ci = {"median": intervals.median_interval(finite, confidence),
              "iqm": intervals.bootstrap_interval(finite, iqm, confidence, n_resamples, seed)}
        some = len(finite) > 0
        rows.append({**dict(zip(ENTRY, key, strict=True)), "n": len(finite),
                     "n_missing": len(x) - len(finite),
                     "median": float(np.median(finite)) if some else math.nan,
                     "median_lo": ci["median"][0], "median_hi": ci["median"][1],
                     "iqm": float(iqm(finite)) if some else math.nan,
                     "iqm_lo": ci["iqm"][0], "iqm_hi": ci["iqm"][1],
                     "q25": float(np.percentile(finite, 25)) if some else math.nan,
                     "q75": float(np.percentile(finite, 75)) if some else math.nan,
                     "min": float(finite.min()) if some else math.nan,
                     "max": float(finite.max()) if some else math.nan})
    return pd.DataFrame(rows)


def mean_ranks(per_entry: pd.DataFrame, by: str = "test_median") -> pd.DataFrame:
    """Per (method, optimizer): the mean over tasks of its rank among the task's entries by
    column `by` (lower is better, rank 1 the best; ties share the mean rank; inf ties last,
    NaN ranks last), and on how many tasks it was ranked. `per_entry` is e.g. the report's
    summary (test_median, ttt_median) or `entry_times`."""
    ranked = per_entry.assign(rank=per_entry.groupby("task")[by].rank(
        method="average", na_option="bottom"))
    out = ranked.groupby(["method", "optimizer"], sort=False)["rank"].agg(
        mean_rank="mean", tasks="count").reset_index()
    return out.sort_values("mean_rank", kind="stable").reset_index(drop=True)


def performance_ratios(per_entry: pd.DataFrame, by: str = "compute_to_target") -> pd.DataFrame:
    """Per entry: its time `by` over the fastest entry's on the same task (1 for the fastest;
    inf where it never reached the target, or where no entry on the task did)."""
    t = per_entry[by].to_numpy(dtype=float)
    t = np.where(np.isnan(t), math.inf, t)
    best = per_entry.assign(t=t).groupby("task")["t"].transform("min").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isfinite(t) & np.isfinite(best),
                         np.where(best > 0, t / best, np.where(t == 0, 1.0, math.inf)), math.inf)
    return per_entry[ENTRY].assign(ratio=ratio)


def performance_profile(per_entry: pd.DataFrame, taus: Sequence[float] | None = None,
                        by: str = "compute_to_target") -> pd.DataFrame:
    """AlgoPerf-style performance profile: for each (method, optimizer) and tau, the fraction
    of all tasks in `per_entry` on which its time `by` is within a factor tau of the fastest
    entry's (never reached, or absent from the task: not within any tau). Default taus: 1 to
    a little past the largest finite ratio, log-spaced."""
    ratios = performance_ratios(per_entry, by)
    if taus is None:
        finite = ratios["ratio"][np.isfinite(ratios["ratio"])]
        top = max(float(finite.max()) * 1.05 if len(finite) else 2.0, 2.0)
        taus = np.geomspace(1.0, top, 50)
    n_tasks = per_entry["task"].nunique()
    rows = []
    for (method, optimizer), g in ratios.groupby(["method", "optimizer"], sort=False):
        r = g["ratio"].to_numpy()
        rows += [{"method": method, "optimizer": optimizer, "tau": float(tau),
                  "fraction": float(np.sum(r <= tau)) / n_tasks} for tau in taus]
    return pd.DataFrame(rows)
