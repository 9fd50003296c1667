"""An experiment's journal: every event the driver sees, appended as one JSON line.

It is what survives a killed driver. `ohobench run --resume` rebuilds the records of an
unfinished experiment from it, and hands the trials it shows finished to Ray Tune's restored
experiment so that they are replayed, not retrained. A last line cut short by a crash (no
newline) is cut off before a resume appends (`repair_tail`). Anything else that loses an event
is named, never dropped quietly (`Journal.damage`): a line that is not JSON, or an ended
trial with an epoch missing; a resume starts such an experiment over.

Events, one per line:
- {"event": "start", "time": t}: when the experiment's first trial started (the earliest such
  event counts; a resumed run may add later ones);
- {"event": "result", "trial": i, "record": {...}} for each epoch; an epoch-1 result starts a
  new attempt of trial i and drops the records of its earlier one; a result for an epoch
  trial i had already reported continues it from an earlier checkpoint (a restored driver's
  snapshot can be older than the journal) and drops its records from that epoch on;
- {"event": "recover", "trial": i, "error": "...", "time": t} when Ray retries trial i after
  it failed at time t (the attempt then continues from its latest checkpoint, if any);
- {"event": "end", "trial": i, "summary": {...}} when trial i has ended (completed, stopped,
  diverged or errored), or was cut short by an interruption (status "interrupted": it has not
  ended, and a resumed run trains it again);
- {"event": "searcher", "call": "suggest" or "observe", "seconds": s}: the search's time in
  one call, in the driver;
- {"event": "search_error", "error": "...", "traceback": "..."}: the search raised (one line,
  and the whole traceback); the experiment proposes no more trials and counts as errored;
- {"event": "retry", "errors": [...]}: the first line of an experiment that a resume started
  over, from scratch, because its search had raised (the errors of the earlier rounds, whose
  journals are kept under journal/retried/).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INTERRUPTED = "interrupted"  # the status of a trial cut short by an interruption


def path_of(run_dir: Path, experiment: str) -> Path:
    """Where a run keeps an experiment's journal."""
    return run_dir / "journal" / f"{experiment}.jsonl"


def append(path: Path, event: dict[str, Any], durable: bool = False) -> None:
    """Append one event; `durable` waits until it is on disk (for trial ends)."""
    line = json.dumps(event, default=str, allow_nan=True) + "\n"
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        if durable:
            os.fsync(fh.fileno())


@dataclass
class Journal:
    """What a journal holds: per trial index, the records of its latest attempt and, once it
    ended, its summary."""

    start: float | None = None  # when the experiment's first trial started
    records: dict[int, list[dict]] = field(default_factory=dict)
    summaries: dict[int, dict] = field(default_factory=dict)
    failures: dict[int, list[str]] = field(default_factory=dict)  # errors of retried attempts
    # Training seconds of attempts that did not count (failed, or cut by a dead driver).
    lost_seconds: dict[int, float] = field(default_factory=dict)
    searcher_seconds: float = 0.0  # the search's own time, its suggest and observe calls
    interrupted: set[int] = field(default_factory=set)  # cut short, not trained again yet
    search_error: str | None = None  # the search raised: the experiment ended errored
    earlier_search_errors: list[str] = field(default_factory=list)  # of rounds started over
    retried: bool = False  # a resume started this experiment over (a `retry` event)
    bad_lines: list[int] = field(default_factory=list)  # not JSON (1-based), but a torn last

    def damage(self) -> str | None:
        """What this journal lost, in words, or None: lines that are not JSON, and ended
        trials with epochs missing from their records."""
        found = [f"line {n} is not JSON" for n in self.bad_lines]
        for i in sorted(self.summaries):
            epochs = [r.get("epoch", 0) for r in self.records.get(i, [])]
            missing = sorted(set(range(1, max(epochs, default=0) + 1)) - set(epochs))
            if missing:
                found.append(f"trial {i} ended with no record of epoch "
                             f"{', '.join(map(str, missing))}")
        return "; ".join(found) or None

    def ended_records(self) -> list[dict]:
        """Records of the trials that ended, each with `retry_seconds`: the training seconds
        its trial had lost to failed attempts before that record (the search paid for them
        too). A record from before a failure that its trial continued after has none."""
        return [dict(r) for i in sorted(self.summaries) for r in self.records.get(i, [])]

    def trials(self) -> list[dict]:
        return [self.summaries[i] for i in sorted(self.summaries)]

    def replay(self) -> dict[int, dict]:
        """Trials that ended without an error, keyed by index: what a resumed experiment
        reports again instead of training them."""
        return {i: {"seed": s["seed"], "hparams": s["hparams"], "records": self.records.get(i, [])}
                for i, s in self.summaries.items() if not s.get("error")}


