import os
import stat

import pandas as pd
import pytest

from bench import results


def test_table_round_trips_through_parquet_in_one_line(tmp_path, digits_trial):
    rows = [dict(r, trial_id="x", status="completed", node="n", node_id="id", experiment_start=0,
                 retry_seconds=0.0)
            for r in digits_trial(epochs=2)]
    df = results.table(rows)
    results.write_table(df, tmp_path)
    back = pd.read_parquet(tmp_path / "records.parquet")
    assert list(back.columns[:len(results.KEY)]) == results.KEY
    assert set(results.COLUMNS) <= set(back.columns) and {"hp_lr", "hp_wd"} <= set(back.columns)
    assert len(back) == 2 and back["diverged"].dtype == bool
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_search_seconds_cumulate_trials_in_the_order_they_started():
    rows = [dict(task="t", method="m", repetition=0, trial=trial, epoch=e + 1,
                 trial_start=start, train_seconds_cum=c)
            for trial, start, cums in [(0, 10, [1, 2]), (1, 5, [3, 4]), (2, 20, [1])]
            for e, c in enumerate(cums)]
    df = results.table(rows)
    assert df["trial"].tolist() == [1, 1, 0, 0, 2]
    assert df["search_seconds"].tolist() == [3, 4, 5, 6, 7]


def test_search_seconds_count_the_failed_attempts_of_a_retried_trial():
    rows = [dict(task="t", method="m", repetition=0, trial=trial, epoch=e + 1,
                 trial_start=trial, train_seconds_cum=c, retry_seconds=retry)
            for trial, retry, cums in [(0, 0.0, [1, 2]), (1, 10.0, [3, 4]), (2, 0.0, [1])]
            for e, c in enumerate(cums)]
    assert results.table(rows)["search_seconds"].tolist() == [1, 2, 15, 16, 17]


def test_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "run.json"
    results.write_json({"a": 1}, path)

    def crash(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        results._atomic(path, crash)
    assert path.read_text().strip().startswith("{") and len(os.listdir(tmp_path)) == 1


def test_environment_names_versions_and_machine():
    env = results.environment()
    assert env["packages"]["torch"] and env["packages"]["ray"] and env["cpu_count"] >= 1
    assert "git_commit" in env and env["python"].startswith("3.")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_results_get_the_umasks_usual_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = [results.write_json({"a": 1}, tmp_path / "run.json"),
                   results.write_table(results.table([]), tmp_path)]
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [mode, mode]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.parquet", "run.json"]


def test_compute_in_another_unit_counts_every_epoch_of_a_training_at_its_cost():
    """Every epoch of the same training (an online method; a black-box family, whichever
    search ran it) is recounted at its cost (e.g. SGD-epochs); lost attempts drop out of the
    compute clock, a search's compute cumulates the recounted epochs in the order its trials
    started, and the measured seconds and wall-clock stay as they were."""
    rows = []
    for method, optimizer, seconds in (("random", "fixed", [9.0, 1.0, 3.0]),
                                       ("optuna-tpe", "fixed", [9.0, 1.0, 2.0]),
                                       ("oho", "online", [20.0, 4.0, 8.0])):
        for trial in (0, 1):
            for e, t in enumerate(seconds):
                rows.append(dict(task="t", method=method, optimizer=optimizer, repetition=0,
                                 trial=trial, epoch=e + 1, trial_start=trial, train_seconds=t,
                                 train_seconds_cum=sum(seconds[:e + 1]), experiment_start=0.0,
                                 retry_seconds=5.0 * trial, val_loss=1.0, test_loss=1.0))
    measured = results.table(rows)
    costs = pd.Series([1.0, 4.5], name="epoch_cost", index=pd.MultiIndex.from_tuples(
        [("t", "black-box · fixed"), ("t", "oho")], names=["task", "training"]))
    counted = results.at_epoch_costs(measured, costs)
    for method, per_epoch in (("random", 1.0), ("optuna-tpe", 1.0), ("oho", 4.5)):
        own = counted[counted["method"] == method]
        assert own["compute"].tolist() == pytest.approx([per_epoch * k for k in range(1, 7)])
    key = ["method", "trial", "epoch"]
    for column in ("train_seconds", "retry_seconds", "search_seconds", "experiment_start"):
        assert counted.set_index(key)[column].sort_index().tolist() == \
            measured.set_index(key)[column].sort_index().tolist()
    assert (measured["compute"] == measured["search_seconds"]).all()  # measured: the seconds
    with pytest.raises(ValueError, match="no cost"):
        results.at_epoch_costs(measured, costs.iloc[:1])
