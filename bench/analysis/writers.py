"""What `ohobench report`, `horizon` and `verdict` write: the tables (CSV and Markdown, each
naming the runs it was made from and how compute was counted) and their figures. The CLI
computes, prints and calls these; notebooks and scripts can call them too."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import compute, report, results
from bench.analysis import horizon, verdict


def unit_suffix(unit: str) -> str:
    """What a file name gets for a compute unit: nothing for the default (flops)."""
    return "" if unit == "flops" else f"-{unit}"


def compute_note(unit: str, reach: str) -> str:
    says = {compute.FLOPS: "every epoch of a training (an online method, or a black-box "
                           "optimizer family) at its FLOPs over those of one plain SGD epoch of "
                           "the task (bench/compute.py); attempts lost to failures or "
                           "interruptions are not counted",
            compute.CALIBRATED: "every epoch of a training at its steps' seconds, timed side by "
                                "side on the run's device (`ohobench calibrate`), over plain "
                                "SGD's; lost attempts are not counted",
            compute.MEASURED: "training seconds as measured, lost attempts included; they move "
                              "with the machine's load"}
    return (f"Compute: {compute.UNIT_NAMES[unit]}: {says[unit]}. A target is reached "
            + ("when the choice's test loss first dips below it." if reach == "first-touch" else
               "from the first moment the choice's test loss stays at or below it to the end."))


def unfinished(run_dirs) -> list[str]:
    """The runs whose run.json does not say they finished: their tables hold the trials ended
    so far (bench.analysis.runs reads them from the journals)."""
    return [str(d) for d in run_dirs if not results.read_run(d).get("finished")]


def runs_line(run_dirs) -> str:
    going = set(unfinished(run_dirs))
    return "Runs: " + ", ".join(
        f"`{d}`" + (" (not finished: the trials it had ended)" if str(d) in going else "")
        for d in run_dirs)


def write_summary(out: Path, suffix: str, run_dirs, table: pd.DataFrame, unit: str,
                  reach: str, errored: list[str]) -> None:
    """summary{suffix}.csv and .md: the report's table, its runs, unit and target rule, and
    the searches that raised."""
    results.write_csv(table, out / f"summary{suffix}.csv")
    notes = "".join(f"\n- {line}" for line in errored)
    (out / f"summary{suffix}.md").write_text(
        f"# ohobench summary\n\n{runs_line(run_dirs)}\n\n{compute_note(unit, reach)}\n\n"
        + report.markdown_table(report.displayed(table))
        + (f"\n\nSearches that raised and ended early (their ended trials are above, counted "
           f"in `raised`, and left out of the default target):{notes}\n" if errored else ""))


def write_horizon(out: Path, name: str, run_dirs, table: pd.DataFrame, unit: str) -> None:
    """{name}.csv, .md, .png and .pdf: the horizon study (bench.analysis.horizon)."""
    # matplotlib and seaborn (~1 s): only the writers of figures need them
    from bench.analysis import plots

    results.write_csv(table, out / f"{name}.csv")
    (out / f"{name}.md").write_text(
        f"# ohobench horizon study\n\n{runs_line(run_dirs)}\n\n"
        + compute_note(unit, "sustained") + "\n\n"
        + report.markdown_table(horizon.displayed(table))
        + "\nTargets (the reference black-box entry's median final test loss at each budget):\n"
        + horizon.targets_note(table)
        + "\n\nWhere each entry's records come from:\n" + horizon.sources_note(table) + "\n")
    with plots.sns.axes_style("whitegrid"):
        fig = plots.plot_horizon(table)
        for ext in ("png", "pdf"):
            fig.savefig(out / f"{name}.{ext}", dpi=110)


def settings_note(settings: dict[str, dict[str, dict]]) -> str:
    """The options each method ran with, per task; the rest at their defaults."""
    lines = [f"- {task} · {label}: " + ", ".join(f"{k} = {v}" for k, v in sorted(opts.items()))
             for task, methods in sorted(settings.items())
             for label, opts in sorted(methods.items())]
    return ("\n## Settings\n\nThe options each method ran with, as its suite gave them (the "
            "others at their defaults, `ohobench list`):\n\n" + "\n".join(lines) + "\n"
            if lines else "")


def write_verdict(out: Path, suffix: str, run_dirs, unit: str, curves: pd.DataFrame,
                  verdicts: pd.DataFrame, pairs: pd.DataFrame, aggregate: pd.DataFrame,
                  profile: pd.DataFrame, settings: dict[str, dict[str, dict]] | None = None
                  ) -> None:
    """verdict{suffix}.md and .csv, verdict-paired, equal-compute (.csv, .png, .pdf) and,
    over several tasks, across-tasks (bench.analysis.verdict). `settings`: per task, each
    method's options as its suite gave them (load_runs), listed under the tables."""
    # matplotlib and seaborn (~1 s): only the writers of figures need them
    from bench.analysis import plots

    results.write_csv(curves, out / f"equal-compute{suffix}.csv")
    results.write_csv(verdicts, out / f"verdict{suffix}.csv")
    results.write_csv(pairs, out / f"verdict-paired{suffix}.csv")
    (out / f"verdict{suffix}.md").write_text(
        f"# ohobench verdict\n\n{runs_line(run_dirs)}\n\n"
        + compute_note(unit, "sustained").split(" A target")[0] + "\n\n"
        + report.markdown_table(verdict.displayed(verdicts)) + "\n" + verdict.NOTE + "\n"
        + ("\n## Online methods against each other, paired by initialization\n\n"
           + report.markdown_table(verdict.displayed_paired(pairs)) + "\n" + verdict.PAIRED_NOTE
           + "\n" if len(pairs) else "")
        + ("\n## Over the tasks\n\n" + report.markdown_table(verdict.displayed_across(aggregate))
           + "\n" + verdict.ACROSS_NOTE + "\n" if len(aggregate) else "")
        + settings_note(settings or {}))
    if len(aggregate):
        results.write_csv(aggregate, out / f"across-tasks{suffix}.csv")
        results.write_csv(profile, out / f"across-tasks-profile{suffix}.csv")
    colors = plots.verdict_palette(curves)  # the same color for an entry in both figures
    figures = {"equal-compute": lambda: plots.plot_equal_compute(
        curves, compute.UNIT_NAMES[unit], colors)}
    if len(aggregate):
        figures["across-tasks"] = lambda: plots.plot_across_tasks(aggregate, profile, colors)
    with plots.sns.axes_style("whitegrid"):
        for name, draw in figures.items():
            fig = draw()
            for ext in ("png", "pdf"):
                fig.savefig(out / f"{name}{suffix}.{ext}", dpi=110)
