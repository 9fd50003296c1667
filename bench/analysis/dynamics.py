"""Figures of online methods' dynamics: hyperparameter trajectories, the layerwise trade-off,
recovery after a perturbation, and influence norms. Columns: `hp_lr`, `hp_wd`,
`influence_lr`, ... for one global set of hyperparameters; `hp_lr_0`, `hp_lr_1`, ... with
layer groups."""

from __future__ import annotations

import re

import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.analysis import stats
from bench.analysis.figkit import NOT_REACHED, Skip, figure_legend, grid, set_scale
from bench.vocabulary import ONLINE, POPULATION

HP_LABELS = {"lr": "learning rate", "wd": "weight decay"}  # axis labels; others: the name


def tuned_kinds(df: pd.DataFrame) -> list[str]:
    """The hyperparameters that move within a trial (`hp_<name>`, or per group
    `hp_<name>_<k>`): lr and wd first, then the rest by name."""
    found = set()
    for column in df.columns:
        match = re.fullmatch(r"hp_(.+?)(_\d+)?", column)
        if not match or not pd.api.types.is_numeric_dtype(df[column]):
            continue
        per_trial = df.groupby(["repetition", "trial"])[column]
        if (per_trial.nunique() > 1).any():
            found.add(match.group(1))
    return sorted(found, key=lambda k: (k not in HP_LABELS, list(HP_LABELS).index(k)
                                        if k in HP_LABELS else 0, k))


def online_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of online methods; in tables written before optimizer families (optimizer "-"),
    of the methods that recorded hypergradients (hg_*)."""
    online = df["optimizer"] == ONLINE
    hg = [c for c in df.columns if c.startswith("hg_")]
    if (df["optimizer"] == "-").any() and hg:
        with_hg = df.groupby("method")[hg].transform(lambda c: c.notna().any()).any(axis=1)
        online |= (df["optimizer"] == "-") & with_hg
    return df[online]


def group_columns(df: pd.DataFrame, prefix: str) -> list[str]:
    """Columns `prefix`, or `prefix_0`, `prefix_1`, ..., that hold values, in group order."""
    cols = [c for c in df.columns if c == prefix or re.fullmatch(rf"{prefix}_\d+", c)]
    cols = [c for c in cols if df[c].notna().any()]
    return sorted(cols, key=lambda c: -1 if c == prefix else int(c.rsplit("_", 1)[1]))


def long_form(df: pd.DataFrame, cols: list[str], prefix: str) -> pd.DataFrame:
    """Rows (task, method, repetition, epoch, name, value); name: the column less `prefix`."""
    out = df.melt(id_vars=["task", "method", "repetition", "epoch"], value_vars=cols,
                  var_name="name", value_name="value").dropna(subset=["value"])
    return out.assign(name=out["name"].str.removeprefix(prefix),
                      repetition=out["repetition"].astype(str))


MANY_REPETITIONS = 10  # above: thin lines and their median, not a color per repetition
MARKED_EPOCHS = 50  # above: lines without markers


def lines(ax: Axes, data: pd.DataFrame, by_group: bool, palette: str = "viridis") -> str:
    """One line per repetition (and group), colored by group (`palette`) when there are
    several, else by repetition; past MANY_REPETITIONS, thin grey lines with their median per
    epoch. Returns the legend's title."""
    reps = data["repetition"].nunique()
    style = ({"lw": 0.8, "alpha": 0.6} if reps > MANY_REPETITIONS else {"lw": 1.2}
             if data["epoch"].nunique() > MARKED_EPOCHS else {"marker": "o", "markersize": 3})
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if by_group:
        sns.lineplot(data=data, x="epoch", y="value", hue="name", units="repetition",
                     estimator=None, ax=ax, palette=palette, **style)
        return "group (a line per repetition)"
    if reps <= MANY_REPETITIONS:
        sns.lineplot(data=data, x="epoch", y="value", hue="repetition", estimator=None, ax=ax,
                     palette="tab10", **style)
        return "repetition"
    sns.lineplot(data=data, x="epoch", y="value", units="repetition", estimator=None, ax=ax,
                 color="0.55", lw=0.6, alpha=0.5)
    ax.plot([], [], color="0.55", lw=0.6, label="one repetition")
    median = data.groupby("epoch")["value"].median()
    ax.plot(median.index, median.to_numpy(), color="C0", lw=2.2, label="median per epoch")
    return f"{reps} repetitions"


