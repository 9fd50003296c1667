"""Nothing is lost: the journal, `ohobench run --resume` after the driver is killed with SIGKILL,
and a trial whose Ray worker process is killed mid-trial."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import checkpoints, cli, journal, runner, suite
from bench.experiment import derive_seed
from bench.space import LogUniform
from methods import get as get_method
from methods.base import TrialOutcome, TrialStatus, parse_options
from tests import fake_plugins

EPOCHS = 4


# --- the journal -----------------------------------------------------------------------------

def record(trial, epoch, **extra):
    return {"event": "result", "trial": trial, "record": {"epoch": epoch, "trial": trial, **extra}}


def end(trial, error=""):
    return {"event": "end", "trial": trial,
            "summary": {"trial": trial, "status": "errored" if error else "completed",
                        "error": error, "seed": 7, "hparams": {"lr": 0.1}}}


def test_journal_keeps_the_last_attempt_of_ended_trials_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "j.jsonl"
    events = [{"event": "start", "time": 5.0}, record(0, 1, v=1), record(0, 2, v=1),
              {"event": "recover", "trial": 0, "error": "boom"},
              record(0, 1, v=2), record(0, 2, v=2), end(0),
              record(1, 1), end(1, error="RuntimeError: x"), record(2, 1)]
    for e in events:
        journal.append(path, e)
    with open(path, "a") as fh:
        fh.write('{"event": "result", "trial": 2, "rec')  # the driver died mid-line
    kept = journal.read(path)
    assert kept.start == 5.0
    assert [r["v"] for r in kept.records[0]] == [2, 2]  # the failed attempt's records dropped
    assert [s["attempts"] for s in kept.trials()] == [2, 1]
    assert kept.trials()[0]["failed_attempts"] == ["boom"]
    assert [(r["trial"], r["status"]) for r in kept.ended_records()] == [
        (0, "completed"), (0, "completed"), (1, "errored")]  # trial 2 never ended
    assert set(kept.replay()) == {0}  # errored trials are not replayed
    assert journal.read(tmp_path / "missing.jsonl").records == {}


def test_a_journal_names_what_it_lost_and_repairs_a_torn_tail(tmp_path):
    """A line in the middle that is not JSON, or an ended trial with an epoch missing, is
    damage, named; a last line without its newline (a killed driver's) is not, and is cut off
    before a resume appends after it."""
    path = tmp_path / "j.jsonl"
    for e in [record(0, 1), record(0, 2), end(0), record(1, 1), record(1, 3), end(1)]:
        journal.append(path, e)
    assert journal.read(path).damage() == "trial 1 ended with no record of epoch 2"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:1], "garbage{", *lines[1:]]) + "\n")
    assert journal.read(path).damage() == ("line 2 is not JSON; trial 1 ended with no record "
                                           "of epoch 2")
    torn = tmp_path / "torn.jsonl"
    for e in [record(0, 1), end(0)]:
        journal.append(torn, e)
    with open(torn, "a") as fh:
        fh.write('{"event": "result", "trial": 1, "rec')
    assert journal.read(torn).damage() is None
    assert journal.repair_tail(torn) and not journal.repair_tail(torn)
    journal.append(torn, record(1, 1))
    assert journal.read(torn).damage() is None and len(journal.read(torn).records[1]) == 1


def test_a_resume_trains_again_what_a_damaged_journal_lost(tmp_path):
    """The probe that found it: a garbage line in the middle of an interrupted run's journal,
    then --resume. The experiment whose journal lost an epoch starts over, says so in one line,
    and the table has every epoch of every trial; the other experiment is kept as it was."""
    proc = start_cli(tmp_path, "--task", "digits", "--method", "random", "--trials", "2",
                     "--repetitions", "2", "--epochs", "3", "--quiet")
    finish(proc)
    run_dir = next((tmp_path / "results").iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    info["finished"] = None  # as if interrupted before the end
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "records.parquet").unlink()
    damaged = run_dir / "journal" / "digits__random__fixed__rep0.jsonl"
    kept = (run_dir / "journal" / "digits__random__fixed__rep1.jsonl").read_bytes()
    lines = damaged.read_text().splitlines()
    second = next(i for i, line in enumerate(lines) if '"epoch": 2' in line)
    lines[second] = "garbage" + lines[second][7:]
    damaged.write_text("\n".join(lines) + "\n")
    proc = start_cli(tmp_path, "--resume", str(run_dir))
    finish(proc)
    out = open(proc.log).read()
    assert ("ohobench: starting digits__random__fixed__rep0 over: its journal lost events "
            f"(digits__random__fixed__rep0.jsonl: line {second + 1} is not JSON") in out
    df = pd.read_parquet(run_dir / "records.parquet")
    assert df.groupby(["repetition", "trial"])["epoch"].apply(sorted).tolist() == \
        [[1, 2, 3]] * 4
    assert (run_dir / "journal" / "digits__random__fixed__rep1.jsonl").read_bytes() == kept


def test_journal_counts_the_time_of_failed_attempts_but_not_of_replays(tmp_path):
    path = tmp_path / "j.jsonl"
    attempt = lambda start, cum: record(0, 1, trial_start=start, train_seconds_cum=cum)  # noqa
    for e in [attempt(1.0, 3.0), attempt(2.0, 5.0), end(0),  # a retry: 3 s lost
              attempt(2.0, 5.0), end(0)]:  # the kept attempt replayed after a resume
        journal.append(path, e)
    assert [r["retry_seconds"] for r in journal.read(path).ended_records()] == [3.0]


def test_journal_continues_an_attempt_from_its_checkpoint(tmp_path):
    """A retried attempt that continues from a checkpoint keeps the records before it and
    counts as lost only the partial epoch it died in; one restored from an older checkpoint
    (a driver's snapshot behind the journal) drops the epochs it trains again, and counts them."""
    path = tmp_path / "j.jsonl"
    epoch = lambda t, e, v=1: record(t, e, v=v, trial_start=1.0, timestamp=10.0 * e,  # noqa
                                     train_seconds=2.0, train_seconds_cum=2.0 * e)
    for e in [epoch(0, 1), epoch(0, 2), {"event": "recover", "trial": 0, "error": "killed",
                                         "time": 23.5},
              epoch(0, 3), end(0),  # continued from epoch 2: 3.5 s of epoch 3 lost
              epoch(1, 1), epoch(1, 2), epoch(1, 3),  # then the driver died
              epoch(1, 2, v=2), epoch(1, 3, v=2), end(1)]:  # restored from epoch 1
        journal.append(path, e)
    kept = journal.read(path)
    assert [r["epoch"] for r in kept.records[0]] == [1, 2, 3]
    assert [(r["epoch"], r["v"]) for r in kept.records[1]] == [(1, 1), (2, 2), (3, 2)]
    assert kept.lost_seconds == {0: 3.5, 1: 4.0}
    # Each record counts what was lost before it: nothing before the failure.
    assert [(r["trial"], r["epoch"], r["retry_seconds"]) for r in kept.ended_records()] == [
        (0, 1, 0.0), (0, 2, 0.0), (0, 3, 3.5), (1, 1, 0.0), (1, 2, 4.0), (1, 3, 4.0)]


def test_the_searchers_time_is_journaled_per_call_and_summed(tmp_path):
    from bench.ray_adapter import SearchAdapter

    path = tmp_path / "j.jsonl"
    m = get_method("random")
    space = {"lr": LogUniform(1e-3, 1.0)}
    adapter = SearchAdapter(m.search(space, 0, 2, m.options_type()), lambda i, hp: hp, path)
    adapter.suggest("a")
    adapter.on_trial_complete("a", {"val_loss": 1.0})
    adapter.suggest("b")
    calls = [e for e in map(json.loads, path.read_text().splitlines())]
    assert [e["call"] for e in calls] == ["suggest", "observe", "suggest"]
    assert journal.read(path).searcher_seconds == pytest.approx(sum(e["seconds"] for e in calls))
    assert all(e["seconds"] >= 0 for e in calls)


def test_an_errored_search_stays_closed_when_ray_restores_an_older_snapshot(tmp_path):
    """Ray's snapshot of a search may predate the error its journal holds: restored, the search
    proposes nothing more (the resume starts it over in a round of its own)."""
    from ray.tune.search import Searcher

    from bench.ray_adapter import SearchAdapter

    path = tmp_path / "j.jsonl"
    m = get_method("random")
    make = lambda: SearchAdapter(m.search({"lr": LogUniform(1e-3, 1.0)}, 0, 4,  # noqa: E731
                                          m.options_type()), lambda i, hp: hp, path)
    adapter = make()
    adapter.suggest("a")
    snapshot = adapter.get_state()
    restored = make()
    restored.set_state(snapshot)
    assert restored.suggest("b") != Searcher.FINISHED  # nothing in the journal: it goes on
    journal.append(path, {"event": "search_error", "error": "the search raised in observe: x"})
    restored = make()
    restored.set_state(snapshot)
    assert restored.suggest("b") == Searcher.FINISHED
    assert restored.error == "the search raised in observe: x"


def test_a_resume_starts_over_the_searches_that_raised_and_cut_short_retries(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "journal").mkdir()
    exps = [SimpleNamespace(name=n, budget=2, budget_seconds=None)
            for n in ("ok", "raised", "retry-cut", "retry-done", "fresh")]
    journals = {"ok": [end(0), end(1)], "raised": [end(0), {"event": "search_error",
                                                             "error": "e1"}],
                "retry-cut": [{"event": "retry", "errors": ["e1"]}, end(0)],
                "retry-done": [{"event": "retry", "errors": ["e1", "e2"]}, end(0), end(1)]}
    for name, events in journals.items():
        for e in events:
            journal.append(journal.path_of(tmp_path, name), e)
    assert [e.name for e in runner.to_start_over(tmp_path, exps)] == ["raised", "retry-cut"]
    done = journal.read(journal.path_of(tmp_path, "retry-done"))
    assert done.retried and done.earlier_search_errors == ["e1", "e2"]
    assert not runner.budgets_spent(tmp_path, exps[:3]) and runner.budgets_spent(
        tmp_path, [exps[0], exps[1], exps[3]])


# --- --resume: bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--resume", "{tmp}/nope"], "not a run directory"),
    (["--resume", "{tmp}/done"], "this run finished"),
    (["--resume", "{tmp}/done", "--trials", "3"], "drop --trials"),
    (["--resume", "{tmp}/future"], "run.json has schema 99, and this ohobench reads schemas 1 "
     "to 3"),
])
def test_resume_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "run.json").write_text(json.dumps({"finished": 1.0, "suite": {}}))
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "run.json").write_text(json.dumps({"schema": 99, "suite": {}}))
    code = cli.main(["run", *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --- through Ray -----------------------------------------------------------------------------

def start_cli(tmp, *flags, **environ):
    plugin = tmp / "site"
    if not plugin.exists():
        fake_plugins.install_test_plugins(plugin)
    env = dict(os.environ, PYTHONPATH=str(plugin), **environ)
    log = open(tmp / f"log-{time.monotonic_ns()}.txt", "w")
    out = [] if "--resume" in flags else ["--out", str(tmp / "results")]
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *out, *flags], env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    proc.log = log.name
    return proc


def finish(proc, timeout=600):
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # a hung run fails with what it printed
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running after {timeout} s: "
                             + open(proc.log).read()[-3000:]) from None
    assert code == 0, open(proc.log).read()[-3000:]
    return open(proc.log).read()


