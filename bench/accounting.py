"""A run's accounting, from its journals: each experiment's row of run.json (its trials, start
and end, wall-clock, the seconds its trials held a slot, the searcher's own time) and the run's
slot utilization. The seconds a slot sat free before each trial are `report.slot_waits`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from bench import journal
from bench.experiment import Experiment


def experiment_result(run_dir: Path, exp: Experiment, resumed: bool) -> tuple[dict, list[dict]]:
    """The experiment's row of run.json and its records, from its journal."""
    records, ended = experiment_records(run_dir, exp)
    trials = ended.trials()
    start = ended.start
    end = max((t["end"] for t in trials if t.get("end")), default=None)
    wall = end - start if start is not None and end is not None else math.nan
    return {"task": exp.task, "method": exp.method, "optimizer": exp.optimizer,
            "scheduler": exp.scheduler.name, "repetition": exp.repetition, "name": exp.name,
            "resumed": resumed,
            "search_error": ended.search_error,
            "earlier_search_errors": ended.earlier_search_errors,  # of rounds started over
            "start": start, "end": end, "wall_seconds": wall,
            "trial_seconds": trial_seconds(records, trials),
            "searcher_seconds_per_trial": (ended.searcher_seconds / len(trials) if trials
                                           else math.nan),
            "trials": trials}, records


def utilization(info: dict, timestamps: Iterable[float] = ()) -> dict:
    """Over the run's live wall-clock (its sessions, the gaps between an interrupted session and
    its resume left out; `timestamps`: its records', which show how long a session went on):
    trial-seconds, the mean number of trials running and the share of the cluster's slots they
    used."""
    wall = live_seconds(info, timestamps)
    busy = sum(e["trial_seconds"] for e in info["experiments"])
    return {"wall_seconds": wall, "trial_seconds": busy, "slots": info["slots"],
            "mean_running": busy / wall if wall > 0 else math.nan,
            "slot_utilization": busy / (info["slots"] * wall) if wall > 0 else math.nan}


def live_seconds(info: dict, timestamps: Iterable[float] = ()) -> float:
    """The seconds the run's sessions lasted: from the start, and from each resume, to the
    last record, trial start or end seen before the next resume (an interrupted session leaves
    no end of its own), the last session to `finished`."""
    starts = [info["started"], *info.get("resumed", [])]
    events = [*timestamps, *(t for e in info["experiments"] for trial in e.get("trials", [])
                             for t in (trial.get("start"), trial.get("end")) if t is not None)]
    total = 0.0
    for begin, following in zip(starts, [*starts[1:], None], strict=True):
        if following is None:
            total += info["finished"] - begin
            continue
        seen = [t for t in events if begin <= t < following]
        total += (max(seen) if seen else begin) - begin
    return total


def trial_seconds(records: list[dict], trials: list[dict]) -> float:
    """Seconds an experiment's trials held a slot: each attempt's stretch from its start to its
    last record (a paused population member, or a trial a resumed run continued, ran in
    several). A trial whose records predate `attempt_start` counts from its start to its end."""
    attempts: dict[tuple, float] = {}
    for r in records:
        if r.get("attempt_start") is not None:
            key = (r["trial"], r["attempt_start"])
            attempts[key] = max(r["timestamp"], attempts.get(key, -math.inf))
    timed = {trial for trial, _ in attempts}
    return (sum(end - start for (_, start), end in attempts.items())
            + sum(t["end"] - t["start"] for t in trials
                  if t["trial"] not in timed and t.get("start") and t.get("end")))


def scheduling_line(s: dict) -> str:
    return (f"scheduling: {s['slots']} slots, mean {s['mean_running']:.2f} trials running, "
            f"slot utilization {s['slot_utilization']:.0%} over {s['wall_seconds']:.1f} s")


def experiment_records(run_dir: Path, exp: Experiment) -> tuple[list[dict], journal.Journal]:
    """(records of the trials of experiment `exp` that ended, its journal); records carry the
    experiment's start time, and its scheduler where a journal from before schedulers were
    recorded (a resumed run) lacks it."""
    records, kept = journal.ended_rows(journal.path_of(run_dir, exp.name))
    for record in records:
        record.setdefault("scheduler", exp.scheduler.name)
    return records, kept
