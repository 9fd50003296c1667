"""`ohobench status`: how far a run has come, read from its journals while it runs or after it
stopped. Per entry: trials ended and training, epochs and SGD-epochs (bench.compute) done
against the plan, then the run's pace over the last hour (or since its latest start or
resume, when later) and, at that pace, the time left.

The plan is an upper bound where a scheduler stops trials early (ASHA, Hyperband) or a trial
diverges: those trials end before their last epoch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import compute, journal, results
from bench import suite as suites
from bench.experiment import Experiment, plan
from bench.runlock import holder

PACE_WINDOW = 3600.0  # seconds: the pace is the last hour's


@dataclass
class Progress:
    """One entry (task, method, optimizer) of a run, its repetitions summed."""

    task: str
    entry: str
    trials: int = 0  # planned
    ended: int = 0
    training: int = 0  # begun, not ended
    epochs: int = 0  # done (distinct epochs recorded, every attempt's latest)
    planned_epochs: int = 0
    sgd_epochs: float = 0.0
    planned_sgd_epochs: float = 0.0
    recent_sgd_epochs: float = 0.0  # recorded since `pace_since`


def progress(run_dir: Path, now: float | None = None) -> tuple[dict, list[Progress]]:
    """(run.json, per-entry progress) of `run_dir`."""
    now = time.time() if now is None else now
    where = str(Path(run_dir) / results.RUN_JSON)
    info = results.read_run(run_dir, what="status")
    since = pace_since(info, now)
    chosen = suites.build(results.suite_values(info), where=where, need_data=False)
    per_epoch = {(c.task, c.training): c.sgd_epochs for c in compute.run_costs(info, where)}
    table = (per_experiment(results.load(run_dir)[0])
             if (Path(run_dir) / results.TABLE).is_file() else None)
    rows: dict[tuple[str, str], Progress] = {}
    for e in plan(chosen):
        row = rows.setdefault((e.task, e.entry), Progress(e.task, e.entry))
        cost = per_epoch[e.task, compute.training_of(e.method, e.optimizer)]
        epochs = chosen.epochs_for(e.task)
        trials, ended = kept(Path(run_dir), e, table)
        row.trials += e.budget
        row.planned_epochs += e.budget * epochs
        row.planned_sgd_epochs += e.budget * epochs * cost
        row.ended += len(ended)
        row.training += len(set(trials) - ended)
        for records in trials.values():
            done = {r["epoch"]: r.get("timestamp", 0.0) for r in records}
            row.epochs += len(done)
            row.sgd_epochs += len(done) * cost
            row.recent_sgd_epochs += cost * sum(t >= since for t in done.values())
    return info, list(rows.values())


EXPERIMENT = ["task", "method", "optimizer", "scheduler", "repetition"]  # a table's search


def per_experiment(df: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """A finished run's records by experiment (EXPERIMENT), grouped once."""
    return {key: g for key, g in df.groupby(EXPERIMENT, sort=False)}


def kept(run_dir: Path, e: Experiment, table: dict[tuple, pd.DataFrame] | None
         ) -> tuple[dict[int, list[dict]], set[int]]:
    """An experiment's records per trial, and the trials that ended: from the finished run's
    table when there is one (a published copy keeps no journals), else from its journal."""
    if table is None:
        found = journal.read(journal.path_of(run_dir, e.name))
        return found.records, set(found.summaries)
    mine = table.get((e.task, e.method, e.optimizer, e.scheduler.name, e.repetition))
    trials = {} if mine is None else {int(t): g[["epoch", "timestamp"]].to_dict("records")
                                      for t, g in mine.groupby("trial")}
    return trials, set(trials)


def pace_since(info: dict, now: float) -> float:
    """Where the pace is measured from: an hour ago, or the run's latest start or resume when
    that is later (the time before it, the run was down)."""
    return max(now - PACE_WINDOW, info.get("started") or 0.0, *(info.get("resumed") or []))


def describe(run_dir: Path, now: float | None = None) -> str:
    """The status of `run_dir` in a table and a few lines."""
    now = time.time() if now is None else now
    info, rows = progress(run_dir, now)
    table = [{"task": r.task, "entry": r.entry,
              "trials ended / planned": f"{r.ended:,} / {r.trials:,}",
              "begun, not ended": r.training,
              "epochs done / planned": f"{r.epochs:,} / {r.planned_epochs:,}",
              "SGD-epochs done / planned": f"{r.sgd_epochs:,.0f} / {r.planned_sgd_epochs:,.0f}"}
             for r in rows]
    done = sum(r.sgd_epochs for r in rows)
    planned = sum(r.planned_sgd_epochs for r in rows)
    window = now - pace_since(info, now)
    pace = sum(r.recent_sgd_epochs for r in rows) * 3600.0 / window if window > 0 else 0.0
    lines = [f"{run_dir}: {info['suite'].get('name') or 'suite'}",
             pd.DataFrame(table).to_string(index=False) if table else "(no experiments)"]
    share = f"{done:,.0f} of at most {planned:,.0f} SGD-epochs ({done / planned:.0%})" \
        if planned else "nothing planned"
    driver = holder(run_dir)
    if info.get("finished"):
        lines.append(f"finished: {share}")
    elif driver is not None:
        left = (planned - done) / pace if pace > 0 else math.inf
        lines.append(f"running ({driver}): {share}; {pace:,.0f} SGD-epochs an hour over the last "
                     f"{window / 60:.0f} min" + (f", at which about {left:.1f} h are left (less "
                                                 "where trials end early)"
                                                 if math.isfinite(left) else ""))
    else:
        lines.append(f"stopped before its end: {share}; continue with `ohobench run --resume "
                     f"{run_dir}`")
    return "\n".join(lines)