def wait_for(condition, timeout=300, what="", proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: " + open(proc.log).read()[-2000:])
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_resume_after_sigkill_keeps_finished_trials_and_completes_every_trial_once(tmp_path,
                                                                                  capsys):
    trials = 4
    flags = ["--task", "digits", "--method", "optuna-tpe", "--method", "random", "--method",
             "hd", "--trials", str(trials), "--repetitions", "2", "--epochs", str(EPOCHS),
             "--max-concurrent", "1", "--name", "killed"]
    black_box = [f"digits__{m}__fixed__rep{r}" for m in ("optuna-tpe", "random") for r in (0, 1)]
    proc = start_cli(tmp_path, *flags)

    def ended():
        files = {f.stem: f for f in (tmp_path / "results").glob("*/journal/*.jsonl")}
        return {n: len(journal.read(files[n]).summaries) if n in files else 0
                for n in black_box}

    # Kill with at least three searches mid-flight: some of their trials ended, not all.
    wait_for(lambda: sum(1 <= n < trials for n in ended().values()) >= 3,
             what="three searches in flight")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = ended()
    assert sum(1 <= n < trials for n in at_kill.values()) >= 3, "killed too late"
    run_dir = next((tmp_path / "results").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["finished"] is None
    # The killed driver's lock file names it, and does not block the resume (the kernel's lock
    # went with the process).
    assert (run_dir / ".lock").read_text().startswith(f"pid {proc.pid} on ")
    kept = {}
    for name in black_box:
        before = journal.read(run_dir / "journal" / f"{name}.jsonl")
        kept[name] = {i: r[0] for i, r in before.records.items() if i in before.summaries}
    # Reported before its end: the trials ended so far, from the journals, and it says so.
    assert cli.main(["report", str(run_dir)]) == 0
    report_out = capsys.readouterr().out
    done = sum(len(journal.read(f).summaries) for f in (run_dir / "journal").glob("*.jsonl"))
    assert f"has not finished: this report covers the {done} trial(s)" in report_out

    out = finish(start_cli(tmp_path, "--resume", str(run_dir)))
    assert "resuming" in out
    df = pd.read_parquet(run_dir / "records.parquet")
    epochs = df.groupby(["method", "repetition", "trial"])["epoch"].apply(sorted)
    assert len(epochs) == 2 * 2 * trials + 2 and all(e == list(range(1, EPOCHS + 1))
                                                     for e in epochs)
    assert not df.duplicated(["method", "optimizer", "repetition", "trial", "epoch"]).any()
    for name, trials_kept in kept.items():  # kept as recorded, not trained again
        method, rep = name.split("__")[1], int(name[-1])
        for i, first_epoch in trials_kept.items():
            row = df[(df.method == method) & (df.repetition == rep) & (df.trial == i)
                     & (df.epoch == 1)].iloc[0]
            assert row.trial_start == first_epoch["trial_start"]
            assert row.val_loss == first_epoch["val_loss"]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"] and len(info["resumed"]) == 1
    rows = {e["name"]: e for e in info["experiments"]}
    assert all(rows[n]["resumed"] and len(rows[n]["trials"]) == trials for n in black_box)
    assert all(t["attempts"] == 1 for e in rows.values() for t in e["trials"])

    # Each TPE search resumed its state: its proposals are those of one uninterrupted search
    # told the same outcomes in the same order (one trial at a time, so the order is fixed).
    chosen = suite.build({"tasks": ["digits"], "methods": ["optuna-tpe"], "trials": trials,
                          "epochs": EPOCHS})
    tpe_method = get_method("optuna-tpe")
    for rep in (0, 1):
        search = tpe_method.search(
            chosen.space_for("digits", "fixed"),
            derive_seed(chosen.seed, "digits", "optuna-tpe", "fixed", rep), trials,
            parse_options(tpe_method.options_type, {}, "optuna-tpe")[0])
        tpe = df[(df.method == "optuna-tpe") & (df.repetition == rep)]
        last = tpe.sort_values("epoch").groupby("trial").last()
        for i in range(trials):
            proposal = search.suggest()
            assert proposal == {k: last.loc[i, f"hp_{k}"] for k in proposal}
            search.observe(proposal,
                           TrialOutcome(TrialStatus.COMPLETED, last.loc[i, "val_loss"]))


def test_resume_after_sigkill_continues_scheduled_searches(tmp_path):
    """Random search and TPE under ASHA and Hyperband, and hd, killed with SIGKILL while the
    searches are mid-flight, then resumed: every trial is recorded once with its epochs in
    order from 1, the trials that had ended are kept as recorded, stopped trials stay stopped,
    and each scheduled search ends with its whole budget."""
    trials, epochs = 6, 4
    (tmp_path / "suite.toml").write_text(f"""
name = "scheduled"
tasks = ["digits"]
methods = ["random", "optuna-tpe", "hd"]
schedulers = ["asha", "hyperband"]
repetitions = 1
trials = {trials}
epochs = {epochs}
max_concurrent = 2
""")
    searches = [f"digits__{m}__fixed__{s}__rep0" for m in ("random", "optuna-tpe")
                for s in ("asha", "hyperband")]
    proc = start_cli(tmp_path, "--suite", str(tmp_path / "suite.toml"))

    def ended():
        files = {f.stem: f for f in (tmp_path / "results").glob("*/journal/*.jsonl")}
        return {n: len(journal.read(files[n]).summaries) if n in files else 0 for n in searches}

    wait_for(lambda: sum(1 <= n < trials for n in ended().values()) >= 2,
             what="two scheduled searches in flight", proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next((tmp_path / "results").iterdir())
    kept = {}
    for name in searches:
        before = journal.read(run_dir / "journal" / f"{name}.jsonl")
        kept[name] = {i: r[0] for i, r in before.records.items() if i in before.summaries}
    assert sum(map(len, kept.values())) >= 2

    finish(start_cli(tmp_path, "--resume", str(run_dir)))
    df = pd.read_parquet(run_dir / "records.parquet")
    assert not df.duplicated(["method", "scheduler", "repetition", "trial", "epoch"]).any()
    per_trial = df.groupby(["method", "scheduler", "trial"]).agg(
        epochs=("epoch", list), status=("status", "first"))
    assert all(e == list(range(1, len(e) + 1)) for e in per_trial.epochs)
    black_box = per_trial.drop("hd", level="method")
    assert black_box.groupby(["method", "scheduler"]).size().eq(trials).all()
    stopped = black_box[black_box.status == "stopped"]
    assert all(len(e) < epochs for e in stopped.epochs)
    assert set(black_box.status) <= {"completed", "stopped"}
    for name, trials_kept in kept.items():
        method, scheduler = name.split("__")[1], name.split("__")[3]
        for i, first in trials_kept.items():
            row = df[(df.method == method) & (df.scheduler == scheduler) & (df.trial == i)
                     & (df.epoch == 1)].iloc[0]
            assert (row.trial_start, row.val_loss) == (first["trial_start"], first["val_loss"])
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"] and len(info["resumed"]) == 1


def flaky_suite(tmp_path, name: str) -> Path:
    for sub in ("pids", "markers"):
        (tmp_path / name / sub).mkdir(parents=True)
    path = tmp_path / name / "suite.toml"
    path.write_text(f"""
tasks = ["digits"]
methods = ["flaky"]
repetitions = 1
epochs = 3
max_failures = 1
[options.flaky]
marker_dir = "{tmp_path / name / 'markers'}"
fail_attempts = 0
pid_dir = "{tmp_path / name / 'pids'}"
step_sleep = 0.02
""")
    return path


def test_a_trial_whose_worker_is_killed_continues_from_its_checkpoint(tmp_path):
    """SIGKILL of the worker in epoch 2: the retried attempt trains epochs 2 and 3 only, from
    the checkpoint of epoch 1, and the records equal those of an uninterrupted run."""
    suite_file = flaky_suite(tmp_path, "killed")
    pids = suite_file.parent / "pids"
    proc = start_cli(tmp_path, "--suite", str(suite_file))
    epochs = lambda n: [int(e) for e in next(pids.glob(f"epochs-*attempt{n}")).read_text().split()]  # noqa
    wait_for(lambda: any(pids.glob("epochs-*attempt1")) and 2 in epochs(1),
             what="the trial's second epoch", proc=proc)
    time.sleep(0.3)  # mid-epoch
    os.kill(int(next(pids.glob("pid-*attempt1")).read_text()), signal.SIGKILL)
    out = finish(proc)
    assert "retrying, attempt 2" in out
    assert epochs(1)[:2] == [1, 2] and epochs(2) == [2, 3]
    run_dir = next((tmp_path / "results").iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    trial = info["experiments"][0]["trials"][0]
    assert trial["status"] == "completed" and trial["attempts"] == 2
    assert len(trial["failed_attempts"]) == 1 and trial["failed_attempts"][0]
    assert info["checkpoints"]["files"] == 2 and info["checkpoints"]["bytes"] > 0  # epochs 1-2
    assert not list((run_dir / "ray").rglob(checkpoints.FILE))  # dropped once finished
    df = pd.read_parquet(run_dir / "records.parquet")
    assert sorted(df.epoch) == [1, 2, 3] and df.trial_start.nunique() == 1
    retry = df.sort_values("epoch").retry_seconds.tolist()  # lost before each record
    assert retry[0] == 0 and retry[1] == retry[2]  # epoch 1 came before the failure
    assert 0 < retry[2] < df.train_seconds_cum.max()  # the partial epoch 2 only

    finish(start_cli(tmp_path / "again", "--suite", str(flaky_suite(tmp_path, "again"))))
    again = pd.read_parquet(next((tmp_path / "again" / "results").iterdir()) / "records.parquet")
    losses = ["train_loss", "val_loss", "test_loss", "hp_lr"]
    pd.testing.assert_frame_equal(df.sort_values("epoch")[losses].reset_index(drop=True),
                                  again.sort_values("epoch")[losses].reset_index(drop=True))


def test_a_search_that_raises_ends_its_own_experiment_and_a_resume_starts_it_over(tmp_path):
    """failing-search raises in its second suggest: its experiment ends errored with one line
    in run.json, the summary and stderr (exit 1, no traceback); random search runs in full.
    With the bug fixed, `--resume` starts the errored experiment over, from scratch, and
    nothing else; it completes, and the run with it."""
    proc = start_cli(tmp_path, "--task", "digits", "--method", "failing-search", "--method",
                     "random", "--trials", "3", "--repetitions", "1", "--epochs", "2")
    assert proc.wait(timeout=600) == 1, open(proc.log).read()[-3000:]
    out = open(proc.log).read()
    assert "Traceback" not in out
    line = ("digits__failing-search__fixed__rep0: the search raised in suggest: ValueError: "
            "failing-search: injected bug")
    assert f"ohobench: search errored: {line}" in out.splitlines()
    run_dir = next((tmp_path / "results").iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"]
    rows = {e["method"]: e for e in info["experiments"]}
    assert rows["failing-search"]["search_error"] == line.split(": ", 1)[1]
    assert len(rows["failing-search"]["trials"]) == 1 and rows["random"]["search_error"] is None
    df = pd.read_parquet(run_dir / "records.parquet")
    assert df.groupby("method").trial.nunique().to_dict() == {"failing-search": 1, "random": 3}
    assert line in (run_dir / "summary.md").read_text()
    random_journal = (run_dir / "journal" / "digits__random__fixed__rep0.jsonl").read_bytes()
    raised = [json.loads(line) for line in (run_dir / "journal" / "digits__failing-search__fixed"
                                                 "__rep0.jsonl").read_text().splitlines()]
    trace = next(e["traceback"] for e in raised if e["event"] == "search_error")
    assert trace.startswith("Traceback") and "injected bug" in trace  # the whole of it

    def resume(**environ):
        proc = start_cli(tmp_path, "--resume", str(run_dir), **environ)
        code = proc.wait(timeout=600)
        return code, open(proc.log).read(), json.loads((run_dir / "run.json").read_text())

    started_over = ("ohobench: starting digits__failing-search__fixed__rep0 over: its search "
                    f"raised ({rows['failing-search']['search_error']})")
    code, out, info = resume(FAILING_SEARCH_FIXED="1")
    assert code == 0 and started_over in out, out[-3000:]
    assert "search errored" not in out and "Traceback" not in out
    rows = {e["method"]: e for e in info["experiments"]}
    assert rows["failing-search"]["search_error"] is None
    assert rows["failing-search"]["earlier_search_errors"] == [line.split(": ", 1)[1]]
    assert [t["status"] for t in rows["failing-search"]["trials"]] == ["completed"] * 3
    assert info["finished"] and len(info["retries"]) == 1
    assert [p.name for p in (run_dir / "journal" / "retried").iterdir()] == [
        "digits__failing-search__fixed__rep0.round1.jsonl"]
    # Random search was not run again: its journal is as it was, its trials as recorded.
    assert (run_dir / "journal" / "digits__random__fixed__rep0.jsonl").read_bytes() == \
        random_journal
    df = pd.read_parquet(run_dir / "records.parquet")
    assert df.groupby("method").trial.nunique().to_dict() == {"failing-search": 3, "random": 3}
    assert "Searches that raised" not in (run_dir / "summary.md").read_text()
    code, out, _ = resume()
    assert code == 2 and "this run finished" in out


def test_a_restored_collector_shows_the_progress_the_resuming_command_asked_for(
        tmp_path, monkeypatch):
    """Tune restores callbacks as pickled: `--resume --quiet` must not show the first run's
    bars or lines."""
    from bench.ray_adapter import PROGRESS_ENV, RecordCollector

    restored = pickle.loads(pickle.dumps(RecordCollector(tmp_path, [], mode="lines")))
    monkeypatch.setenv(PROGRESS_ENV, "quiet")
    restored.setup()
    assert restored.mode == "quiet" and restored.view.mode == "quiet"
