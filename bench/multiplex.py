"""A whole suite as one Ray Tune experiment: a Searcher that multiplexes the experiments'
searches, and a TrialScheduler that hands each trial to its own experiment's scheduler.

Every trial's config carries its experiment's name (`config["spec"].experiment`), which is how
results, completions and scheduling decisions reach the right search.

Policy (no starvation): on each `suggest`, among the experiments that may start a trial now
(budget of trials left, below their own cap, time budget not spent), the one with the least
progress, trials started / budget, proposes; ties go to suite order. Every experiment with
capacity is therefore served before any gets ahead of it by a whole trial's share.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from bench import journal, ray_internals
from bench.experiment import Experiment
from bench.ray_adapter import PickledState
from bench.vocabulary import TIME_ATTR


def experiment_of(trial) -> str:
    return trial.config["spec"].experiment


class SuiteSearcher(PickledState, Searcher):
    """Each experiment's search behind one Searcher. Per experiment it enforces what Tune's
    ConcurrencyLimiter and time_budget_s did for a single one: at most `cap` trials live
    (suggested and not ended), at most `budget` trials, and no new trial once `budget_seconds`
    have passed since the experiment's first trial started."""

    def __init__(self, experiments: list[Experiment], adapters: dict[str, Searcher]):
        super().__init__(metric="val_loss", mode="min")
        self.experiments = {e.name: e for e in experiments}
        self.order = {e.name: i for i, e in enumerate(experiments)}
        self.adapters = adapters  # experiment name -> SearchAdapter
        self.owner: dict[str, str] = {}  # live trial id -> experiment name
        self.live = dict.fromkeys(self.experiments, 0)
        self.started = dict.fromkeys(self.experiments, 0)
        self.exhausted: set[str] = set()  # will suggest no more
        self.first_start: dict[str, float] = {}  # earliest trial start seen per experiment

    # --- the policy ---------------------------------------------------------------------------
    def expired(self, name: str, now: float | None = None) -> bool:
        """Whether the experiment's time budget, counted from its first trial start, is spent."""
        limit = self.experiments[name].budget_seconds
        start = self.first_start.get(name)
        return limit is not None and start is not None and (now or time.time()) - start >= limit

    def ready(self, now: float) -> list[str]:
        for name in self.experiments:
            if name not in self.exhausted and (
                    self.started[name] >= self.experiments[name].budget
                    or self.expired(name, now)):
                self.exhausted.add(name)
        return [n for n, e in self.experiments.items() if n not in self.exhausted
                and (e.cap is None or self.live[n] < e.cap)]

    def pick(self, now: float) -> str | None:
        candidates = self.ready(now)
        if not candidates:
            return None
        return min(candidates, key=lambda n: (self.started[n] / self.experiments[n].budget,
                                              self.order[n]))

    # --- Searcher -----------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | str | None:
        now = time.time()
        while (name := self.pick(now)) is not None:
            config = self.adapters[name].suggest(trial_id)
            if config == Searcher.FINISHED or config is None:  # its search has no more
                self.exhausted.add(name)
                continue
            self.owner[trial_id] = name
            self.live[name] += 1
            self.started[name] += 1
            return config
        return Searcher.FINISHED if len(self.exhausted) == len(self.experiments) else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        name = self.owner.get(trial_id)
        if name is not None:
            self.note_start(name, result)
            self.adapters[name].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        name = self.owner.pop(trial_id, None)
        if name is None:
            return
        self.live[name] -= 1
        self.note_start(name, result)
        self.adapters[name].on_trial_complete(trial_id, result, error)

    def note_start(self, name: str, result: dict | None) -> None:
        """Keep the earliest `trial_start` reported by the experiment's trials."""
        start = (result or {}).get("trial_start")
        if start is not None and math.isfinite(start):
            self.first_start[name] = min(start, self.first_start.get(name, math.inf))

    def progress(self) -> dict[str, tuple[int, int]]:
        """(trials started, live) per experiment."""
        return {n: (self.started[n], self.live[n]) for n in self.experiments}

    # --- resume -------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"searches": {n: a.get_state() for n, a in self.adapters.items()},
                "owner": self.owner, "live": self.live, "started": self.started,
                "exhausted": self.exhausted, "first_start": self.first_start}

    def set_state(self, state: dict[str, Any]) -> None:
        for name, sub in state["searches"].items():
            self.adapters[name].set_state(sub)
        self.owner, self.live, self.started = state["owner"], state["live"], state["started"]
        self.exhausted, self.first_start = state["exhausted"], state["first_start"]


