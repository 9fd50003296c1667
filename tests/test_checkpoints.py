"""A trial continued from its checkpoint reports exactly what an uninterrupted trial reports.

bench/checkpoints.py, harness.TrainState and the rules' state_dict hooks, checked without Ray:
a trial saves a checkpoint after every epoch but its last (written to disk and read back, as
Ray carries it); a second run continues from the one after epoch 2. Every record field but
wall-clock timings must be equal, bit for bit, on the CPU.
"""

import pytest

from bench import checkpoints
from bench.trial import run_trial
from tests.conftest import without_timing

EPOCHS = 4
RESUME_AFTER = 2


def config(method: str, **extra) -> dict:
    return {"task": "digits", "method": method, "hparams": {"lr": 0.05, "wd": 1e-4},
            "seed": 5, "epochs": EPOCHS, "device": "cpu", **extra}


comparable = without_timing


def saved_each_epoch(cfg: dict, tmp_path) -> tuple[list[dict], list[dict]]:
    """Run `cfg` with checkpoints; (its records, every checkpoint as read back from disk)."""
    kept = []

    def save(state: dict) -> None:
        folder = tmp_path / f"ckpt{len(kept)}"
        folder.mkdir()
        checkpoints.save(folder, state)
        kept.append(checkpoints.load(folder))

    return run_trial(cfg, checkpoint=save), kept


@pytest.mark.parametrize("method,extra", [
    ("random", {"optimizer": "fixed"}), ("random", {"optimizer": "adam"}),
    ("random", {"optimizer": "cosine"}), ("oho", {}), ("oho-layerwise", {}), ("t1t2", {}),
    ("hd", {}), ("rtho", {}), ("marthe", {}), ("trho", {}), ("controller", {})])
def test_a_trial_continued_from_its_checkpoint_reports_what_an_uninterrupted_one_does(
        method, extra, tmp_path):
    cfg = config(method, **extra)
    uninterrupted = run_trial(cfg)
    with_checkpoints, saved = saved_each_epoch(cfg, tmp_path)
    assert comparable(with_checkpoints) == comparable(uninterrupted)  # saving changes nothing
    assert len(saved) == EPOCHS - 1  # none after the last epoch: the trial has ended
    reported = []
    continued = run_trial(cfg, report=reported.append, resume=saved[RESUME_AFTER - 1])
    assert comparable(continued) == comparable(uninterrupted)
    assert [r["epoch"] for r in reported] == list(range(RESUME_AFTER + 1, EPOCHS + 1))
    assert comparable(reported) == comparable(uninterrupted[RESUME_AFTER:])
    # The continued trial keeps its start and adds its training seconds to the saved ones.
    assert {r["trial_start"] for r in continued} == {with_checkpoints[0]["trial_start"]}
    assert continued[-1]["train_seconds_cum"] > saved[RESUME_AFTER - 1]["train"].train_seconds


def test_a_follow_up_phase_continues_from_its_own_checkpoint(tmp_path):
    """controller with retrain: the second phase (the chosen child trained from scratch)
    continues from a checkpoint taken inside it, the first phase's records kept."""
    cfg = config("controller", options={"retrain": True})
    uninterrupted = run_trial(cfg)
    assert len(uninterrupted) == 2 * EPOCHS
    _, saved = saved_each_epoch(cfg, tmp_path)
    inside = saved[EPOCHS - 1 + RESUME_AFTER - 1]  # the first phase's last epoch saved none
    assert inside["phase"] == "retrain" and len(inside["first"]) == EPOCHS
    reported = []
    continued = run_trial(cfg, report=reported.append, resume=inside)
    assert comparable(continued) == comparable(uninterrupted)
    assert [r["epoch"] for r in reported] == list(range(EPOCHS + RESUME_AFTER + 1,
                                                       2 * EPOCHS + 1))


def test_checkpoint_files_are_written_atomically(tmp_path):
    path = checkpoints.save(tmp_path, {"x": 1})
    assert path.name == checkpoints.FILE and not list(tmp_path.glob("*.partial"))
    assert checkpoints.load(tmp_path) == {"x": 1}
    size = path.stat().st_size
    assert checkpoints.drop(str(tmp_path)) == {"bytes": size, "files": 1, "removed": True}
    assert not path.exists()


