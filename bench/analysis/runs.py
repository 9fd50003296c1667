"""Several run directories as one results table.

Runs are refused (ConfigError, one line naming the runs) when they
- hold the same task under a different definition: suite seed (which is the data seed), epochs,
  batch size or validation batch size;
- state different explicit targets for a task (unless the caller passes one target for all);
- hold the same (task, method, optimizer, repetition). Runs can only be combined when they
  share the suite seed, and the same seed gives a repetition the same search and model seeds:
  a second copy is the same experiment again, not a new sample, so it is refused rather than
  renumbered.
A method whose options differ between runs on one task (e.g. oho, and oho with groups = 2)
becomes one entry per variant: `oho` for no options, else `oho[groups=2]`; one set per task
keeps the name. A search under a scheduler other
than fifo is an entry of its own, `optuna-tpe · asha` (bench.report.entries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench import compute, report, results
from bench.errors import ConfigError
from bench.vocabulary import method_label

# Columns the report reads; the rest may be missing (e.g. from an older ohobench).
REQUIRED = [*results.KEY, "val_loss", "test_loss", "train_seconds_cum", "search_seconds"]
DEFINITION = ("seed", "epochs", "batch_size", "val_batch_size")  # what makes a task the same


def is_run_dir(path: Path) -> bool:
    """A run's directory: run.json, and its table or (a run still going, or stopped before
    its end) its journals."""
    return (path / results.RUN_JSON).is_file() and (
        (path / results.TABLE).is_file() or (path / "journal").is_dir())


def load_runs(run_dirs: Sequence[str | Path], target: float | None = None,
              unit: str = compute.FLOPS) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The records of all runs in one table, with a `run` column (the directory as given),
    its `compute` clock in `unit` (bench.compute; SGD-epochs counted in FLOPs by default, as
    the CLI's `--compute`), and what the report needs: runs, targets
    (explicit ones, per task), options (per method label), settings (per task, per method
    label, its options) and overhead (Ray's per trial, per entry)."""
    compute.check_unit(unit)
    names = [str(d) for d in run_dirs]
    if not names:
        raise ConfigError("no run directory given")
    twice = sorted({n for n in names if names.count(n) > 1})
    bad = [n for n in names if not is_run_dir(Path(n))]
    if twice or bad:
        raise ConfigError([f"run {n!r} is given twice" for n in twice] + [
            f"{n!r} is not a run directory: it needs {results.RUN_JSON} and {results.TABLE} "
            "(or, unfinished, journal/)" for n in bad])
    loaded = {n: read(n) for n in names}
    if unit == compute.CALIBRATED:
        compute.calibration_devices({n: info for n, (_, info) in loaded.items()})
    suites = {n: info.get("suite", {}) for n, (_, info) in loaded.items()}
    tasks = {n: set(df["task"].unique()) | set(suites[n].get("tasks", []))
             for n, (df, _) in loaded.items()}
    check_definitions({n: info for n, (_, info) in loaded.items()}, tasks)
    targets = {} if target else explicit_targets(suites, tasks)
    labels = method_labels(suites, tasks)
    frames, options, settings, overhead, raised = [], {}, {}, {}, set()
    for n, (df, info) in loaded.items():
        label = labels[n]
        df = compute.in_unit(df, info, unit, where=f"{n}/{results.RUN_JSON}")
        frames.append(report.entries(df.assign(method=df["method"].replace(label), run=n)))
        options.update({label.get(m, m): o for m, o in suites[n].get("options", {}).items()})
        for task in sorted(tasks[n]):
            settings.setdefault(task, {}).update(
                {label.get(m, m): o for m, o in suites[n].get("options", {}).items() if o})
        overhead.update(report.overhead_by_method(info, label))
        raised |= {(e["task"], method_label(label.get(e["method"], e["method"]),
                                           e.get("scheduler")), e.get("optimizer", "-"),
                    e["repetition"])
                   for e in info.get("experiments", []) if e.get("search_error")}
    check_duplicates(frames)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df.attrs["compute_unit"] = compute.UNIT_NAMES[unit]  # figures name it
    unfinished = {n: int(df.groupby(["method", "optimizer", "repetition", "trial"]).ngroups)
                  for n, (df, info) in loaded.items() if not info.get("finished")}
    return df, {"runs": names, "unit": unit, "targets": targets, "options": options,
                "settings": settings,
                "overhead": overhead, "unfinished": unfinished, "raised": raised}


