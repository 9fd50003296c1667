"""Figures of the comparison, drawn with seaborn, and `write_figures`, which writes every
figure (these and the online dynamics of `bench.analysis.dynamics`) as PNG and PDF.

Each `plot_*` function takes DataFrames and returns a matplotlib Figure, or raises `Skip` with
the reason when the table has nothing to draw.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench import report
from bench.analysis import anytime, dynamics, stats
from bench.analysis.figkit import (
    NOT_REACHED,
    Skip,
    entries_height,
    entry_order,
    figure_legend,
    grid,
    palette,
    readable_log_ticks,
    seeded_jitter,
    set_scale,
    side_by_side,
    with_entry,
)
from bench.analysis.targets import target_sweep
from bench.vocabulary import BLACK_BOX, ONLINE

UNIT = "SGD-epochs"  # the compute unit figures name when the table does not say (df.attrs)
TIME_LABELS = {"compute_to_target": "compute to target ({unit})",
               "wall_seconds_to_target": "wall-clock seconds to target",
               "trials_to_target": "trials to target"}
PER_ROW = 2  # tasks side by side
CROWDED = 10  # more entries on a task: anytime curves one axis per method


def plot_final_loss(reps: pd.DataFrame, targets: dict[str, float]) -> Figure:
    """Final test loss of the choice per entry over repetitions: box and points, per task."""
    reps = with_entry(reps[np.isfinite(reps["final_test_loss"].astype(float))])
    if reps.empty:
        raise Skip("no repetition has a finite final test loss")
    order = list(dict.fromkeys(reps["entry"]))
    tasks = list(reps["task"].unique())
    fig, axes = grid(len(tasks), ncols=PER_ROW, width=6.0, height=entries_height(reps))
    for i, (ax, task) in enumerate(zip(axes, tasks, strict=True)):
        g = reps[reps["task"] == task]
        sns.boxplot(data=g, x="final_test_loss", y="entry", order=order, ax=ax, color="0.88",
                    showfliers=False, width=0.6)
        with seeded_jitter():
            sns.stripplot(data=g, x="final_test_loss", y="entry", order=order, ax=ax,
                          color="C0", size=5, jitter=0.15, label="repetition")
        ax.axvline(targets[task], ls="--", color="k", lw=1, label="target")
        set_scale(ax, "x", [*g["final_test_loss"], targets[task]])
        ax.set(title=task, xlabel="final test loss (choice by validation loss)", ylabel="")
        ax.tick_params(labelleft=i % PER_ROW == 0)  # entries named once per row
    figure_legend(fig, axes)
    return fig


def plot_time_to_target(ttt: pd.DataFrame, unit: str = UNIT) -> Figure:
    """Time-to-target per entry (rows: compute, wall-clock seconds, trials; columns:
    tasks): each repetition a point, the median a bar; repetitions that never reached the
    target are red crosses on a dotted line right of every finite value."""
    if ttt.empty:
        raise Skip("no repetition to time")
    ttt = with_entry(ttt)
    order = list(dict.fromkeys(ttt["entry"]))
    measures = [m for m in stats.TIMES if ttt[m].notna().any()]
    tasks = list(ttt["task"].unique())
    fig = Figure(figsize=(6.0 * len(tasks) + 1.5, entries_height(ttt) * len(measures)),
                 layout="constrained")
    axes = fig.subplots(len(measures), len(tasks), squeeze=False)
    for row, measure in enumerate(measures):
        for col, task in enumerate(tasks):
            on_task = ttt[ttt["task"] == task]
            time_axis(axes[row, col], on_task, measure, order, unit)
            axes[row, col].set_title(f"{task} (target {on_task['target'].iat[0]:.4g})")
            axes[row, col].tick_params(labelleft=col == 0)  # entries named once per row
    figure_legend(fig, axes)
    return fig


def time_axis(ax: Axes, g: pd.DataFrame, measure: str, order: list[str], unit: str = UNIT
              ) -> None:
    pos = g["entry"].map({e: i for i, e in enumerate(order)}).to_numpy(float)
    pos = pos + np.random.default_rng(0).uniform(-0.12, 0.12, len(pos))
    t = g[measure].to_numpy(float)
    hit, miss = np.isfinite(t), np.isinf(t)
    lo, top = (t[hit].min(), t[hit].max()) if hit.any() else (1.0, 1.0)
    log = lo > 0 and top > 10 * lo and measure != "trials_to_target"  # counts: linear
    ceiling = top * 1.6 if log else top * 1.15
    med = g.groupby("entry", sort=False)[measure].median()
    med = med[np.isfinite(med.to_numpy(float))]
    if hit.any():  # (no empty artists: they would still get a legend entry)
        ax.scatter(t[hit], pos[hit], s=22, color="C0", label="repetition", zorder=3)
    if len(med):
        ax.scatter(med.to_numpy(float), [order.index(e) for e in med.index], marker="|",
                   s=400, color="k", label="median over repetitions", zorder=4)
    if miss.any():
        ax.scatter(np.full(miss.sum(), ceiling), pos[miss], marker="x", s=40,
                   color=NOT_REACHED, label="not reached", zorder=3)
        ax.axvline(ceiling, ls=":", color=NOT_REACHED, lw=1)
    if log:
        ax.set_xscale("log")
        if top <= 100 * lo:
            readable_log_ticks(ax.xaxis)
    if measure == "trials_to_target":
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if not hit.any():
        ax.set_xticks([ceiling], ["not reached"])
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set(xlabel=TIME_LABELS[measure].format(unit=unit), ylabel="")


def plot_anytime(curves: pd.DataFrame, band: pd.DataFrame, targets: dict[str, float],
                 x: str = "compute", unit: str = UNIT) -> Figure:
    """Test loss of the choice against compute: a thin step line per repetition, the
    median over repetitions (thick) and the interquartile band, and the target. One axis per
    task, or per (task, method) when a task has more than `CROWDED` entries."""
    curves = curves[np.isfinite(curves["test_loss"].astype(float))]
    if curves.empty:
        raise Skip("no record with a finite test loss")
    curves, band = with_entry(curves), with_entry(band)
    crowded = curves.groupby("task")["entry"].nunique().max() > CROWDED
    keys = ["task", "method"] if crowded else ["task"]
    by = "optimizer" if crowded else "entry"  # crowded: one color per family, in every axis
    colors = palette(list(dict.fromkeys(curves[by])))
    curves = curves.assign(color=curves[by].map(colors))
    panels = list(curves.groupby(keys, sort=False))
    fig, axes = grid(len(panels), width=6.5, height=4.3)
    for ax, (key, c) in zip(axes, panels, strict=True):
        task = key[0]
        for entry, ce in c.groupby("entry", sort=False):
            color = ce["color"].iat[0]
            for _, r in ce.groupby("repetition"):
                ax.step(r[x], r["test_loss"], where="post", color=color, alpha=0.3, lw=0.8)
            be = band[(band["task"] == task) & (band["entry"] == entry)]
            ax.fill_between(be[x], be["q25"], be["q75"], step="post", color=color, alpha=0.2,
                            lw=0)
            sns.lineplot(x=be[x].to_numpy(), y=be["median"].to_numpy(), ax=ax, lw=2,
                         color=color, drawstyle="steps-post", label=entry)
        ax.axhline(targets[task], ls="--", color="k", lw=1, label="target")
        set_scale(ax, "x", c[x])
        set_scale(ax, "y", [*c["test_loss"], targets[task]])
        ax.set(title=" · ".join(key), ylabel="test loss of the choice (by validation)",
               xlabel=f"compute ({unit}, trials in the order started)" if x == "compute"
               else "wall-clock seconds")
        if crowded:
            ax.legend(fontsize="small", title="median, IQR band", title_fontsize="small")
    if not crowded:
        figure_legend(fig, axes, title="median, IQR band,\nthin: repetitions")
    return fig


def plot_horizon(table: pd.DataFrame) -> Figure:
    """The horizon study (`bench.analysis.horizon.horizon_table`): left, final test loss
    against the epoch budget (median and IQR over repetitions); right, each entry's median
    compute to the budget's target over the reference black-box entry's (not reached: drawn
    on the top edge)."""
    if table.empty:
        raise Skip("no entry at any epoch budget")
    table = with_entry(table)
    order = entry_order(table)
    colors = palette(order)
    fig = Figure(figsize=(12.0, 4.6), layout="constrained")
    loss_ax, ratio_ax = fig.subplots(1, 2)
    budgets = sorted(table["epochs"].unique())
    finite = table["ttt_ratio"].replace(np.inf, np.nan).dropna()
    ceiling = max(float(finite.max()) * 2 if len(finite) else 2.0, 4.0)
    for i, entry in enumerate(order):
        g = table[table["entry"] == entry].sort_values("epochs")
        online = (g["kind"] == ONLINE).all()
        style = {"color": colors[entry], "marker": "o" if online else "s",
                 "ls": "-" if online else "--", "label": entry}
        dodge = 1.0 + 0.025 * (i - (len(order) - 1) / 2)  # entries side by side at a budget
        x = g["epochs"].to_numpy(float) * dodge
        med = g["test_median"].to_numpy(float)
        loss_ax.errorbar(x, med, yerr=[med - g["q25"].to_numpy(float),
                                       g["q75"].to_numpy(float) - med], capsize=3, **style)
        r = g["ttt_ratio"].to_numpy(float)
        ratio_ax.plot(x, np.where(np.isfinite(r), r, ceiling), **style)
    ratio_ax.axhline(1.0, color="k", lw=1, ls=":")
    ratio_ax.axhline(ceiling, color=NOT_REACHED, lw=1, ls=":")
    for ax in (loss_ax, ratio_ax):
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel("epoch budget")
    loss_ax.set(ylabel="final test loss (median, IQR)", title="final test loss")
    loss_ax.set_yscale("log")  # the entries that matter sit close together near the bottom
    readable_log_ticks(loss_ax.yaxis, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))
    ratio_ax.set_yscale("log")
    readable_log_ticks(ratio_ax.yaxis)
    ratio_ax.set(ylabel="compute to target / reference's",
                 title="time-to-target ratio (top edge: not reached)")
    figure_legend(fig, [loss_ax, ratio_ax], title="entry")
    return fig


def verdict_palette(curves: pd.DataFrame) -> dict[str, tuple]:
    """One color per entry of a verdict's equal-compute table, the online methods first (the
    palette's strongest colors), then the black-box entries, each alphabetical: the verdict's
    figures share it."""
    kinds = curves[["entry", "kind"]].drop_duplicates()
    return palette([e for _, e in sorted(zip(kinds["kind"] != ONLINE, kinds["entry"],
                                             strict=True))])


def plot_equal_compute(curves: pd.DataFrame, unit: str = "SGD-epochs",
                       colors: dict[str, tuple] | None = None) -> Figure:
    """Final test loss against compute (bench.analysis.verdict): black-box entries as curves
    of their searches' median at each budget with the IQR as a band, online methods as points
    at the compute of one run (median, IQR as error bars; runs of equal cost side by side); a
    dotted line marks the black-box searches' full budget. One axis per task."""
    if curves.empty:
        raise Skip("nothing to compare at equal compute")
    tasks = list(curves["task"].unique())
    fig, axes = grid(len(tasks), ncols=PER_ROW, width=6.5, height=4.6)
    colors = colors or verdict_palette(curves)
    for ax, task in zip(axes, tasks, strict=True):
        g = curves[curves["task"] == task]
        for entry, e in g[g["kind"] == BLACK_BOX].groupby("entry", sort=False):
            e = e.sort_values("compute")
            ax.plot(e["compute"], e["median"], "--s", ms=4, color=colors[entry], label=entry)
            ax.fill_between(e["compute"], e["q25"], e["q75"], color=colors[entry], alpha=0.15)
        online = g[g["kind"] == ONLINE]
        spread = dict(zip(online["entry"], side_by_side(online["compute"]), strict=True))
        for entry, e in online.groupby("entry", sort=False):
            med = e["median"].to_numpy(float)
            ax.errorbar([spread[entry]], med, yerr=[med - e["q25"].to_numpy(float),
                                                    e["q75"].to_numpy(float) - med],
                        fmt="o", ms=7, capsize=4, color=colors[entry], label=f"{entry} (run)")
        full = g.loc[g["budget"] == "full", "compute"]
        if len(full):
            ax.axvline(float(full.iloc[0]), color="k", lw=1, ls=":", label="full search budget")
        ax.set_xscale("log")
        set_scale(ax, "y", g[["q25", "median", "q75"]].to_numpy().ravel())  # linear in a decade
        spent = g["compute"].to_numpy(float)
        if spent.max() <= 100 * spent.min():  # two decades or less: plain numbers
            readable_log_ticks(ax.xaxis, subs=(1.0, 2.0, 5.0) if spent.max() > 10 * spent.min()
                               else (1.0, 2.0, 3.0, 5.0))
        ax.set(title=task, xlabel=f"compute budget ({unit})",
               ylabel="final test loss of the choice (median, IQR)")
    # black-box entries, the full budget's line, then the online runs; each alphabetical
    figure_legend(fig, list(axes), title="entry", order=lambda label: (
        label.endswith("(run)"), label == "full search budget", label))
    return fig


