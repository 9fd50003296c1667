"""`ohobench status`: a run's progress from its journals, with or without a driver running it."""

from pathlib import Path

import pytest

from bench import cli, journal, results, status, suite
from bench.experiment import plan
from bench.runlock import RunLock

SUITE = {"name": "s", "tasks": ["digits"], "methods": ["random", "oho"], "repetitions": 2,
         "trials": 3, "epochs": 4}
NOW = 1_000_000.0


def write_run(run_dir: Path, resumed: tuple[float, ...] = ()) -> dict[str, int]:
    """random: repetition 0 has 3 trials ended (4 epochs each), repetition 1 one trial with 2
    epochs begun; oho: repetition 0 ended, 2 hours ago. Returns the experiments' indices."""
    (run_dir / "journal").mkdir(parents=True)
    results.write_json({"suite": SUITE, "experiments": [], "started": NOW - 9000,
                        "resumed": list(resumed), "finished": None}, run_dir / results.RUN_JSON)
    names = {(e.method, e.repetition): e.name
             for e in plan(suite.build(SUITE, need_data=False))}

    def trial(name, index, epochs, ended, age):
        path = journal.path_of(run_dir, name)
        for epoch in range(1, epochs + 1):
            journal.append(path, {"event": "result", "trial": index,
                                  "record": {"epoch": epoch, "timestamp": NOW - age}})
        if ended:
            journal.append(path, {"event": "end", "trial": index,
                                  "summary": {"trial": index, "status": "completed"}})

    for i in range(3):
        trial(names["random", 0], i, 4, True, 60)
    trial(names["random", 1], 0, 2, False, 60)
    trial(names["oho", 0], 0, 4, True, 7200)
    return names


def described_while_held(run_dir: Path) -> str:
    """The status while a driver (this process) holds the run's lock."""
    lock = RunLock()
    lock.take(run_dir)
    try:
        return status.describe(run_dir, now=NOW)
    finally:
        lock.release()


def test_status_counts_what_the_journals_hold_against_the_plan(tmp_path):
    write_run(tmp_path)
    _, rows = status.progress(tmp_path, now=NOW)
    by = {r.entry: r for r in rows}
    random, oho = by["random · fixed"], by["oho"]
    assert (random.trials, random.ended, random.training) == (6, 3, 1)
    assert (random.epochs, random.planned_epochs) == (14, 24)
    assert random.sgd_epochs == 14.0 and random.recent_sgd_epochs == 14.0  # SGD: 1 per epoch
    assert (oho.trials, oho.ended, oho.epochs) == (2, 1, 4)
    per_epoch = oho.sgd_epochs / 4
    assert per_epoch > 2 and oho.planned_sgd_epochs == pytest.approx(8 * per_epoch)
    assert oho.recent_sgd_epochs == 0.0  # two hours ago: not in the last hour's pace


def test_status_says_whether_a_driver_runs_it_and_how_to_continue(tmp_path, capsys):
    write_run(tmp_path)
    assert cli.main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stopped before its end" in out and f"ohobench run --resume {tmp_path}" in out
    text = described_while_held(tmp_path)
    assert "running (pid " in text and "14 SGD-epochs an hour over the last 60 min" in text


def test_the_pace_counts_from_the_latest_resume_when_that_is_within_the_hour(tmp_path):
    write_run(tmp_path, resumed=(NOW - 5000, NOW - 1800))
    text = described_while_held(tmp_path)
    assert "28 SGD-epochs an hour over the last 30 min" in text  # 14 in half an hour


def test_status_of_a_directory_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and len(err.strip().splitlines()) == 1


def test_a_finished_run_without_journals_counts_from_its_table(tmp_path):
    """A published copy keeps run.json and records.parquet only."""
    rows = [dict(task="digits", method="random", optimizer="fixed", scheduler="fifo",
                 repetition=rep, trial=t, epoch=e, trial_start=0.0, train_seconds=1.0,
                 train_seconds_cum=float(e), timestamp=NOW)
            for rep in range(2) for t in range(3) for e in range(1, 5)]
    results.write_table(results.table(rows), tmp_path)
    results.write_json({"suite": SUITE, "experiments": [], "started": NOW - 9000,
                        "finished": NOW}, tmp_path / results.RUN_JSON)
    _, found = status.progress(tmp_path, now=NOW)
    by = {r.entry: r for r in found}
    assert (by["random · fixed"].ended, by["random · fixed"].epochs) == (6, 24)
    assert by["oho"].ended == 0
    assert "\nfinished: 24 of at most " in status.describe(tmp_path, now=NOW)
