"""What a method achieved, from the results table alone.

A method's choice at any moment is the trial with the lowest validation loss among what it has
trained so far (each trial at its latest epoch); the test loss of that choice is what counts.
The target is reached at the first moment from which that choice's test loss stays at or below
it until the end of the budget (SUSTAINED: a dip that comes back up does not count, and a run
that ends above the target has not reached it); FIRST_TOUCH, the first moment it dips below, is
kept as an option. Time-to-target is measured three ways:
- sequential compute (`compute`, in the table's unit: bench.compute): the method's trials
  cumulated in the order it started them (early-stopped trials count what they used);
- wall-clock: seconds since the experiment started, Ray scheduling and evaluation included,
  with trials running at once as they did;
- trials: how many trials it had started by then.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bench import intervals
from bench.vocabulary import method_label

GROUP = ["task", "method", "optimizer"]  # one entry of the report (method: see `entries`)
REP = [*GROUP, "repetition"]
# Per trial, from its last record: a loss went non-finite; the training loss went back to
# chance level (bench.harness); an online learning rate sat at its floor (UpdateRule.lr_floored).
FLAGS = ("diverged", "collapsed", "lr_floored")


def entries(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with each row's method named as its entry (`vocabulary.method_label`), so that the
    report keys entries by (task, method, optimizer). Idempotent."""
    if "scheduler" not in df or df.empty:
        return df
    method, methods = pd.factorize(df["method"], use_na_sentinel=False)
    scheduler, schedulers = pd.factorize(df["scheduler"], use_na_sentinel=False)
    names = np.array([[method_label(m, s) for s in schedulers] for m in methods], dtype=object)
    return df.assign(method=names[method, scheduler])  # each (method, scheduler) named once


def incumbent_trace(rep: pd.DataFrame, order: str = "compute") -> pd.DataFrame:
    """One repetition's rows in `order` (compute: search_seconds; wall-clock: timestamp), with
    the test loss of its current choice."""
    rep = rep.sort_values(order, kind="stable")
    latest: dict[int, tuple[float, float]] = {}
    started: set[int] = set()
    chosen_test, chosen_trial, n_started = [], [], []
    for trial, val, test in zip(rep["trial"], rep["val_loss"], rep["test_loss"], strict=True):
        started.add(trial)
        if math.isfinite(val) and math.isfinite(test):
            latest[trial] = (val, test)
        else:
            latest.pop(trial, None)
        best = min(latest, key=lambda t: latest[t][0]) if latest else None
        chosen_trial.append(best)
        chosen_test.append(latest[best][1] if best is not None else math.nan)
        n_started.append(len(started))
    return rep.assign(chosen_trial=chosen_trial, chosen_test_loss=chosen_test,
                      trials_started=n_started)


def repetitions(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, repetition): the final choice and its losses."""
    out = []
    for key, rep in entries(df).groupby(REP, sort=False):
        trace = incumbent_trace(rep)
        last = trace.iloc[-1]
        ends = rep.groupby("trial").tail(1)  # each trial's last record
        flagged = {f"{flag}_trials": int(ends[flag].fillna(False).astype(bool).sum())
                   if flag in ends else 0 for flag in FLAGS}
        out.append({**dict(zip(REP, key, strict=True)),
                    "final_test_loss": last["chosen_test_loss"],
                    "chosen_trial": last["chosen_trial"],
                    "trials": int(rep["trial"].nunique()), **flagged,
                    "compute": float(rep["compute"].max())})
    return pd.DataFrame(out)


def default_targets(reps: pd.DataFrame) -> dict[str, float]:
    """Per task: the median final test loss over all methods and repetitions."""
    return reps.groupby("task")["final_test_loss"].median().to_dict()


Target = float | Mapping[str, float] | None
# Per (task, method, optimizer): (Ray's overhead, the searcher's) in seconds per trial.
Overhead = dict[tuple[str, str, str], tuple[float, float]]


def targets_for(reps: pd.DataFrame, target: Target = None) -> dict[str, float]:
    """Per task: `target` (one number for every task, or one per task), else (None, or a task
    the mapping lacks) the median final test loss over all methods of that task."""
    derived = default_targets(reps)
    if isinstance(target, Mapping):
        return {t: float(target[t]) if target.get(t) else v for t, v in derived.items()}
    return {t: float(target) for t in derived} if target else derived


SUSTAINED, FIRST_TOUCH = "sustained", "first-touch"
REACH_RULES = (SUSTAINED, FIRST_TOUCH)


def time_to_target(df: pd.DataFrame, targets: dict[str, float], rule: str = SUSTAINED
                   ) -> pd.DataFrame:
    """Per repetition: compute, wall-clock seconds and trials until the choice reaches the
    task's target by `rule` (inf where it never does; wall-clock NaN where the table has no
    clock)."""
    return times_to_targets(df, {task: [target] for task, target in targets.items()}, rule)


def times_to_targets(df: pd.DataFrame, targets: dict[str, list[float]],
                     rule: str = SUSTAINED) -> pd.DataFrame:
    """`time_to_target` for several targets per task: a row per repetition and target, each
    repetition's choice traced once."""
    out = []
    for key, rep in entries(df).groupby(REP, sort=False):
        trace = incumbent_trace(rep)
        clock = None
        if {"timestamp", "experiment_start"} <= set(rep) and rep["experiment_start"].notna().all():
            clock = incumbent_trace(rep, "timestamp")
        for target in targets[key[0]]:
            first = reached_at(trace, target, rule)
            wall = math.nan
            if clock is not None:
                hit = reached_at(clock, target, rule)
                wall = math.inf if hit is None else float(busy_seconds(rep, [hit["timestamp"]])[0])
            out.append({**dict(zip(REP, key, strict=True)), "target": target,
                        "compute_to_target": math.inf if first is None else first["compute"],
                        "wall_seconds_to_target": wall,
                        "trials_to_target": math.inf if first is None else first["trials_started"]})
    return pd.DataFrame(out)