def plot_across_tasks(aggregate: pd.DataFrame, profile: pd.DataFrame,
                      colors: dict[str, tuple] | None = None) -> Figure:
    """Over several tasks (bench.analysis.verdict.across_tasks), as rliable draws them: each
    entry's IQM of normalized final test loss with its 95% stratified bootstrap interval, and
    its score profile (the share of runs at or below each score, tasks weighing the same).
    Score 1 is the task's best black-box entry's median; lower is better. `colors`: per entry
    (the equal-compute figure's, `verdict_palette`)."""
    if aggregate.empty:
        raise Skip("an aggregate over tasks needs two tasks or more")
    aggregate, profile = with_entry(aggregate), with_entry(profile)
    order = entry_order(aggregate)
    colors = colors if colors and set(order) <= set(colors) else palette(order)
    fig = Figure(figsize=(12.5, max(4.3, 0.45 * len(order))), layout="constrained")
    left, right = fig.subplots(1, 2)
    for y, (_, r) in enumerate(aggregate.set_index("entry").loc[order].iterrows()):
        bar = [[r["iqm"] - r["iqm_lo"]], [r["iqm_hi"] - r["iqm"]]]
        left.errorbar(r["iqm"], y, xerr=bar if np.isfinite(bar).all() else None,
                      fmt="o", ms=7, capsize=4, color=colors[r.name])
    left.set_yticks(range(len(order)), order)
    left.invert_yaxis()
    left.axvline(1.0, color="k", lw=1, ls=":")
    runs = aggregate["runs"].iloc[0].count("+") + 1
    left.set(xlabel="IQM of final test loss / the task's reference (95% CI where every task\n"
             "has 10 runs or more)",
             title=f"IQM over {runs} tasks (lower is better)")
    for entry, g in profile.groupby("entry", sort=False):
        right.step(g["tau"], g["fraction"], where="post", lw=2, color=colors[entry], label=entry)
    right.axvline(1.0, color="k", lw=1, ls=":", label="the reference (1)")
    right.set_xscale("log")
    narrow = profile["tau"].max() < 4 * profile["tau"].min()  # a tick every 0.1 below 1
    readable_log_ticks(right.xaxis, subs=(1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
                       if narrow else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))
    right.set(xlabel="tau (final test loss / the task's reference)",
              ylabel="fraction of runs at or below tau", ylim=(-0.03, 1.03),
              title="score profile (higher is better)")
    figure_legend(fig, [right], title="entry")
    return fig