def per_method(df: pd.DataFrame):
    """(task, method, rows) of each online method."""
    return [(t, m, g) for (t, m), g in online_rows(df).groupby(["task", "method"])]


def plot_hp_trajectories(df: pd.DataFrame) -> Figure:
    """Every tuned hyperparameter (`tuned_kinds`: lr, wd, momentum, ...) against epoch: of
    online methods, a line per repetition (and group); of population-based training (PBT,
    PB2), the schedules it found, a line per member of the first repetition, with an x where a
    member copied a better one."""
    panels = [(t, m, g, kind, cols) for t, m, g in per_method(df) for kind in tuned_kinds(g)
              if (cols := group_columns(g, f"hp_{kind}"))]
    members = [(t, e, g, kind) for t, e, g in per_population(df) for kind in tuned_kinds(g)
               if f"hp_{kind}" in g and g[f"hp_{kind}"].notna().any()]
    if not panels and not members:
        raise Skip("no online method or population moved a hyperparameter")
    fig, axes = grid(len(panels) + len(members))
    for ax, (task, method, g, kind, cols) in zip(axes, panels, strict=False):
        data = long_form(g, cols, f"hp_{kind}_" if len(cols) > 1 else f"hp_{kind}")
        title = lines(ax, data, len(cols) > 1)
        set_scale(ax, "y", data["value"])
        ax.set(title=f"{task} · {method}", xlabel="epoch", ylabel=HP_LABELS.get(kind, kind))
        ax.legend(title=title, fontsize="small", title_fontsize="small")
    for ax, (task, entry, g, kind) in zip(axes[len(panels):], members, strict=True):
        column = f"hp_{kind}"
        sns.lineplot(data=g, x="epoch", y=column, hue="trial", estimator=None, ax=ax,
                     palette="tab10", marker="o", markersize=3)
        if "cloned_from" in g and (copied := g[g["cloned_from"].notna()]).size:
            ax.scatter(copied["epoch"], copied[column], marker="x", color="black", zorder=3,
                       label="copied a better member")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        set_scale(ax, "y", g[column])
        ax.set(title=f"{task} · {entry} (rep 1)", xlabel="epoch",
               ylabel=HP_LABELS.get(kind, kind))
        ax.legend(title="member", fontsize="small", title_fontsize="small")
    return fig


def per_population(df: pd.DataFrame):
    """(task, entry, rows of its first repetition) of each population-based search."""
    if "scheduler" not in df:
        return []
    rows = df[df["scheduler"].isin(POPULATION)]
    return [(t, f"{m} · {o}", g[g["repetition"] == g["repetition"].min()])  # m: "random · pbt"
            for (t, m, o), g in rows.groupby(["task", "method", "optimizer"])]


def groups_of(df: pd.DataFrame) -> pd.DataFrame:
    """Per online entry: groups, its number K of hyperparameter groups (hp_lr_* columns with
    values; 1 with hp_lr alone)."""
    rows = [{"task": t, "method": m, "optimizer": o,
             "groups": 1 if cols == ["hp_lr"] else len(cols)}
            for (t, m, o), g in online_rows(df).groupby(stats.ENTRY)
            if (cols := group_columns(g, "hp_lr"))]
    return pd.DataFrame(rows, columns=[*stats.ENTRY, "groups"])