def read(path: Path) -> Journal:
    journal = Journal()
    if not path.exists():
        return journal
    partial: dict[int, float] = {}  # trial -> seconds into the epoch its failed attempt was
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError
        except ValueError:  # a torn last line (no newline: a killed driver's) is no damage
            if number < len(lines) or text.endswith("\n"):
                journal.bad_lines.append(number)
            continue
        i = event.get("trial")
        if event.get("event") == "start":  # the earliest trial start journaled
            journal.start = min(event["time"], journal.start or event["time"])
        elif event.get("event") == "result":
            record, earlier = event["record"], journal.records.get(i, [])
            epoch = record.get("epoch", 0)
            lost = partial.pop(i, 0.0)  # of an attempt that failed mid-epoch
            if epoch == 1 or i in journal.summaries:  # a new attempt
                if earlier and earlier[0].get("trial_start") != record.get("trial_start"):
                    lost += max(r.get("train_seconds_cum", 0.0) for r in earlier)  # no replay
                journal.records[i] = []
                journal.summaries.pop(i, None)
            elif earlier and epoch <= earlier[-1].get("epoch", 0):  # from an older checkpoint
                lost += sum(r.get("train_seconds", 0.0) for r in earlier
                            if r.get("epoch", 0) >= epoch)
                journal.records[i] = [r for r in earlier if r.get("epoch", 0) < epoch]
            if lost:
                journal.lost_seconds[i] = journal.lost_seconds.get(i, 0.0) + lost
            journal.interrupted.discard(i)
            journal.records.setdefault(i, []).append(
                dict(record, retry_seconds=journal.lost_seconds.get(i, 0.0)))
        elif event.get("event") == "searcher":
            journal.searcher_seconds += event["seconds"]
        elif event.get("event") == "search_error":
            journal.search_error = event["error"]
        elif event.get("event") == "retry":
            journal.retried, journal.earlier_search_errors = True, list(event["errors"])
        elif event.get("event") == "recover":
            journal.failures.setdefault(i, []).append(event["error"])
            last = journal.records.get(i, [])[-1:]
            if last and "time" in event and "timestamp" in last[0]:  # the epoch it was in
                partial[i] = max(0.0, event["time"] - last[0]["timestamp"])
        elif event.get("event") == "end" and event["summary"].get("status") == INTERRUPTED:
            journal.interrupted.add(i)
        elif event.get("event") == "end":
            failed = journal.failures.get(i, [])  # those from before a resume too
            journal.summaries[i] = dict(event["summary"], attempts=1 + len(failed),
                                        failed_attempts=failed)
            for r in journal.records.get(i, []):
                r["status"] = event["summary"]["status"]
    return journal


def repair_tail(path: Path) -> bool:
    """Cut off a last line that a killed driver left without its newline, so that what is
    appended next starts a line of its own; whether there was one. The event it held was
    never whole: what it lost shows as an epoch missing (`Journal.damage`)."""
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with open(path, "r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)
        os.fsync(fh.fileno())
    return True


def mark_interrupted(path: Path) -> int:
    """Journal every trial that reported and has not ended as interrupted; how many."""
    kept = read(path)
    cut = [i for i, records in kept.records.items()
           if records and i not in kept.summaries and i not in kept.interrupted]
    for i in cut:
        last = kept.records[i][-1]
        append(path, {"event": "end", "trial": i, "summary": {
            "trial": i, "status": INTERRUPTED, "seed": last.get("seed"),
            "epochs": last.get("epoch", 0), "start": last.get("trial_start"),
            "end": last.get("timestamp")}}, durable=True)
    return len(cut)


def ended_rows(path: Path) -> tuple[list[dict], Journal]:
    """(records of the journal's ended trials, each with its experiment's start, the journal)."""
    kept = read(path)
    return [dict(r, experiment_start=kept.start) for r in kept.ended_records()], kept