def plot_target_sweep(sweep: pd.DataFrame, unit: str = UNIT) -> Figure:
    """Per task: the share of repetitions that reach each target of the sweep
    (`bench.analysis.targets`) and the median compute to it (not reached by half or more:
    drawn on the top edge), against the target; the paper's target dotted."""
    quantiles = sweep[sweep["target_label"] != "paper"] if len(sweep) else sweep
    if quantiles.empty:
        raise Skip("a target sweep needs a black-box entry")
    sweep = with_entry(sweep)
    order = entry_order(sweep)
    colors = palette(order)
    tasks = list(sweep["task"].unique())
    fig = Figure(figsize=(12.0, 4.3 * len(tasks)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(tasks), 2))
    for (share_ax, time_ax), task in zip(axes, tasks, strict=True):
        g = sweep[sweep["task"] == task]
        q = g[g["target_label"] != "paper"]
        finite = q["compute_to_target"].replace(np.inf, np.nan).dropna()
        ceiling = float(finite.max()) * 2 if len(finite) else 1.0
        for entry in order:
            e = q[q["entry"] == entry].sort_values("target")
            if e.empty:
                continue
            style = {"color": colors[entry], "label": entry,
                     "marker": "o" if (e["optimizer"] == ONLINE).all() else "s"}
            share_ax.plot(e["target"], e["reached"] / e["reps"], **style)
            t = e["compute_to_target"].to_numpy(float)
            time_ax.plot(e["target"], np.where(np.isfinite(t), t, ceiling), **style)
            at_paper = g[(g["entry"] == entry) & (g["target_label"] == "paper")]
            for r in at_paper.itertuples(index=False):  # a star at the paper's target
                secs = r.compute_to_target if np.isfinite(r.compute_to_target) else ceiling
                share_ax.plot(r.target, r.reached / r.reps, "*", ms=12, color=colors[entry])
                time_ax.plot(r.target, secs, "*", ms=12, color=colors[entry])
        time_ax.axhline(ceiling, color=NOT_REACHED, lw=1, ls=":")
        paper = g.loc[g["target_label"] == "paper", "target"]
        for ax in (share_ax, time_ax):
            if len(paper):
                ax.axvline(paper.iat[0], color="k", lw=1, ls=":", label="paper's target (stars)")
            ax.set_xlabel("target test loss (quantiles of the best black-box entry's finals)")
        share_ax.set(ylabel="share of repetitions reaching it", ylim=(-0.03, 1.03),
                     title=f"{task}: reached")
        time_ax.set_yscale("log")
        time_ax.set(ylabel=f"median compute to target ({unit})",
                    title=f"{task}: time to target (top edge: not reached)")
    figure_legend(fig, axes, title="entry")
    return fig


