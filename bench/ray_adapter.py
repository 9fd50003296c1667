"""Thin adapters between ohobench and Ray Tune: a Search as a Ray Searcher, and a callback that
collects the per-epoch records in the driver and shows progress."""

from __future__ import annotations

import math
import os
import pickle
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher

from bench import journal
from bench.progress import SuiteView
from methods.base import Search, TrialOutcome, TrialStatus

PROGRESS_ENV = "OHOBENCH_PROGRESS"  # the progress display of the command running now


class PickledState:
    """Ray's Searcher checkpoint (save/restore to a file) through get_state/set_state."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.get_state(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.set_state(pickle.load(fh))


class SearchAdapter(PickledState, Searcher):
    """Ray asks for configurations; the wrapped Search proposes hyperparameters, and the adapter
    completes them into trial configs (task, seed, epochs...) with `make_config(index, hp)`.
    With `journal_path`, the seconds of every suggest and observe go to the journal. A search
    that raises (a plugin's fault) ends its own experiment as errored, journaled with the
    error's first line; the other experiments of the suite go on."""

    def __init__(self, search: Search, make_config: Callable[[int, dict], dict],
                 journal_path: Path | None = None):
        super().__init__(metric="val_loss", mode="min")
        self.search, self.make_config = search, make_config
        self.journal_path = journal_path
        self.started = 0
        self.live: dict[str, dict] = {}  # trial id -> hyperparameters
        self.error: str | None = None  # why the search failed; it proposes no more

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.error is not None:
            return Searcher.FINISHED
        began = time.perf_counter()
        try:
            hparams = self.search.suggest()
        except Exception as exc:  # the plugin's fault costs its own experiment only
            self._failed("suggest", exc)
            return Searcher.FINISHED
        self._searched("suggest", began)
        if hparams is None:
            return Searcher.FINISHED
        self.live[trial_id] = hparams
        self.started += 1
        return self.make_config(self.started - 1, hparams)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        hparams = self.live.pop(trial_id, None)
        if hparams is not None and self.error is None:
            began = time.perf_counter()
            try:
                self.search.observe(hparams, outcome(result, error))
            except Exception as exc:
                self._failed("observe", exc)
                return
            self._searched("observe", began)

    def _failed(self, call: str, exc: Exception) -> None:
        """One line for the summary and run.json; the whole traceback for the journal, where
        a plugin's author finds it."""
        first = (str(exc).strip().splitlines() or [""])[0]
        self.error = f"the search raised in {call}: {type(exc).__name__}: {first}"
        if self.journal_path is not None:
            journal.append(self.journal_path, {
                "event": "search_error", "error": self.error,
                "traceback": "".join(traceback.format_exception(exc))}, durable=True)

    def _searched(self, call: str, began: float) -> None:
        if self.journal_path is not None:
            journal.append(self.journal_path, {"event": "searcher", "call": call,
                                               "seconds": time.perf_counter() - began})

    def get_state(self) -> dict[str, Any]:
        return {"search": self.search.state_dict(), "started": self.started, "live": self.live,
                "error": self.error}

    def set_state(self, state: dict[str, Any]) -> None:
        self.search.load_state_dict(state["search"])
        self.started, self.live = state["started"], state["live"]
        self.error = state.get("error")
        if self.error is None and self.journal_path is not None:
            # The journal is newer than Ray's snapshot: a search that raised after it was
            # taken, or that a resume started over in a round of its own, proposes no more here.
            kept = journal.read(self.journal_path)
            if kept.search_error is not None or kept.retried:
                self.error = kept.search_error or "started over in a retry round"


def trial_status(last: dict | None, error: bool, epochs: int | None = None) -> TrialStatus:
    """How a trial ended, from its last record: errored (raised, or reported nothing),
    diverged (a non-finite loss), collapsed, stopped early by its scheduler (before `epochs`,
    when given) or completed."""
    if error or not last:  # nothing reported: stopped before its first epoch (a time budget)
        return TrialStatus.STOPPED if last is not None and not error and epochs else \
            TrialStatus.ERRORED
    val = last.get("val_loss")
    if last.get("diverged") or val is None or not math.isfinite(val):
        return TrialStatus.DIVERGED
    if last.get("collapsed"):
        return TrialStatus.COLLAPSED
    if epochs is not None and last.get("epoch", 0) < epochs:
        return TrialStatus.STOPPED
    return TrialStatus.COMPLETED


def outcome(result: dict | None, error: bool) -> TrialOutcome:
    """What a search observes of a trial (a stopped one counts with its last val loss)."""
    status = trial_status(result, error)
    if status is TrialStatus.COMPLETED:
        return TrialOutcome(status, float(result["val_loss"]))
    return TrialOutcome(status)


def hparam_text(value: Any) -> str:
    """A number to 3 significant digits; a categorical's choice (a string...) as it is."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:.3g}" if is_number else str(value)


def last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def error_line(trial) -> str:
    """The last line of the trial's latest error (Ray keeps the traces in a file)."""
    try:
        local = trial.error_file  # written before Ray calls back; storage may lag behind
        text = Path(local).read_text() if local and Path(local).is_file() else trial.get_error()
        return last_line(text) or "error"
    except Exception:  # the error file is gone or unreadable: still record the failure
        return "error (no trace kept)"


def tune_result(record: dict, replayed: bool) -> dict:
    """One epoch's result for Ray Tune: on top, what schedulers and searches read (`epoch` is
    what rungs count, bench.vocabulary.TIME_ATTR); the record inside a tuple, because Tune keeps
    running statistics of every number in a result's dicts, for every trial of the run, and
    writes them into each experiment snapshot (36 KiB per trial of a 1,000-trial scale run)."""
    return {"val_loss": record["val_loss"], "epoch": record["epoch"],
            "diverged": record["diverged"], "collapsed": record.get("collapsed", False),
            "trial_start": record["trial_start"], "record": (record,), "replayed": replayed}


def record_of(result: dict) -> dict:
    """The record of a `tune_result` (a list once restored from a snapshot's JSON)."""
    return result["record"][0]


class RecordCollector(Callback):
    """Appends every reported record, with the trial's Ray id and node, and one summary per
    ended trial to its experiment's journal (bench/journal.py), which is what the runner reads,
    and shows the suite's progress (bench/progress.py). A trial that starts over (retried after
    it raised or its worker died, or resumed after the driver died) is an attempt of its own
    there; failed ones are counted. The first trial start of an experiment is journaled as its
    start: wall-clock time-to-target counts from there."""

    def __init__(self, journal_dir: Path, experiments: list, mode: str = "lines"):
        self.journal_dir, self.experiments, self.mode = Path(journal_dir), experiments, mode
        self.labels = {e.name: e.label for e in experiments}
        self.budgets = {e.name: e.budget for e in experiments}
        self.view = None
        self.last: dict[str, dict] = {}  # trial id -> its latest record, until it ends
        self.failures: dict[str, int] = {}  # trial id -> retried attempts
        self.replayed: set[str] = set()  # trials kept from before an interruption
        self.starts: dict[str, float] = {}  # experiment -> earliest trial start journaled
        self.ended: dict[str, set[int]] = {}  # experiment -> trial indices ended, ever
        self.trial_starts: dict[str, float] = {}  # trial id -> its start, first reported

    def __setstate__(self, state: dict) -> None:
        """Also restores the callback of a run snapshotted by an older ohobench."""
        self.__dict__.update(state)
        self.__dict__.setdefault("trial_starts", {})

    def path(self, trial) -> Path:
        return self.journal_dir / f"{trial.config['spec'].experiment}.jsonl"

    def setup(self, **info):
        # A resumed run restores this callback as pickled: the display the current command
        # asked for (e.g. --quiet now, not then) comes from the runner through the environment.
        self.mode = os.environ.get(PROGRESS_ENV, self.mode)
        self.view = SuiteView(self.mode, self.experiments)

    def on_step_end(self, iteration, trials, **info):
        self.view.update(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        spec = trial.config["spec"]
        record = dict(record_of(result), trial_id=trial.trial_id, node=result.get("node_ip"))
        # A PBT member that copied another's checkpoint reports that one's start: keep its own.
        record["trial_start"] = self.trial_starts.setdefault(trial.trial_id,
                                                             record["trial_start"])
        self.last[trial.trial_id] = record
        if result.get("replayed"):
            self.replayed.add(trial.trial_id)
        start = record.get("trial_start")
        if start is not None and start < self.starts.get(spec.experiment, math.inf):
            self.starts[spec.experiment] = start
            journal.append(self.path(trial), {"event": "start", "time": start})
        journal.append(self.path(trial), {"event": "result", "trial": spec.trial,
                                          "record": record})

    def on_trial_recover(self, iteration, trials, trial, **info):
        error = error_line(trial)
        self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1
        journal.append(self.path(trial), {"event": "recover", "trial": trial.config["spec"].trial,
                                          "error": error, "time": time.time()}, durable=True)
        self.last.pop(trial.trial_id, None)
        self.view.line(f"  [{self.labels[trial.config['spec'].experiment]}] trial "
                       f"{trial.config['spec'].trial} raised ({error}); retrying, attempt "
                       f"{self.failures[trial.trial_id] + 1}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, error_line(trial))

    def on_experiment_end(self, trials, **info):
        """Trials still running when Tune ends were cut short by an interruption: the runner
        journals them as interrupted (bench/journal.py), not as ended. Tune calls them
        terminated by then, so the view is not counted again."""
        if not self.last:
            self.view.update(trials, force=True)
        self.last.clear()
        self.view.close()

    def _finish(self, trial, error: str | None) -> None:
        last = self.last.pop(trial.trial_id, {})
        spec = trial.config["spec"]
        status = trial_status(last, bool(error), spec.epochs)
        summary = {"trial": spec.trial, "trial_id": trial.trial_id, "status": status.value,
                   "seed": spec.seed, "hparams": spec.hparams, "epochs": last.get("epoch", 0),
                   "error": last_line(error), "start": last.get("trial_start"),
                   "end": last.get("timestamp")}
        path = self.path(trial)
        journal.append(path, {"event": "end", "trial": spec.trial, "summary": summary},
                       durable=True)
        if spec.experiment not in self.ended:  # a resumed experiment counts earlier trials
            self.ended[spec.experiment] = set(journal.read(path).summaries)
        self.ended[spec.experiment].add(spec.trial)
        # The values it trained with last (PBT changes them; the summary keeps the proposal).
        trained = trial.config.get("hparams", spec.hparams) or {}
        hp = ", ".join(f"{k}={hparam_text(v)}" for k, v in trained.items())
        if error:
            what = f"ERRORED: {summary['error']}"
        elif status in (TrialStatus.DIVERGED, TrialStatus.COLLAPSED):
            what = f"{status.value} at epoch {last.get('epoch')}"
        elif status is TrialStatus.STOPPED:
            what = (f"stopped early at epoch {last.get('epoch')}: "
                    f"val {last.get('val_loss', math.nan):.4f}")
        else:
            what = (f"val {last.get('val_loss', math.nan):.4f}  "
                    f"test {last.get('test_loss', math.nan):.4f}  "
                    f"in {last.get('train_seconds_cum', 0):.1f} s")
        if trial.trial_id in self.replayed:
            what += " (kept from before the interruption)"
        self.view.line(f"  [{self.labels[spec.experiment]}] trial "
                       f"{len(self.ended[spec.experiment])}/{self.budgets[spec.experiment]} "
                       f"({hp}): {what}", notable=bool(error) or status is TrialStatus.DIVERGED)
