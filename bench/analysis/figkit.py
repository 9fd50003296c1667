"""Shared pieces of the figures: entry labels and order, scales, grids of axes, legends.

Figures are matplotlib Figure objects made directly (no pyplot state, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench import vocabulary
from bench.vocabulary import ONLINE

NOT_REACHED = "C3"


@contextmanager
def seeded_jitter(seed: int = 0) -> Iterator[None]:
    """seaborn's stripplot jitters with numpy's global generator: seed it for the figure, so a
    figure made twice is the same, and give back the caller's state after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class Skip(Exception):
    """The table has no data for this figure; the message says what is missing."""


def entry_label(method: str, optimizer: str) -> str:
    """An entry's name (bench.vocabulary.entry_label), its method options (`oho[groups=2]`)
    on a second line."""
    return vocabulary.entry_label(method.replace("[", "\n[", 1), optimizer)


def with_entry(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with an `entry` label column, rows in `entry_order`."""
    out = df.assign(entry=[entry_label(m, o) for m, o in zip(df["method"], df["optimizer"],
                                                              strict=True)])
    order = {e: i for i, e in enumerate(entry_order(out))}
    return out.iloc[np.argsort(out["entry"].map(order).to_numpy(), kind="stable")]


def entry_order(df: pd.DataFrame) -> list[str]:
    """Black-box entries first, then online ones, each alphabetical: the same in every
    figure."""
    pairs = df[["method", "optimizer"]].drop_duplicates()
    keys = sorted((o == ONLINE, entry_label(m, o)) for m, o in pairs.itertuples(index=False))
    return [label for _, label in keys]


def palette(entries: list[str]) -> dict[str, tuple]:
    """A distinct color per entry: tab10 up to ten entries, else evenly spaced hues."""
    colors = sns.color_palette("tab10" if len(entries) <= 10 else "husl", len(entries))
    return dict(zip(entries, colors, strict=True))


def side_by_side(x: np.ndarray, step: float = 0.04) -> np.ndarray:
    """Positions on a log axis with points closer than a factor 1 + step spread apart by that
    factor around their middle, so that points at (nearly) one value do not hide each other."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    out, group = x.copy(), [order[0]] if len(x) else []
    for i in [*order[1:], None]:
        if i is not None and x[i] < x[group[-1]] * (1 + step):
            group.append(i)
            continue
        for k, j in enumerate(group):
            out[j] = x[j] * (1 + step) ** (k - (len(group) - 1) / 2)
        group = [i]
    return out


def set_scale(ax: Axes, axis: str, values) -> None:
    """Log scale when the positive values span more than a decade (symlog, from zero, when
    zeros sit among them); otherwise linear, with scientific labels for tiny or huge values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    if len(pos) == 0 or (v < 0).any() or pos.max() <= 10 * pos.min():
        ax.ticklabel_format(axis=axis, style="sci", scilimits=(-3, 4))
        return
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    if (v == 0).any():  # linear near zero, log over the top three decades at most
        floor = max(pos.min(), pos.max() * 1e-3)
        setter("symlog", linthresh=10.0 ** math.floor(math.log10(floor)), linscale=0.5)
        (ax.set_xlim if axis == "x" else ax.set_ylim)(0, None)
        return
    setter("log")
    if pos.max() <= 100 * pos.min():
        readable_log_ticks(ax.xaxis if axis == "x" else ax.yaxis)


def readable_log_ticks(axis, subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
    """For a log axis over two decades or less: ticks at `subs` times powers of ten,
    labelled as plain numbers (matplotlib's minor labels overlap there)."""
    axis.set_major_locator(ticker.LogLocator(subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def grid(n: int, ncols: int = 2, width: float = 5.5, height: float = 3.8
         ) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with n axes in rows of at most `ncols` (extras hidden)."""
    cols = min(n, ncols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def entries_height(df: pd.DataFrame) -> float:
    """Height of an axis that lists the entries on its y axis."""
    return max(2.5, 0.5 * df["entry"].nunique() + 1.3)


def figure_legend(fig: Figure, axes, title: str | None = None, order=None) -> None:
    """One legend for the figure, right of the axes, from every axis' labelled artists (each
    label once; `order`: a key that sorts the labels, else as they come); the axes' own
    legends are removed."""
    found: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    labels = sorted(found, key=order) if order else list(found)
    fig.legend([found[k] for k in labels], labels, loc="outside right upper", title=title,
               fontsize="small")