def busy_seconds(rep: pd.DataFrame, at) -> np.ndarray:
    """At each time of `at`: the seconds so far during which one of the repetition's trials
    ran, the union of its attempts' spans from the attempt's start (else the trial's, else the
    experiment's) to its last record. Concurrent trials count once; the time a trial waited for
    a slot another experiment held, and the gap between the sessions of a resumed run, not at
    all."""
    start = rep["experiment_start"]
    for column in ("trial_start", "attempt_start"):
        if column in rep:
            start = rep[column].fillna(start)
    spans = rep.assign(start=start).groupby(["trial", "start"])["timestamp"].max()
    merged: list[list[float]] = []  # the union, as disjoint sorted spans
    for begin, end in sorted((b, e) for (_, b), e in spans.items()):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    begins, ends = (np.array([m[i] for m in merged], dtype=float) for i in (0, 1))
    before = np.concatenate([[0.0], np.cumsum(ends - begins)])  # busy before each span
    at = np.asarray(at, dtype=float)
    k = np.searchsorted(begins, at, side="right")  # spans begun by each time
    inside = np.clip(at - begins[np.maximum(k - 1, 0)], 0.0,
                     (ends - begins)[np.maximum(k - 1, 0)]) if len(merged) else 0.0
    return np.where(k > 0, before[np.maximum(k - 1, 0)] + inside, 0.0)


def reached_at(trace: pd.DataFrame, target: float, rule: str = SUSTAINED) -> pd.Series | None:
    """The row of `trace` (`incumbent_trace`) at which the target counts as reached by `rule`,
    or None."""
    below = (trace["chosen_test_loss"] <= target).to_numpy()  # NaN: not below
    if rule == FIRST_TOUCH:
        return trace.iloc[int(below.argmax())] if below.any() else None
    if not below.size or not below[-1]:
        return None
    above = np.flatnonzero(~below)
    return trace.iloc[int(above[-1]) + 1 if len(above) else 0]


Raised = set[tuple[str, str, str, int]]  # (task, method, optimizer, repetition) of searches


def summary(df: pd.DataFrame, target: Target = None, overhead: Overhead | None = None,
            reach: str = SUSTAINED, raised: Raised | None = None) -> pd.DataFrame:
    """Per (task, method, optimizer): final test-loss distribution over repetitions (median
    with its distribution-free 95% interval, NaN where n is too small for one: see
    bench.analysis.intervals; IQR, min, max) and time-to-target (`target`: see `targets_for`;
    `reach`: the rule). Medians of time-to-target count repetitions that never reached it as
    infinite. `raised`: the repetitions whose search raised and ended early; each entry counts
    them (`raised`), and the default target leaves them out."""
    reps = repetitions(df)
    ended_early = pd.Series([tuple(k) in (raised or set()) for k in
                             reps[REP].itertuples(index=False)], index=reps.index, dtype=bool)
    targets = targets_for(reps[~ended_early], target)
    ttt = time_to_target(df, targets, reach)
    reps = reps.merge(ttt, on=REP)
    rows = []
    for (task, method, optimizer), g in reps.groupby(GROUP, sort=False):
        ray_s, searcher_s = (overhead or {}).get((task, method, optimizer), (math.nan, math.nan))
        loss = g["final_test_loss"].to_numpy(dtype=float)
        worst = np.where(np.isnan(loss), np.inf, loss)  # diverged, or nothing chosen: worst
        reached = np.isfinite(g["compute_to_target"].to_numpy(dtype=float))
        ci = intervals.median_interval(worst, keep_infinite=True)
        rows.append({
            "task": task, "method": method, "optimizer": optimizer, "reps": len(g),
            "test_median": float(np.median(worst)),
            "test_ci_lo": ci[0], "test_ci_hi": ci[1],
            "test_iqr": _iqr(loss), "test_min": np.nanmin(loss) if np.isfinite(loss).any()
            else math.nan, "test_max": np.nanmax(loss) if np.isfinite(loss).any() else math.nan,
            "target": targets[task],
            "reached": f"{int(reached.sum())}/{len(g)}",
            "ttt_median": float(np.median(g["compute_to_target"])),
            "wall_ttt_median": float(np.median(g["wall_seconds_to_target"])),
            "trials_to_target": float(np.median(g["trials_to_target"])),
            "trials": int(g["trials"].sum()),
            "raised": int(ended_early[g.index].sum()),  # searches that raised, ended early
            **{flag: int(g[f"{flag}_trials"].sum()) for flag in FLAGS},
            "ray_overhead_s_per_trial": ray_s, "searcher_s_per_trial": searcher_s,
        })
    return pd.DataFrame(rows)


