"""Progress of a whole suite: trials done, running and pending per experiment, with elapsed
time and an estimate of the time left.

Modes: "bars" (a terminal: live tqdm bars, and only notable trial lines above them), "lines"
(not a terminal, e.g. CI or `ray job submit` logs: a line per ended trial and a summary line
every `every` seconds), "quiet" (nothing)."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass

MODES = ("bars", "lines", "quiet")
BAR_ROWS = 12  # more experiments than this: one bar per (task, method, family), reps summed


def auto_mode(quiet: bool) -> str:
    return "quiet" if quiet else "bars" if sys.stdout.isatty() else "lines"


@dataclass(frozen=True)
class Row:
    label: str
    names: tuple[str, ...]  # experiments counted in this row
    budget: int


def rows_for(experiments) -> list[Row]:
    if len(experiments) <= BAR_ROWS:
        return [Row(e.label, (e.name,), e.budget) for e in experiments]
    groups: dict[str, list] = defaultdict(list)
    for e in experiments:
        groups[e.label.rsplit(" · rep ", 1)[0]].append(e)
    return [Row(f"{label} · {len(es)} reps", tuple(e.name for e in es), sum(e.budget for e in es))
            for label, es in groups.items()]


def fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SuiteView:
    def __init__(self, mode: str, experiments, every: float = 10.0, refresh: float = 0.5):
        self.mode, self.every, self.refresh = mode, every, refresh
        self.rows = rows_for(experiments)
        self.total = sum(e.budget for e in experiments)
        self.began = time.time()
        self.done_before: int | None = None  # trials a resumed run had ended before this session
        self.last_update = self.last_line = 0.0
        self.bars = []
        if mode == "bars":
            # tqdm: only the bars display needs it; this module imports only the standard library
            from tqdm import tqdm

            self.bars = [tqdm(total=self.total, desc="suite", position=0, leave=True,
                              unit="trial", dynamic_ncols=True)]
            self.bars += [tqdm(total=row.budget, desc=row.label, position=i + 1, leave=True,
                               unit="trial", dynamic_ncols=True)
                          for i, row in enumerate(self.rows)]

    def line(self, text: str, notable: bool = True) -> None:
        """A trial's line: every one in "lines" mode, only notable ones above the bars."""
        if self.mode == "lines":
            print(text, flush=True)
        elif self.mode == "bars" and notable:
            self.bars[0].write(text)

    def update(self, trials, force: bool = False) -> None:
        """Recount from Tune's trials, at most every `refresh` seconds."""
        now = time.time()
        if self.mode == "quiet" or (not force and now - self.last_update < self.refresh):
            return
        self.last_update = now
        counts = count(trials)
        done, running, pending = (sum(c[i] for c in counts.values()) for i in range(3))
        if self.done_before is None:
            self.done_before = done
        if self.mode == "bars":
            self._bar(self.bars[0], done, running, pending)
            for bar, row in zip(self.bars[1:], self.rows, strict=True):
                self._bar(bar, *(sum(counts.get(n, (0, 0, 0))[i] for n in row.names)
                                 for i in range(3)))
        elif force or now - self.last_line >= self.every:
            self.last_line = now
            elapsed, done_now = now - self.began, done - self.done_before
            eta = fmt(elapsed / done_now * (self.total - done)) if done_now else "?"
            print(f"suite: {done}/{self.total} trials done · {running} running · {pending} "
                  f"pending · elapsed {fmt(elapsed)} · ETA {eta}", flush=True)

    @staticmethod
    def _bar(bar, done: int, running: int, pending: int) -> None:
        bar.n = min(done, bar.total)
        bar.set_postfix_str(f"{running} running, {pending} pending", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars:
            bar.close()
        self.bars = []


def count(trials) -> dict[str, tuple[int, int, int]]:
    """(done, running, pending) per experiment, from Tune's trial list."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for trial in trials:
        spec = trial.config.get("spec")
        if spec is None:
            continue
        status = trial.status
        i = 1 if status == "RUNNING" else 2 if status in ("PENDING", "PAUSED") else 0
        out[spec.experiment][i] += 1
    return {k: tuple(v) for k, v in out.items()}