def plot_best_of_k(df: pd.DataFrame, reps: pd.DataFrame) -> Figure:
    """Random search's choice among k trials against k (`anytime.best_of_k`: k of its finished
    trials, every repetition pooled, drawn again and again), with the other entries' median
    final test loss beside it and the suite's trials per search marked: how many trials random
    search needs to reach its plateau."""
    independent = df[df["method"] == "random"]  # under fifo: its trials are independent draws
    if independent.empty:
        raise Skip("no random search under fifo")
    pools = independent.groupby(["task", "repetition", "trial"]).ngroups
    curve = with_entry(anytime.best_of_k(independent, range(1, max(pools // 2, 1) + 1)))
    finals = with_entry(reps)
    order = entry_order(finals)
    colors = palette(order)
    tasks = list(dict.fromkeys(curve["task"]))
    fig, axes = grid(len(tasks), width=6.5, height=4.3)
    for ax, task in zip(axes, tasks, strict=True):
        for entry, c in curve[curve["task"] == task].groupby("entry", sort=False):
            ax.fill_between(c["k"], c["q25"], c["q75"], color=colors[entry], alpha=0.2, lw=0)
            ax.plot(c["k"], c["median"], "o-", ms=3, color=colors[entry], label=entry)
        for entry, g in finals[finals["task"] == task].groupby("entry", sort=False):
            if entry not in set(curve["entry"]):
                ax.axhline(float(np.nanmedian(g["final_test_loss"])), ls="--", lw=1,
                           color=colors[entry], label=f"{entry} (median final)")
        per_search = independent[independent["task"] == task].groupby("repetition")["trial"]
        ax.axvline(per_search.nunique().max(), ls=":", color="k", lw=1,
                   label="trials per search")
        set_scale(ax, "y", [*curve.loc[curve["task"] == task, "q75"], *ax.get_ylim()])
        ax.set(title=task, xlabel="k: trials drawn (resampled from every search's finished "
               "trials)", ylabel="test loss of the choice among k\n(by validation; median, IQR)")
    figure_legend(fig, axes, title="entry")
    return fig


def plot_performance_profile(profile: pd.DataFrame, unit: str = UNIT) -> Figure:
    """Fraction of tasks on which an entry reaches the target within tau times the fastest
    entry's compute."""
    if profile.empty or profile.groupby(["method", "optimizer"]).ngroups < 2:
        raise Skip("a performance profile needs at least two entries")
    profile = with_entry(profile)
    fig = Figure(figsize=(7.5, max(4.3, 0.3 * profile["entry"].nunique())),
                 layout="constrained")
    ax = fig.subplots()
    order = entry_order(profile)
    sns.lineplot(data=profile, x="tau", y="fraction", hue="entry", style="entry",
                 hue_order=order, palette=palette(order), drawstyle="steps-post", ax=ax,
                 estimator=None, lw=2)
    set_scale(ax, "x", profile["tau"])
    n = profile.attrs.get("tasks")
    ax.set(xlabel=f"tau (compute to target in {unit} / the fastest entry's)",
           ylabel="fraction of tasks within tau", ylim=(-0.03, 1.03),
           title="performance profile" + (f" ({n} task{'s' if n > 1 else ''})" if n else ""))
    figure_legend(fig, [ax], title="entry")
    return fig


def categorical_columns(df: pd.DataFrame) -> list[str]:
    """The hp_<name> columns of categorical hyperparameters: those holding strings."""
    return [c for c in df.columns if c.startswith("hp_")
            and not pd.api.types.is_numeric_dtype(df[c])
            and df[c].map(lambda v: isinstance(v, str)).any()]


def plot_categorical_choices(df: pd.DataFrame) -> Figure:
    """Per task and categorical hyperparameter: each trial's final validation loss against
    its choice, the choices as categories on the x axis, a color per entry."""
    columns = categorical_columns(df)
    if not columns:
        raise Skip("no categorical hyperparameter was recorded")
    trial = ["task", "method", "optimizer", "repetition", "trial"]
    last = with_entry(df.sort_values("epoch").groupby(trial, sort=False).tail(1))
    last = last[np.isfinite(last["val_loss"].astype(float))]
    panels = [(task, c) for c in columns for task in last["task"].unique()
              if last.loc[last["task"] == task, c].notna().any()]
    order = entry_order(last)
    fig, axes = grid(len(panels), ncols=PER_ROW)
    for ax, (task, column) in zip(axes, panels, strict=True):
        g = last[(last["task"] == task) & last[column].notna()]
        with seeded_jitter():
            sns.stripplot(data=g, x=column, y="val_loss", order=sorted(g[column].unique()),
                          hue="entry", hue_order=[e for e in order if e in set(g["entry"])],
                          palette=palette(order), dodge=True, size=6, jitter=0.1, ax=ax)
        set_scale(ax, "y", g["val_loss"])
        ax.set(title=task, xlabel=column.removeprefix("hp_"), ylabel="final validation loss")
    figure_legend(fig, axes, title="entry")
    return fig


def figures(df: pd.DataFrame, options: dict[str, dict], targets: dict[str, float]
            ) -> dict[str, Callable[[], Figure]]:
    """Name -> a function drawing that figure, compute in the unit `df.attrs` names."""
    unit = df.attrs.get("compute_unit", UNIT)
    reps = stats.final_losses(df)
    ttt = stats.time_to_target(df, targets)
    curves = anytime.anytime_curves(df)

    def profile() -> Figure:
        p = stats.performance_profile(stats.entry_times(ttt))
        p.attrs["tasks"] = df["task"].nunique()
        return plot_performance_profile(p, unit)

    return {
        "final-test-loss": lambda: plot_final_loss(reps, targets),
        "time-to-target": lambda: plot_time_to_target(ttt, unit),
        "anytime": lambda: plot_anytime(curves, anytime.anytime_band(curves), targets,
                                        unit=unit),
        "performance-profile": profile,
        "target-sweep": lambda: plot_target_sweep(target_sweep(df), unit),
        "best-of-k": lambda: plot_best_of_k(df, reps),
        "categorical-choices": lambda: plot_categorical_choices(df),
        "hp-trajectories": lambda: dynamics.plot_hp_trajectories(df),
        "layerwise-tradeoff": lambda: dynamics.plot_layerwise(df, reps, unit),
        "perturbation-recovery": lambda: dynamics.plot_perturbation(df, options),
        "influence-norms": lambda: dynamics.plot_influence(df),
    }


def write_figures(df: pd.DataFrame, out_dir: str | Path, options: dict[str, dict] | None = None,
                  targets: report.Target = None) -> list[str]:
    """Every figure as out_dir/NAME.png and NAME.pdf. Returns one line per figure: where it
    was written, or why it was skipped. `options`: per method, its suite options (for the
    perturbation figure); `targets`: see `bench.report.targets_for`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = report.targets_for(stats.final_losses(df), targets)
    lines = []
    with sns.axes_style("whitegrid"):
        for name, draw in figures(df, options or {}, targets).items():
            try:
                fig = draw()
            except Skip as why:
                lines.append(f"skipped {name}: {why}")
                continue
            for ext in ("png", "pdf"):
                fig.savefig(out_dir / f"{name}.{ext}", dpi=110)
            lines.append(f"wrote {out_dir / name}.png and .pdf")
    return lines