def read(run_dir: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    try:
        if (Path(run_dir) / results.TABLE).is_file():
            df, info = results.load(run_dir)
        else:  # not finished: the trials ended so far
            df = results.with_identity(results.interim_table(Path(run_dir)))
            info = results.read_run(run_dir)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or Parquet
        raise ConfigError(f"cannot read run {run_dir!r}: {exc}") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"cannot read run {run_dir!r}: its {results.TABLE} lacks the "
                          f"columns {', '.join(missing)}; it is not an ohobench table")
    return df, info


def definition(info: dict, task: str) -> dict[str, Any]:
    """What defines `task` in a run (read through results.read_run): the suite seed (the data
    seed), and the epochs and batch sizes the suite resolved."""
    resolved = info.get("tasks", {}).get(task, {})
    return {"seed": info.get("suite", {}).get("seed"),
            **{k: resolved.get(k) for k in DEFINITION if k != "seed"}}


def check_definitions(infos: dict[str, dict], tasks: dict[str, set[str]]) -> None:
    problems = []
    for task in sorted(set().union(*tasks.values())):
        first, *others = [n for n in infos if task in tasks[n]]
        want = definition(infos[first], task) if others else {}
        for n in others:
            got = definition(infos[n], task)
            diff = [f"{k} {want[k]} vs {got[k]}" for k in DEFINITION if want[k] != got[k]]
            if diff:
                problems.append(f"runs {first!r} and {n!r} define task {task} differently "
                                f"({', '.join(diff)})")
    if problems:
        raise ConfigError(problems)


def explicit_targets(suites: dict[str, dict], tasks: dict[str, set[str]]) -> dict[str, float]:
    """Per task, the target the runs holding it state; refused if two state different ones."""
    found: dict[str, tuple[str, float]] = {}
    problems = []
    for n, suite in suites.items():
        if suite.get("target") is None:
            continue
        for task in sorted(tasks[n]):
            if task in found and found[task][1] != suite["target"]:
                problems.append(f"runs {found[task][0]!r} and {n!r} disagree on the target of "
                                f"task {task} ({found[task][1]} vs {suite['target']}); pass "
                                "--target to compare them under one target")
            found.setdefault(task, (n, float(suite["target"])))
    if problems:
        raise ConfigError(problems)
    return {task: value for task, (_, value) in found.items()}


def method_labels(suites: dict[str, dict], tasks: dict[str, set[str]]
                  ) -> dict[str, dict[str, str]]:
    """Per run, method -> its label: the name, or name[options] when the method's options
    differ between the runs that hold it on the same task (a method tuned per task keeps its
    name, so the tasks can be compared by it)."""
    variants: dict[tuple[str, str], set[str]] = {}
    for n, suite in suites.items():
        for m in suite.get("methods", []):
            opts = _canonical(suite.get("options", {}).get(m, {}))
            for task in tasks[n]:
                variants.setdefault((task, m), set()).add(opts)
    labels = {}
    for n, suite in suites.items():
        labels[n] = {}
        for m in suite.get("methods", []):
            opts = suite.get("options", {}).get(m, {})
            if opts and any(len(variants[task, m]) > 1 for task in tasks[n]):
                shown = ", ".join(f"{k}={_value(v)}" for k, v in sorted(opts.items()))
                labels[n][m] = f"{m}[{shown}]"
    return labels


def check_duplicates(frames: list[pd.DataFrame]) -> None:
    seen: dict[tuple, str] = {}
    for df in frames:
        run = df["run"].iat[0] if len(df) else None
        keys = list(df[report.REP].drop_duplicates().itertuples(index=False, name=None))
        clashes = [(k, seen[k]) for k in keys if k in seen]
        if clashes:
            (task, method, optimizer, rep), other = clashes[0]
            more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
            raise ConfigError(
                f"runs {other!r} and {run!r} both hold {task} · {method} · {optimizer} "
                f"repetition {rep}{more}: with the same suite seed a repetition repeats the "
                "same seeds, so it would count twice; combine runs of different tasks or methods")
        seen.update(dict.fromkeys(keys, run))


def _canonical(options: dict) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, list | dict) else str(v)