def test_a_trial_continued_from_another_trains_with_its_own_hyperparameters(tmp_path):
    """Continuing from a checkpoint of a trial with other hyperparameters (what PBT's exploit
    does) keeps the weights and the optimizer's buffers and trains on with this trial's own
    lr, wd and momentum from the next epoch."""
    other = config("random", optimizer="fixed", hparams={"lr": 0.05, "wd": 1e-4,
                                                         "momentum": 0.5})
    _, saved = saved_each_epoch(other, tmp_path)
    mine = dict(other, hparams={"lr": 0.2, "wd": 1e-3, "momentum": 0.9})
    continued = run_trial(mine, resume=saved[RESUME_AFTER - 1])
    assert [r["hp_lr"] for r in continued] == [0.05] * RESUME_AFTER + [0.2] * (
        EPOCHS - RESUME_AFTER)
    assert continued[-1]["hp_wd"] == 1e-3 and continued[-1]["hp_momentum"] == 0.9
    plain = run_trial(other)
    assert continued[RESUME_AFTER]["train_loss"] != plain[RESUME_AFTER]["train_loss"]


def test_an_optimizer_family_loads_saved_buffers_under_its_own_hyperparameters():
    import torch

    from methods.optimizers import FamilyRule, get

    rule = FamilyRule(get("fixed"), EPOCHS)
    weights = {"w": torch.ones(3, requires_grad=True)}
    saved_state = rule.init(weights, {"lr": 0.05, "wd": 1e-4, "momentum": 0.5})
    weights["w"].grad = torch.full((3,), 2.0)
    saved_state.optimizer.step()
    saved = rule.state_dict(saved_state)
    fresh = {"w": torch.ones(3, requires_grad=True)}
    state = rule.load_state_dict(rule.init(fresh, {"lr": 0.2, "wd": 1e-3, "momentum": 0.9}),
                                 saved)
    group = state.optimizer.param_groups[0]
    assert (group["weight_decay"], group["momentum"]) == (1e-3, 0.9)
    buffer = state.optimizer.state[fresh["w"]]["momentum_buffer"]
    assert torch.equal(buffer, saved_state.optimizer.state[weights["w"]]["momentum_buffer"])


@pytest.mark.parametrize("kept", [3, 5])
def test_the_checkpoint_a_snapshot_names_outlives_it_until_the_next(tmp_path, kept):
    """Ray's own checkpoint bookkeeping, driven as its controller drives it (register the
    trial's checkpoint, which deletes the oldest; then count it toward a forced snapshot):
    with ray_internals.snapshot_before_deleting, every checkpoint the last snapshot named is
    still on disk whenever a SIGKILL could strike. Ray 2.60 alone deletes it one step too early."""
    from ray import tune
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    from bench import ray_internals

    ray_internals.snapshot_before_deleting()
    trial_checkpoints = _CheckpointManager(tune.CheckpointConfig(num_to_keep=kept))
    experiment = _ExperimentCheckpointManager(
        storage=None, checkpoint_period=1e9, sync_every_n_trial_checkpoints=kept)
    trial, named, snapshots = object(), None, 0
    for epoch in range(1, 30):
        folder = tmp_path / f"checkpoint_{epoch:06d}"
        folder.mkdir()
        (folder / "trial.pt").write_bytes(b"state")
        trial_checkpoints.register_checkpoint(_TrainingResult(
            checkpoint=tune.Checkpoint.from_directory(str(folder)), metrics={"epoch": epoch}))
        experiment.on_trial_checkpoint(trial)
        assert named is None or named.exists(), f"epoch {epoch}: {named.name} is gone"
        if experiment._should_force_sync_up:  # the snapshot Ray writes next
            named, snapshots = folder, snapshots + 1
            experiment._should_force_sync_up = False
            experiment._trial_num_checkpoints_since_last_sync.clear()
    assert snapshots >= 29 // (kept - 1)  # snapshots are no rarer than every kept - 1 epochs
