"""Analysis of results tables (one row per task, method, optimizer, repetition, trial, epoch).

    from bench import analysis
    df, meta = analysis.load_runs(["results/RUN_A", "results/RUN_B"])
    ttt = analysis.time_to_target(df)                       # per repetition, `reached`
    dist = analysis.distribution(analysis.final_losses(df))  # median / IQM with bootstrap CIs
    band = analysis.anytime_band(analysis.anytime_curves(df))
    profile = analysis.performance_profile(analysis.entry_times(ttt))
    analysis.write_figures(df, "figures/", meta["options"])

Figures live in `bench.analysis.plots` (imported on use: it needs matplotlib and seaborn).
"""

from bench.analysis.anytime import anytime_band, anytime_curves, best_of_k, time_grid, value_at
from bench.analysis.runs import is_run_dir, load_runs
from bench.analysis.stats import (
    bootstrap_ci,
    distribution,
    entry_times,
    final_losses,
    iqm,
    mean_ranks,
    performance_profile,
    performance_ratios,
    time_to_target,
)
from bench.report import default_targets, targets_for


def write_figures(df, out_dir, options=None, targets=None) -> list[str]:
    """See bench.analysis.plots.write_figures."""
    # matplotlib and seaborn (~1 s): only figures need them
    from bench.analysis.plots import write_figures as write

    return write(df, out_dir, options, targets)


__all__ = ["anytime_band", "anytime_curves", "best_of_k", "bootstrap_ci", "default_targets",
           "distribution", "entry_times", "final_losses", "iqm", "is_run_dir", "load_runs",
           "mean_ranks", "performance_profile", "performance_ratios", "targets_for", "time_grid",
           "time_to_target", "value_at", "write_figures"]