def plot_layerwise(df: pd.DataFrame, reps: pd.DataFrame, unit: str = "SGD-epochs") -> Figure:
    """Final test loss and compute (in `unit`) against the number K of hyperparameter groups, on
    tasks where online entries differ in K. Variants of one method (oho, oho[groups=2]) are
    one line: the median per K."""
    k = groups_of(df)
    data = reps.merge(k, on=stats.ENTRY)
    data = data.assign(family=data["method"].str.split("[", n=1).str[0])
    tasks = [t for t, g in data.groupby("task") if g["groups"].nunique() > 1]
    if not tasks:
        found = ", ".join(map(str, sorted(k["groups"].unique()))) or "none"
        raise Skip(f"every online entry has the same number of hyperparameter groups "
                   f"(K = {found})")
    fig = Figure(figsize=(12, 3.9 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for row, task in zip(axes, tasks, strict=True):
        g = data[data["task"] == task]
        for ax, y, label in ((row[0], "final_test_loss", "final test loss"),
                             (row[1], "compute", f"compute per repetition ({unit})")):
            sns.lineplot(data=g, x="groups", y=y, hue="family", estimator="median",
                         errorbar=None, marker="o", markersize=8, ax=ax)
            sns.scatterplot(data=g, x="groups", y=y, hue="family", ax=ax, alpha=0.5,
                            legend=False)
            set_scale(ax, "y", g[y])
            ax.set_xticks(sorted(g["groups"].unique()))
            ax.set(title=task, xlabel="hyperparameter groups K", ylabel=label)
    figure_legend(fig, axes, title="method\n(line: median,\npoints: repetitions)")
    return fig


def plot_perturbation(df: pd.DataFrame, options: dict[str, dict]) -> Figure:
    """For methods run with perturb_epochs: lr and test loss against epoch, a line per
    repetition; a dashed line where each perturbation acts (as its epoch starts, i.e. after
    the record of the epoch before)."""
    perturbed = {m: o["perturb_epochs"] for m, o in options.items() if o.get("perturb_epochs")}
    pairs = [(t, m, g) for t, m, g in per_method(df) if m in perturbed]
    if not pairs:
        raise Skip("no method was run with perturb_epochs")
    fig = Figure(figsize=(12, 3.9 * len(pairs)), layout="constrained")
    axes = fig.subplots(len(pairs), 2, squeeze=False)
    for row, (task, method, g) in zip(axes, pairs, strict=True):
        cols = group_columns(g, "hp_lr")
        lr = long_form(g, cols, "hp_lr_" if len(cols) > 1 else "hp_lr")
        for ax, data, label in ((row[0], lr, "learning rate"),
                                (row[1], long_form(g, ["test_loss"], ""), "test loss")):
            title = lines(ax, data, data["name"].nunique() > 1)
            epochs = perturbed[method]
            for i, e in enumerate(epochs):
                ax.axvline(e - 1, ls="--", color=NOT_REACHED, lw=1.2, label=None if i else
                           f"perturbed as epoch {', '.join(map(str, epochs))} starts")
            set_scale(ax, "y", data["value"])
            ax.set(title=f"{task} · {method}", xlabel="epoch", ylabel=label)
            ax.legend(title=title, fontsize="small", title_fontsize="small")
    return fig


def plot_influence(df: pd.DataFrame) -> Figure:
    """Norm of each influence vector (influence_lr, influence_wd, influence_lr_0, ...) against
    epoch, a line per hyperparameter and repetition."""
    def norms(g: pd.DataFrame) -> list[str]:
        return [c for c in g.columns if c.startswith("influence_") and c != "influence_resets"
                and g[c].notna().any()]

    panels = [(t, m, g) for t, m, g in per_method(df) if norms(g)]
    if not panels:
        raise Skip("no forward method recorded influence norms")
    fig, axes = grid(len(panels))
    for ax, (task, method, g) in zip(axes, panels, strict=True):
        data = long_form(g, norms(g), "influence_")
        lines(ax, data, True, palette="tab10")
        set_scale(ax, "y", data["value"])
        ax.set(title=f"{task} · {method}", xlabel="epoch", ylabel="influence norm ‖dw/dλ‖")
        ax.legend(title="hyperparameter\n(a line per repetition)", fontsize="small",
                  title_fontsize="small")
    return fig
