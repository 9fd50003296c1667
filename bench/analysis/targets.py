"""Time-to-target over a sweep of targets, so a comparison does not hang on one number.

The targets are quantiles of the best black-box entry's final test losses (its repetitions'
choices by validation loss); the best entry is the black-box one with the lowest median. The
median (quantile 0.5) is the fixed target this suite recommends per task: the level that a
black-box search of the study's budget reaches in half of its repetitions. The OHO paper
states a predefined test-loss level for its time-to-target figure (its value is not in the
text); read as the level one OHO run reaches, it is global OHO's median final test loss here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench import report
from bench.analysis import stats
from bench.vocabulary import ONLINE

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
PAPER_METHOD = "oho"  # the paper's time-to-target figure: the level one OHO run reaches


def best_black_box(reps: pd.DataFrame) -> tuple[str, str] | None:
    """(method, optimizer) of the black-box entry (its family is not ONLINE) with the lowest
    median final test loss, over `report.repetitions` rows."""
    bb = reps[reps["optimizer"] != ONLINE]
    if bb.empty:
        return None
    medians = bb.groupby(["method", "optimizer"])["final_test_loss"].median()
    return medians.idxmin() if medians.notna().any() else None


def sweep_targets(reps: pd.DataFrame, quantiles: Sequence[float] = QUANTILES) -> dict[str, float]:
    """Label -> target: `q=0.25` ... for the quantiles of the best black-box entry's final
    test losses, and `paper` for global OHO's median when the table has it."""
    out = {}
    best = best_black_box(reps)
    if best is not None:
        losses = reps.loc[(reps["method"] == best[0]) & (reps["optimizer"] == best[1]),
                          "final_test_loss"].astype(float)
        losses = losses[np.isfinite(losses)]
        out.update({f"q={q:g}": float(np.quantile(losses, q)) for q in quantiles})
    paper = reps.loc[reps["method"] == PAPER_METHOD, "final_test_loss"].astype(float)
    if np.isfinite(paper).any():
        out["paper"] = float(np.nanmedian(paper))
    return out


def target_sweep(df: pd.DataFrame, quantiles: Sequence[float] = QUANTILES) -> pd.DataFrame:
    """One row per (task, target, entry): the target, how many repetitions reached it, and
    the median compute seconds and trials to it (inf: fewer than half reached it)."""
    rows = []
    for task, g in df.groupby("task", sort=False):
        swept = sweep_targets(report.repetitions(g), quantiles)
        ttt = stats.times_to_targets(g, {task: list(dict.fromkeys(swept.values()))})
        for label, target in swept.items():
            times = stats.entry_times(ttt[ttt["target"] == target])
            for r in times.itertuples(index=False):
                rows.append({"task": task, "target_label": label, "target": target,
                             "method": r.method, "optimizer": r.optimizer,
                             "reached": int(r.reached), "reps": int(r.reps),
                             "compute_to_target": float(r.compute_to_target),
                             "trials_to_target": float(r.trials_to_target)})
    return pd.DataFrame(rows)


def recommended_target(df: pd.DataFrame) -> dict[str, float]:
    """Per task: the fixed target this suite recommends (see the module's docstring), rounded
    up to two significant digits."""
    sweep = target_sweep(df, (0.5,))
    chosen = sweep[sweep["target_label"] == "q=0.5"].drop_duplicates("task")
    return {r.task: round_up(r.target, 2) for r in chosen.itertuples(index=False)}


def round_up(x: float, digits: int) -> float:
    if not (math.isfinite(x) and x > 0):
        return x
    scale = 10 ** (digits - 1 - math.floor(math.log10(x)))
    return math.ceil(x * scale - 1e-9) / scale
