"""Every use of Ray Tune's private API, in one place, and the Ray versions it was checked
against. ohobench patches or reads these because Ray 2.60 has no public way to do what they
do; each says why. pyproject.toml pins the Ray that was checked (RAY_SUPPORTED), importing this
module with another one stops with one line (`check_version`), and tests/test_ray_internals.py
fails if any private name below disappears (`missing`).

- `tolerate_deleted_checkpoints`: ray.train._internal.checkpoint_manager._delete_fs_path.
- `snapshot_before_deleting`: ray.tune.execution.experiment_state
  ._ExperimentCheckpointManager.__init__ (its `sync_every_n_trial_checkpoints`).
- `PopulationHooks`: PopulationBasedTraining's `_trial_state`, `_perturbation_interval`,
  `_next_perturbation_sync` and `_get_new_config` (PB2 inherits them).
- `set_buffered_results`: TrialScheduler._supports_buffered_results.
"""

from __future__ import annotations

import inspect

import ray
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from bench.errors import ConfigError

RAY_CHECKED = "2.60.0"  # the Ray these patches were written and tested against
RAY_SUPPORTED = ((2, 60), (2, 61))  # [low, high) of (major, minor), as pinned in pyproject


def check_version(version: str = ray.__version__) -> None:
    """One line, not undefined behaviour, for a Ray whose private API was not checked."""
    try:
        found = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        found = (0, 0)
    low, high = RAY_SUPPORTED
    if not low <= found < high:
        raise ConfigError(f"ray {version} is not supported: ohobench patches Ray Tune internals "
                          f"checked against ray {RAY_CHECKED} (bench/ray_internals.py); install "
                          f"'ray[tune]>={low[0]}.{low[1]},<{high[0]}.{high[1]}'")


check_version()


def tolerate_deleted_checkpoints() -> None:
    """Ray Tune 2.60 deletes a trial's oldest checkpoints by the list its experiment snapshot
    restored; after a resume, that list can name one already deleted before the interruption,
    and the FileNotFoundError left the trial pending forever (a PBT population resumed after
    SIGKILL did). A checkpoint that is gone is deleted: the driver's deletion ignores it."""
    # a private module: imported on use, so that a Ray without it stops at check_version()'s
    # one line on import, not at an ImportError
    from ray.train._internal import checkpoint_manager

    delete = checkpoint_manager._delete_fs_path
    if getattr(delete, "tolerant", False):
        return

    def tolerant(fs, fs_path: str) -> None:
        try:
            delete(fs=fs, fs_path=fs_path)
        except FileNotFoundError:
            pass

    tolerant.tolerant = True
    checkpoint_manager._delete_fs_path = tolerant


def snapshot_before_deleting() -> None:
    """Ray Tune 2.60 forces an experiment snapshot once a trial has saved num_to_keep
    checkpoints since the last one, but registering the num_to_keep-th deletes the checkpoint
    that snapshot names, before the new snapshot is written: a driver SIGKILLed in between left
    that trial unrecoverable ("Could not recover from checkpoint as it does not exist"). Forcing
    the snapshot one checkpoint earlier keeps the checkpoint a snapshot names on disk until the
    next snapshot is written (tests/test_checkpoints.py checks this on Ray's own classes)."""
    # a private module: imported on use, so that a Ray without it stops at check_version()'s
    # one line on import, not at an ImportError
    from ray.tune.execution import experiment_state

    manager = experiment_state._ExperimentCheckpointManager
    init = manager.__init__
    if getattr(init, "snapshots_before_deleting", False):
        return

    def earlier(self, *, sync_every_n_trial_checkpoints: int | None = None, **kwargs) -> None:
        n = sync_every_n_trial_checkpoints
        init(self, sync_every_n_trial_checkpoints=n - 1 if n and n > 1 else n, **kwargs)

    earlier.snapshots_before_deleting = True
    manager.__init__ = earlier


def set_buffered_results(scheduler: TrialScheduler, supported: bool) -> None:
    """Whether Tune may hand `scheduler` several results at once (a scheduler that wraps
    others supports it only if they all do; Hyperband takes them one at a time)."""
    scheduler._supports_buffered_results = supported


class PopulationHooks:
    """What ohobench changes in Ray's synchronous PBT (and PB2), which only its private state
    allows. Mixed in before PopulationBasedTraining; `adjust_config` is the subclass's."""

    def adjust_config(self, trial, config: dict) -> dict:
        return config

    def on_trial_add(self, tune_controller, trial) -> None:
        """A member that Tune restored (a resumed run) goes on from the last exploit step it
        passed, and the population's next one is the earliest its members are heading for:
        Ray's PBT counts from epoch 0, and waited for a step its restored members had passed
        (all paused, none to run)."""
        super().on_trial_add(tune_controller, trial)
        interval = self._perturbation_interval
        state = self._trial_state[trial]
        state.last_perturbation_time = state.last_train_time = \
            trial.run_metadata.last_result.get(self._time_attr, 0) // interval * interval
        if all(s.last_score is None for s in self._trial_state.values()):  # none reported yet
            self._next_perturbation_sync = interval + min(
                s.last_train_time for s in self._trial_state.values())

    def choose_trial_to_run(self, tune_controller):
        """Ray's choice; if it has none while members wait, paused, and none trains (a member
        that was to reach the step errored, e.g. its checkpoint was gone after a resume), the
        population skips that exploit step instead of waiting forever."""
        chosen = super().choose_trial_to_run(tune_controller)
        if chosen is not None:
            return chosen
        trials = tune_controller.get_trials()
        waiting = [t for t in trials if t.status in ("PAUSED", "PENDING")]
        if not waiting or any(t.status == "RUNNING" for t in trials):
            return None
        self._next_perturbation_sync = self._perturbation_interval + min(
            self._trial_state[t].last_train_time for t in waiting)
        return super().choose_trial_to_run(tune_controller)

    def _get_new_config(self, trial, trial_to_clone) -> tuple[dict, dict]:
        config, operations = super()._get_new_config(trial, trial_to_clone)
        return self.adjust_config(trial, config), operations


def missing() -> list[str]:
    """The private names above that this Ray lacks (empty: all there)."""
    # private modules: imported on use, so that a Ray without them stops at check_version()'s
    # one line on import, not at an ImportError
    from ray.train._internal import checkpoint_manager
    from ray.tune.execution import experiment_state

    found = []
    if not callable(getattr(checkpoint_manager, "_delete_fs_path", None)):
        found.append("ray.train._internal.checkpoint_manager._delete_fs_path")
    manager = getattr(experiment_state, "_ExperimentCheckpointManager", None)
    if manager is None or "sync_every_n_trial_checkpoints" not in inspect.signature(
            manager.__init__).parameters:
        found.append("ray.tune.execution.experiment_state._ExperimentCheckpointManager"
                     "(sync_every_n_trial_checkpoints=...)")
    pbt = PopulationBasedTraining(time_attr="epoch", metric="m", mode="min",
                                  hyperparam_mutations={"x": [1, 2]})
    for name in ("_trial_state", "_perturbation_interval", "_next_perturbation_sync",
                 "_time_attr"):
        if not hasattr(pbt, name):
            found.append(f"PopulationBasedTraining.{name}")
    if not callable(getattr(PopulationBasedTraining, "_get_new_config", None)):
        found.append("PopulationBasedTraining._get_new_config")
    if not hasattr(TrialScheduler(), "_supports_buffered_results"):
        found.append("TrialScheduler._supports_buffered_results")
    return found
