"""The horizon study: what each entry achieves at several epoch budgets.

An entry's results at a budget of H epochs come from a run of H epochs, or, where that is exact,
from the first H epochs of a longer run. It is exact when the method is `horizon_free` (a trial's
first H epochs do not depend on the run's length, and a black-box search's proposals do not
depend on results: random search, the online methods) and the optimizer family's schedule does
not read the run's length (`fixed`, `adam`, `online`). A truncated repetition chooses by
validation loss at epoch H, and its compute is recounted from the kept epochs; its wall-clock
is dropped, since its trials ran beside longer ones. Every other entry (e.g. a GP search, whose
proposals follow its own results) needs its own run at H.

At each budget the reference is the black-box entry with the lowest median final test loss;
the target is that median; an entry's time-to-target ratio is its median compute to the target
over the reference's (inf: reached in fewer than half of its repetitions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import methods
from bench import compute, intervals, report, results
from bench.analysis import runs, stats
from bench.analysis.targets import best_black_box
from bench.errors import ConfigError
from bench.vocabulary import ONLINE, entry_label, kind_of

HORIZON_FREE_FAMILIES = ("fixed", "adam", ONLINE)  # schedules that never read the run length


def truncatable(method: str, optimizer: str) -> bool:
    """Whether the first H epochs of this entry's longer run are its run at H."""
    try:
        free = methods.get(method).horizon_free
    except ConfigError:  # a plugin not installed here, or a search under a scheduler
        return False  # (`random · asha`, whose rungs depend on the epochs): not known free
    return free and optimizer in HORIZON_FREE_FAMILIES


def truncate(df: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """The table as if every trial had stopped after `epochs` epochs: compute recounted
    (`results.recount`), wall-clock dropped."""
    return results.recount(df[df["epoch"] <= epochs])


def run_epochs(info: dict, df: pd.DataFrame) -> int:
    """A run's epoch budget, as its suite resolved it."""
    tasks = sorted(set(df["task"]) | set(info.get("suite", {}).get("tasks", [])))
    found = {runs.definition(info, t)["epochs"] for t in tasks}
    if len(found) != 1 or None in found:
        raise ConfigError(f"cannot tell the epoch budget of a run with tasks {tasks}")
    return int(found.pop())


def at_horizons(run_dirs: Sequence[str | Path], horizons: Sequence[int],
                unit: str = compute.FLOPS) -> dict[int, pd.DataFrame]:
    """Per budget H: the records of every entry at H, each from a run of H epochs, else
    truncated from the shortest longer run that holds it (`source` names which), with compute
    in `unit` (bench.compute)."""
    compute.check_unit(unit)
    loaded = []
    for d in run_dirs:
        df, info = runs.read(str(d))
        loaded.append((str(d), run_epochs(info, df), df, info))
    costs: dict[str, pd.Series] = {}  # per run, counted on first use

    def in_unit(part: pd.DataFrame, name: str, info: dict) -> pd.DataFrame:
        if unit == compute.MEASURED:
            return part
        if name not in costs:
            costs[name] = compute.costs_series(
                compute.run_costs(info, f"{name}/{results.RUN_JSON}"), unit)
        return results.at_epoch_costs(part, costs[name])

    out = {}
    for h in horizons:
        frames, have = [], set()
        for name, epochs, df, info in sorted(loaded, key=lambda r: (r[1] != h, r[1])):
            if epochs < h:
                continue
            keys = report.entries(df)[report.GROUP].drop_duplicates().itertuples(
                index=False, name=None)
            new = [k for k in keys if k not in have and (epochs == h or truncatable(*k[1:]))]
            if not new:
                continue
            part = df[pd.MultiIndex.from_frame(report.entries(df)[report.GROUP]).isin(new)]
            part = part if epochs == h else truncate(part, h)
            part = report.entries(in_unit(part, name, info))  # the kept epochs counted
            source = name if epochs == h else f"first {h} epochs of {name}"
            frames.append(part.assign(source=source))
            have.update(new)
        if frames:
            out[h] = pd.concat(frames, ignore_index=True)
    return out


def horizon_table(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per (budget, entry): final test loss (median, its bootstrap 95% CI, quartiles),
    the budget's target and reference (`targets.best_black_box`), and time-to-target."""
    rows = []
    for h, df in sorted(tables.items()):
        reps = report.repetitions(df)
        ref = best_black_box(reps)
        if ref is None:
            raise ConfigError(f"at {h} epochs no black-box entry to compare with")
        dist = stats.distribution(reps).set_index(["method", "optimizer"])
        target = float(dist.loc[ref, "median"])
        ttt = stats.entry_times(stats.time_to_target(df, target))
        ref_s = float(ttt.set_index(["method", "optimizer"]).loc[ref, "compute_to_target"])
        merged = dist.reset_index().merge(ttt, on=stats.ENTRY)
        sources = df.groupby(stats.ENTRY)["source"].first()
        for r in merged.itertuples(index=False):
            secs = float(r.compute_to_target)
            rows.append({
                "epochs": h, "task": r.task, "method": r.method, "optimizer": r.optimizer,
                "kind": kind_of(r.optimizer), "reps": int(r.reps),
                "test_median": r.median, "ci_lo": r.median_lo, "ci_hi": r.median_hi,
                "q25": r.q25, "q75": r.q75, "target": target,
                "reference": report_label(*ref), "reached": f"{int(r.reached)}/{int(r.reps)}",
                "ttt_median": secs, "trials_to_target": float(r.trials_to_target),
                "ttt_ratio": ratio(secs, ref_s),
                "source": sources[(r.task, r.method, r.optimizer)]})
    return pd.DataFrame(rows)


def ratio(seconds: float, reference: float) -> float:
    if not (math.isfinite(seconds) and math.isfinite(reference)) or reference <= 0:
        return math.inf
    return seconds / reference


def report_label(method: str, optimizer: str) -> str:
    return entry_label(method, optimizer)


def displayed(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.drop(columns=["task", "kind", "target", "reference", "source"]).copy()
    shown.insert(1, "entry", [report_label(m, o) for m, o in
                              zip(table["method"], table["optimizer"], strict=True)])
    shown = shown.drop(columns=["method", "optimizer"])
    shown["ci95"] = [intervals.describe(lo, hi, n) for lo, hi, n in
                     zip(table["ci_lo"], table["ci_hi"], table["reps"], strict=True)]
    shown["ttt_median"] = ["not reached" if math.isinf(v) else f"{v:.4g}"
                             for v in table["ttt_median"]]
    shown["trials_to_target"] = ["-" if math.isinf(v) else f"{v:g}"
                                 for v in table["trials_to_target"]]
    shown["ttt_ratio"] = ["inf" if math.isinf(v) else f"{v:.2f}" for v in table["ttt_ratio"]]
    for col in ("test_median", "q25", "q75"):
        shown[col] = [f"{v:.4g}" for v in table[col]]
    cols = ["epochs", "entry", "reps", "test_median", "ci95", "q25", "q75", "reached",
            "ttt_median", "trials_to_target", "ttt_ratio"]
    return shown[cols].astype(str)


def targets_note(table: pd.DataFrame) -> str:
    per = table.drop_duplicates("epochs")
    return "\n".join(f"- {int(r.epochs)} epochs: target {r.target:.4g}, the median of "
                     f"{r.reference}" for r in per.itertuples(index=False))


def sources_note(table: pd.DataFrame) -> str:
    lines = sorted({f"- {int(r.epochs)} epochs, {report_label(r.method, r.optimizer)}: "
                    f"{r.source}" for r in table.itertuples(index=False)})
    return "\n".join(lines)

