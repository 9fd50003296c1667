"""Ctrl-C through real Ray: one SIGINT, or two in quick succession, leave a run that is not
finished, whose cut trials are journaled as interrupted and whose ended trials are kept; then
`--resume` completes every trial exactly once."""

import errno
import json
import os
import signal
import time

import pandas as pd
import pytest

from bench import cli, journal
from bench.errors import ConfigError
from bench.runlock import RunLock
from tests.test_resume import end, finish, record, start_cli, wait_for

EPOCHS, REPETITIONS = 3, 4
SUITE = """
tasks = ["digits"]
methods = ["flaky"]
repetitions = {repetitions}
epochs = {epochs}
[options.flaky]
marker_dir = "{markers}"
fail_attempts = 0
step_sleep = 0.1  # an epoch of about 4 s: a trial seen mid-flight is still training when the
                  # Ctrl-C lands, also on a loaded machine (0.02 let one end first, 2026-12-07)
"""


def test_trials_cut_short_are_journaled_as_interrupted_and_trained_again(tmp_path):
    path = tmp_path / "j.jsonl"
    for e in [record(0, 1), record(0, 2), end(0), record(1, 1, trial_start=5.0)]:
        journal.append(path, e)
    assert journal.mark_interrupted(path) == 1 and journal.mark_interrupted(path) == 0
    kept = journal.read(path)
    assert kept.interrupted == {1} and set(kept.summaries) == {0}
    assert set(kept.replay()) == {0}  # not replayed: trained again
    journal.append(path, record(1, 1, trial_start=9.0))  # its new attempt
    kept = journal.read(path)
    assert kept.interrupted == set() and [r["trial_start"] for r in kept.records[1]] == [9.0]


def journals(tmp_path) -> dict[str, journal.Journal]:
    return {f.stem: journal.read(f) for f in (tmp_path / "results").glob("*/journal/*.jsonl")}


def mid_flight(tmp_path) -> bool:
    """Some trial ended and another has reported its first epoch only: it has EPOCHS - 1 to
    go when the Ctrl-C is sent."""
    kept = journals(tmp_path).values()
    return (any(j.summaries for j in kept)
            and any(len(j.records[i]) == 1 for j in kept
                    for i in set(j.records) - set(j.summaries)))


@pytest.mark.parametrize("sigints", [1, 2])
def test_ctrl_c_leaves_a_resumable_run_that_completes_every_trial_once(tmp_path, sigints):
    (tmp_path / "markers").mkdir()
    (tmp_path / "suite.toml").write_text(SUITE.format(
        repetitions=REPETITIONS, epochs=EPOCHS, markers=tmp_path / "markers"))
    proc = start_cli(tmp_path, "--suite", str(tmp_path / "suite.toml"))
    wait_for(lambda: mid_flight(tmp_path), what="a trial ended and another mid-flight")
    sent = time.monotonic()
    for _ in range(sigints):
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.2)
    assert proc.wait(timeout=120) == 130
    print(f"{sigints} SIGINT(s): exited {time.monotonic() - sent:.1f} s after the first")
    out = open(proc.log).read()
    run_dir = next((tmp_path / "results").iterdir())
    assert f"continue with: ohobench run --resume {run_dir}" in out
    assert "Traceback" not in out
    assert json.loads((run_dir / "run.json").read_text())["finished"] is None
    before = {name: j for name, j in journals(tmp_path).items()}
    assert any(j.interrupted for j in before.values())  # cut short, and journaled so
    assert all(not j.interrupted & set(j.summaries) for j in before.values())
    ended = {(name, i): recs[0] for name, j in before.items() for i, recs in j.records.items()
             if i in j.summaries}
    assert ended

    out = finish(start_cli(tmp_path, "--resume", str(run_dir)))
    assert "resuming" in out
    df = pd.read_parquet(run_dir / "records.parquet")
    epochs = df.groupby(["method", "repetition", "trial"])["epoch"].apply(sorted)
    assert len(epochs) == REPETITIONS
    assert all(e == list(range(1, EPOCHS + 1)) for e in epochs)
    assert set(df.status) == {"completed"}
    for (name, i), first in ended.items():  # kept as recorded, not trained again
        row = df[(df.repetition == int(name[-1])) & (df.trial == i) & (df.epoch == 1)].iloc[0]
        assert row.trial_start == first["trial_start"]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"] and len(info["interrupted"]) == 1


# --- one driver per run directory ------------------------------------------------------------

def unfinished_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(
        {"suite": {"tasks": ["digits"], "methods": ["random"]}, "finished": None}))
    return run_dir


def test_a_second_driver_is_refused_while_the_first_holds_the_run(tmp_path, capsys):
    import ray

    run_dir = unfinished_run(tmp_path)
    first = RunLock()
    first.take(run_dir)
    try:
        code = cli.main(["run", "--resume", str(run_dir)])
    finally:
        first.release()
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"being run by another ohobench driver (pid {os.getpid()} on " in err
    assert not ray.is_initialized()  # refused before Ray starts


def test_the_lock_left_by_a_killed_driver_does_not_block(tmp_path):
    run_dir = unfinished_run(tmp_path)
    (run_dir / ".lock").write_text("pid 999999999 on elsewhere\n")  # its driver is gone
    lock = RunLock()
    lock.take(run_dir)
    try:
        assert (run_dir / ".lock").read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(ConfigError, match="another ohobench driver"):
            RunLock().take(run_dir)
    finally:
        lock.release()
    RunLock().take(run_dir)  # released: free again


# --- a full disk -----------------------------------------------------------------------------

def test_a_full_disk_leaves_one_line_and_a_resumable_run(tmp_path, capsys, monkeypatch):
    from bench import results

    atomic = results._atomic

    def no_space(tmp):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # unnamed, as from pyarrow

    def full(path, write):  # the disk fills up when the table is written
        return atomic(path, no_space if path.name == results.TABLE else write)

    flags = ["--task", "digits", "--method", "random", "--trials", "2", "--repetitions", "1",
             "--epochs", "1", "--quiet"]
    monkeypatch.setattr(results, "_atomic", full)
    code = cli.main(["run", "--out", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # Ray's own warnings may come first
    run_dir = next(tmp_path.iterdir())
    assert code == 1 and err.startswith(f"ohobench: cannot write '{run_dir}/records.parquet': "
                                        "No space left on device; the trials that ended are kept")
    assert err.endswith(f"continue with: ohobench run --resume {run_dir}")
    assert json.loads((run_dir / "run.json").read_text())["finished"] is None
    assert not list(run_dir.glob(".*.tmp"))  # no half-written file left
    assert len(journal.read(run_dir / "journal" / "digits__random__fixed__rep0.jsonl")
               .summaries) == 2
    # Resumable: as after a SIGKILL (tests/test_resume.py), which --resume completes.
    assert cli.resumable(str(run_dir), None, {})[0] == run_dir