ENDED = ("TERMINATED", "ERROR")  # Ray Tune's statuses of a trial that will not run again


class SuiteScheduler(FIFOScheduler):
    """Trials start in the order they were suggested (FIFO); each result goes to its own
    experiment's scheduler (bench/schedulers.py: Ray Tune's ASHAScheduler or
    HyperBandScheduler, none under fifo), so that rungs and brackets hold only that search's
    trials, and a trial whose experiment's time budget is spent is stopped. A scheduler that
    pauses trials (Hyperband) alone decides which of its paused trials go on.

    Ray Tune does not snapshot schedulers: a resumed run gets them as they were built. ASHA's
    rungs are refilled from the experiments' `journals` as Tune re-adds the run's trials, so
    a trial after a resume is compared with every trial of its search, as without one."""

    def __init__(self, searcher: SuiteSearcher, schedulers: dict[str, TrialScheduler],
                 journals: dict[str, Path] | None = None):
        super().__init__()
        self.searcher, self.schedulers = searcher, schedulers
        self.journals = journals or {}  # experiment name -> its journal (bench/journal.py)
        self.journals_read: dict[Path, tuple[int, journal.Journal]] = {}  # path -> (size, it)
        self.choosers = choosers(schedulers)
        self.reported: dict[str, int] = {}  # results per experiment: its progress
        # Hyperband takes results one at a time (Tune then buffers none).
        ray_internals.set_buffered_results(
            self, all(s.supports_buffered_results for s in schedulers.values()))
        # Trials not ended, in the order added: FIFO without scanning every trial of the run.
        self.queue: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "journals_read"}

    def __setstate__(self, state: dict) -> None:
        """Also restores a run snapshotted by an older ohobench (no `choosers`, or a list)."""
        self.__dict__.update(state)
        self.choosers = choosers(self.schedulers)
        self.__dict__.setdefault("journals", {})
        self.__dict__.setdefault("reported", {})
        self.journals_read = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # each experiment's scheduler has its own metric and mode

    def _own(self, trial) -> TrialScheduler | None:
        return self.schedulers.get(experiment_of(trial))

    @staticmethod
    def _view(tune_controller, trial) -> SearchView:
        return SearchView(tune_controller, experiment_of(trial))

    def choose_trial_to_run(self, tune_controller):
        """The first pending trial in the order added (as FIFOScheduler, which scans all the
        run's trials at every step); else a paused trial that its own scheduler promoted, if
        that scheduler picks its own (Hyperband, PBT), asking the searches with the fewest
        results first (no population waits for another to finish); else the first other
        paused one."""
        for trial in self.queue.values():
            if trial.status == "PENDING":
                return trial
        for name in sorted(self.choosers, key=lambda n: self.reported.get(n, 0)):
            own = self.choosers[name]  # least progress first, as the searches' suggestions
            if (trial := own.choose_trial_to_run(SearchView(tune_controller, name))) is not None:
                return trial
        for trial in self.queue.values():
            if trial.status == "PAUSED" and experiment_of(trial) not in self.choosers:
                return trial
        return None

    def on_trial_add(self, tune_controller, trial) -> None:
        """A trial that has ended is re-added only when a run resumes; its search's scheduler
        never sees it, as Hyperband would keep it in a bracket whose other trials then wait
        for its results forever. ASHA gets its journaled results (`refill`)."""
        own = self._own(trial)
        if trial.status in ENDED:
            self.refill(own, tune_controller, trial, ended=True)
            return
        self.queue[trial.trial_id] = trial
        if own is not None:
            own.on_trial_add(self._view(tune_controller, trial), trial)
            self.refill(own, tune_controller, trial, ended=False)

    def refill(self, own: TrialScheduler | None, tune_controller, trial, ended: bool) -> None:
        """Hand an ASHA scheduler the journaled results of a trial that Tune re-adds on a
        resume, as they came (its decisions then are ignored: they were taken), so its rungs
        hold them again. A trial new to the run has none."""
        path = self.journals.get(experiment_of(trial))
        if not isinstance(own, AsyncHyperBandScheduler) or path is None or not (
                ended or has_reported(trial)):
            return
        records = self.journal(path).records.get(trial.config["spec"].trial, [])
        if not records:
            return
        view = self._view(tune_controller, trial)
        if ended:
            own.on_trial_add(view, trial)
        for record in records:
            own.on_trial_result(view, trial, record)
        if ended:
            own.on_trial_complete(view, trial, records[-1])

    def journal(self, path: Path) -> journal.Journal:
        """The journal at `path`, read again only when it has grown (Tune re-adds every trial
        of a resumed run in turn)."""
        size = path.stat().st_size if path.exists() else 0
        if path not in self.journals_read or self.journals_read[path][0] != size:
            self.journals_read[path] = (size, journal.read(path))
        return self.journals_read[path][1]

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        name = experiment_of(trial)
        self.reported[name] = self.reported.get(name, 0) + 1
        self.searcher.note_start(name, result)
        if self.searcher.expired(name):
            return TrialScheduler.STOP
        own = self._own(trial)
        return TrialScheduler.CONTINUE if own is None else own.on_trial_result(
            self._view(tune_controller, trial), trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self.queue.pop(trial.trial_id, None)
        if (own := self._own(trial)) is not None:
            own.on_trial_complete(self._view(tune_controller, trial), trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.queue.pop(trial.trial_id, None)
        if (own := self._own(trial)) is not None:
            own.on_trial_remove(self._view(tune_controller, trial), trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.queue.pop(trial.trial_id, None)
        if (own := self._own(trial)) is not None:
            own.on_trial_error(self._view(tune_controller, trial), trial)

    def debug_string(self) -> str:
        return f"SuiteScheduler: {len(self.schedulers)} searches under their own scheduler"


def choosers(schedulers: dict[str, TrialScheduler]) -> dict[str, TrialScheduler]:
    """The schedulers that choose which of their trials run (FIFOScheduler's choice scans every
    trial of the run, so only those that override it are asked)."""
    return {name: s for name, s in schedulers.items()
            if type(s).choose_trial_to_run is not FIFOScheduler.choose_trial_to_run}


class SearchView:
    """The Tune controller as one search's scheduler sees it: its own trials only (PBT scans
    the controller's trials for its population), and no search algorithm (PBT refuses Tune's
    wrapped searchers; the suite's searcher proposes the first members)."""

    search_alg = None

    def __init__(self, controller, name: str):
        self._controller, self._name = controller, name

    def get_trials(self) -> list:
        return [t for t in self._controller.get_trials() if experiment_of(t) == self._name]

    def get_live_trials(self) -> set:
        return {t for t in self._controller.get_live_trials()
                if experiment_of(t) == self._name}

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._controller, attr)


def has_reported(trial) -> bool:
    """Whether a trial Tune adds had reported before (a resumed run's): Ray's `last_result`
    always holds the trial's id, and reading it may wait on the trial's actor."""
    metadata = getattr(trial, "run_metadata", None)
    return bool(metadata is not None and metadata.last_result.get(TIME_ATTR))