def overhead_by_method(run_info: dict, labels: Mapping[str, str] | None = None) -> Overhead:
    """Per entry (task, method, optimizer), means over its trials of the seconds a slot sat
    free before the trial started (`slot_waits`: Ray's scheduling and start-up, the searcher's
    suggest included) and over its repetitions of the searcher's own seconds per trial (runs
    before it was recorded: NaN). `labels`: method -> the name its entries get
    (bench.analysis.runs: options that differ between runs)."""
    waits = slot_waits(run_info)
    per: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
    for exp in run_info.get("experiments", []):
        method = method_label((labels or {}).get(exp["method"], exp["method"]),
                              exp.get("scheduler"))
        entry = per.setdefault((exp["task"], method, exp.get("optimizer", "-")), ([], []))
        entry[0].extend(waits.get(exp.get("name"), []))
        entry[1].append(exp.get("searcher_seconds_per_trial", math.nan))
    return {k: (_mean(w), _mean(s)) for k, (w, s) in per.items()}


def slot_waits(run_info: dict) -> dict[str, list[float]]:
    """Per experiment (by name), per trial in start order: the seconds a slot of the run sat
    free before the trial started. Every experiment of a run is in flight at once, so a trial
    takes the slot that freed first (the run's start, or a resume, frees all of them); waiting
    while other experiments' trials held every slot is not counted, time no trial could use
    (Ray's start-up, scheduling, the searcher's suggest, or every search at its cap) is.
    Trials that overlap more than the run's slots (a paused population member) wait 0."""
    started = run_info.get("started")
    sessions = sorted([-math.inf if started is None else started, *run_info.get("resumed", [])])
    spans = sorted((t["start"], t["end"], exp["name"]) for exp in run_info.get("experiments", [])
                   for t in exp.get("trials", [])
                   if t.get("start") is not None and t.get("end") is not None)
    free = [sessions[0]] * max(int(run_info.get("slots") or 1), 1)  # a heap of free times
    waits: dict[str, list[float]] = {}
    for start, end, name in spans:
        freed = heapq.heappop(free)
        session = sessions[max(bisect.bisect_right(sessions, start) - 1, 0)]
        waits.setdefault(name, []).append(max(start - max(freed, session), 0.0))
        heapq.heappush(free, max(end, freed))
    return waits


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _iqr(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.subtract(*np.percentile(x, [75, 25]))) if len(x) else math.nan


def displayed(s: pd.DataFrame) -> pd.DataFrame:
    """The summary as text cells: times to 2 decimals, `not reached`, other floats to 4
    significant digits."""
    shown = s.copy()
    at = shown.columns.get_loc("test_ci_lo")
    shown.insert(at, "test_median_ci95", [
        intervals.describe(lo, hi, n) for lo, hi, n in
        zip(s["test_ci_lo"], s["test_ci_hi"], s["reps"], strict=True)])
    shown = shown.drop(columns=["test_ci_lo", "test_ci_hi"])
    for col in ("ttt_median", "wall_ttt_median"):
        shown[col] = [("not reached" if math.isinf(v) else "-" if math.isnan(v) else f"{v:.2f}")
                      for v in shown[col]]
    shown["trials_to_target"] = [("-" if math.isinf(v) else f"{v:g}")
                                 for v in shown["trials_to_target"]]
    for col in shown.select_dtypes("float").columns:
        shown[col] = [f"{v:.4g}" for v in shown[col]]
    return shown.astype(str)


def format_summary(s: pd.DataFrame) -> str:
    return displayed(s).to_string(index=False)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `df`'s cells as text (no dependency on tabulate)."""
    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    lines = [row(df.columns), row(["---"] * len(df.columns))]
    return "\n".join(lines + [row(r) for r in df.itertuples(index=False)]) + "\n"
