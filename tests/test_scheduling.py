"""Whole-suite scheduling: the multiplexing searcher's policy, caps and budgets; per-search
schedulers; one real Ray run where every experiment is in flight at once; and the conformance of
every black-box search under every scheduler, through Ray."""

import itertools
import json
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from ray import cloudpickle
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from bench import accounting, journal, runner, suite
from bench import experiment as ex
from bench.cli import main
from bench.multiplex import SuiteScheduler, SuiteSearcher
from bench.ray_adapter import SearchAdapter


def searcher_for(values, tmp_path=None):
    exps = ex.plan(suite.build(values))
    adapters = {e.name: SearchAdapter(e.search(), lambda i, hp, e=e: {
        "spec": e.trial_config(i, hp)}) for e in exps}
    return exps, SuiteSearcher(exps, adapters)


def suggest_names(s, n):
    ids = [f"t{next(COUNTER)}" for _ in range(n)]
    out = []
    for trial_id in ids:
        config = s.suggest(trial_id)
        out.append(config if not isinstance(config, dict) else
                   (trial_id, config["spec"].experiment))
    return out


COUNTER = itertools.count()


def test_least_progress_first_caps_and_budgets():
    # 2 TPE searches (cap 4, 5 trials each), 2 random searches (no cap), 2 online repetitions
    exps, s = searcher_for({"methods": ["optuna-tpe", "random", "hd"], "repetitions": 2,
                            "trials": 5})
    tpe0, tpe1, rnd0, rnd1, hd0, hd1 = (e.name for e in exps)
    got = suggest_names(s, 6)
    # Every experiment gets its first trial before any gets a second (all at 0 progress).
    assert [n for _, n in got] == [tpe0, tpe1, rnd0, rnd1, hd0, hd1]
    got = suggest_names(s, 12)
    assert [n for _, n in got] == [tpe0, tpe1, rnd0, rnd1] * 3  # online ones are done
    # TPE searches are at their cap (4 live): only the random ones go on, to their budget.
    assert [n if n is None else n[1] for n in suggest_names(s, 3)] == [rnd0, rnd1, None]
    assert s.progress()[tpe0] == (4, 4) and s.progress()[rnd0] == (5, 5)
    first_tpe = next(t for t, n in s.owner.items() if n == tpe0)
    s.on_trial_complete(first_tpe, {"val_loss": 1.0, "trial_start": time.time()})
    assert [n for _, n in suggest_names(s, 1)] == [tpe0] and suggest_names(s, 1) == [None]
    for trial_id in list(s.owner):
        s.on_trial_complete(trial_id, {"val_loss": 1.0})
    assert [n for _, n in suggest_names(s, 1)] == [tpe1]
    s.on_trial_complete(next(iter(s.owner)), {"val_loss": 1.0})
    assert suggest_names(s, 1) == [Searcher.FINISHED]


def test_a_time_budget_counts_from_the_searchs_first_trial_start():
    exps, s = searcher_for({"methods": ["random"], "repetitions": 2, "trials": 50,
                            "budget_seconds": 30.0})
    [(t0, first), (t1, second)] = suggest_names(s, 2)
    s.on_trial_result(t0, {"trial_start": time.time() - 31})  # started 31 s ago
    s.on_trial_result(t1, {"trial_start": time.time() - 1})
    assert s.expired(first) and not s.expired(second)
    assert {n for _, n in suggest_names(s, 3)} == {second}


def test_searcher_state_covers_every_search(tmp_path):
    values = {"methods": ["optuna-tpe", "random"], "repetitions": 2, "trials": 4}
    _, a = searcher_for(values)
    for trial_id, _ in suggest_names(a, 3):
        a.on_trial_complete(trial_id, {"val_loss": 0.5})
    suggest_names(a, 2)  # two live trials
    a.save(str(tmp_path / "s.pkl"))
    _, b = searcher_for(values)
    b.restore(str(tmp_path / "s.pkl"))
    assert b.owner == a.owner and b.progress() == a.progress()
    ids = [f"x{i}" for i in range(4)]
    assert [b.suggest(i)["spec"] for i in ids] == [a.suggest(i)["spec"] for i in ids]


class FakeTrial:
    """What Ray's schedulers read of a trial; hashable, as Hyperband keys its brackets by trial."""

    def __init__(self, name, trial_id, status="RUNNING"):
        self.trial_id, self.status, self.is_saving = trial_id, status, False
        self.config = {"spec": SimpleNamespace(experiment=name)}

    def __repr__(self):
        return self.trial_id


fake_trial = FakeTrial


def test_asha_compares_trials_of_the_same_search_only():
    values = {"methods": ["random"], "schedulers": ["asha"], "repetitions": 2, "epochs": 3,
              "scheduler": {"asha": {"reduction_factor": 2}}}
    exps, searcher = searcher_for(values)
    s = SuiteScheduler(searcher, {e.name: e.scheduler.build() for e in exps})
    a, b = exps[0].name, exps[1].name
    good = [fake_trial(a, f"a{i}") for i in range(3)]
    bad = fake_trial(b, "b0")
    for t in [*good, bad]:
        s.on_trial_add(None, t)
    result = lambda v: {"epoch": 1, "val_loss": v, "trial_start": 0.0}  # noqa
    assert all(s.on_trial_result(None, t, result(0.1)) == TrialScheduler.CONTINUE for t in good)
    # The first trial of search b at the rung is compared with b's trials only: none yet.
    assert s.on_trial_result(None, bad, result(9.0)) == TrialScheduler.CONTINUE
    worse = fake_trial(a, "a9")
    s.on_trial_add(None, worse)
    assert s.on_trial_result(None, worse, result(9.0)) == TrialScheduler.STOP  # within a


def test_a_scheduler_snapshotted_before_hyperband_still_restores():
    """A run snapshotted by an older ohobench (its SuiteScheduler had no `choosers`) resumes:
    --resume of the MNIST study across that change relies on it."""
    values = {"methods": ["random"], "schedulers": ["asha"], "repetitions": 1, "epochs": 3}
    exps, searcher = searcher_for(values)
    s = SuiteScheduler(searcher, {e.name: e.scheduler.build() for e in exps})
    state = dict(s.__dict__)
    del state["choosers"]
    old = SuiteScheduler.__new__(SuiteScheduler)
    old.__setstate__(state)
    trial = FakeTrial(exps[0].name, "t0", status="PENDING")
    old.on_trial_add(None, trial)
    assert not old.choosers and old.choose_trial_to_run(None) is trial


def test_hyperband_halves_and_resumes_within_its_own_search_only():
    """Ray's HyperBandScheduler behind SuiteScheduler: eta 3 over 3 epochs puts a search's
    trials 1-2 in a bracket that runs them to the end, trials 3-4 in one that keeps 1 of them
    after epoch 1. Another search's paused trial is neither compared nor resumed."""
    values = {"methods": ["random"], "schedulers": ["hyperband"], "repetitions": 2, "epochs": 3}
    exps, searcher = searcher_for(values)
    s = SuiteScheduler(searcher, {e.name: e.scheduler.build() for e in exps})
    a = [FakeTrial(exps[0].name, f"a{i}") for i in range(4)]
    b = [FakeTrial(exps[1].name, f"b{i}") for i in range(4)]
    for t in [*a, *b]:
        s.on_trial_add(None, t)
    stopped = []
    controller = SimpleNamespace(stop_trial=stopped.append)
    result = lambda v: {"epoch": 1, "val_loss": v, "trial_start": 0.0}  # noqa
    assert s.on_trial_result(controller, a[0], result(5.0)) == TrialScheduler.CONTINUE
    assert s.on_trial_result(controller, a[2], result(0.5)) == TrialScheduler.PAUSE
    a[2].status = "PAUSED"  # waits for a[3], its bracket's other trial
    assert s.on_trial_result(controller, b[2], result(0.1)) == TrialScheduler.PAUSE
    b[2].status = "PAUSED"
    assert s.choose_trial_to_run(controller) is None  # nothing pending, nobody promoted
    # a[3] is worse than a[2], and compared with it only (b[2] is better than both).
    assert s.on_trial_result(controller, a[3], result(0.9)) == TrialScheduler.STOP
    assert s.choose_trial_to_run(controller) is a[2]  # promoted; b[2] still waits
    b[3].status = "PENDING"
    assert s.choose_trial_to_run(controller) is b[3]  # pending trials first, in order added
    assert stopped == []


def test_a_resumed_hyperband_leaves_ended_trials_out_of_its_brackets():
    """Tune's restore re-adds every trial of the run, ended ones too. Had Hyperband put the
    ended a0 in a bracket with a1, a1 would wait paused at its last epoch for a0's results
    forever (CI hung so once); it stops, as its bracket holds nobody else."""
    values = {"methods": ["random"], "schedulers": ["hyperband"], "repetitions": 1, "epochs": 3}
    exps, searcher = searcher_for(values)
    s = SuiteScheduler(searcher, {e.name: e.scheduler.build() for e in exps})
    ended, errored = (FakeTrial(exps[0].name, "a0", status="TERMINATED"),
                      FakeTrial(exps[0].name, "e0", status="ERROR"))
    a1 = FakeTrial(exps[0].name, "a1")
    for t in (ended, a1, errored):  # a0 and a1 would share a bracket of 2 that runs 3 epochs
        s.on_trial_add(None, t)
    controller = SimpleNamespace(stop_trial=lambda t: None)
    last = {"epoch": 3, "val_loss": 0.5, "trial_start": 0.0}
    assert s.on_trial_result(controller, a1, last) == TrialScheduler.STOP
    assert list(s.queue) == ["a1"]  # the next trial to start is never an ended one


@pytest.mark.parametrize("argv, expected", [
    (["--max-concurrent", "-1"], "max_concurrent: must be >= 0, got -1"),
    (["--max-concurrent", "9", "--trials", "6"],
     "max_concurrent: 9 trials of one search at once is more than its budget of 6 trials"),
])
def test_bad_concurrency_gets_one_line_and_exit_2(capsys, tmp_path, argv, expected):
    code = main(["run", "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # before Ray or anything started


# --- through Ray ----------------------------------------------------------------------------

SLOTS = 8  # logical CPUs: more than a model-based search's cap of 4, so the cap is what binds


def run_on_local_ray(chosen) -> tuple:
    """Run a suite on a fresh local Ray of SLOTS logical CPUs: (run dir, seconds it took)."""
    import ray

    ray.init(address="local", num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
    try:
        began = time.time()
        run_dir = runner.run(chosen, mode="quiet")
        return run_dir, time.time() - began
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sched")
    # Black-box searches under asha; the online methods under fifo, as always.
    chosen = suite.build({"name": "sched", "tasks": ["digits"],
                          "methods": ["optuna-tpe", "random", "hd", "oho"], "repetitions": 2,
                          "trials": 6, "epochs": 3, "out": str(tmp), "schedulers": ["asha"],
                          "scheduler": {"asha": {"reduction_factor": 2}}})
    return run_on_local_ray(chosen)


def intervals(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    return pd.DataFrame([dict(name=e["name"], method=e["method"], **t)
                         for e in info["experiments"] for t in e["trials"]]), info


def most_at_once(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def overlap(a, b):
    return min(a[1], b[1]) > max(a[0], b[0])


def experiments_at_once(df):
    """The most experiments with a trial running at one moment."""
    moments = sorted(set(df.start))
    return max(df[(df.start <= t) & (df.end > t)].name.nunique() for t in moments)


def test_every_experiment_in_flight_together(suite_run):
    run_dir, _ = suite_run
    df, info = intervals(run_dir)
    assert info["scheduling"]["slots"] == SLOTS
    spans = {n: (g.start.min(), g.end.max()) for n, g in df.groupby("name")}
    assert len(spans) == 2 * 2 + 2 * 2
    # No experiment waited for the others: each overlaps another, and many run at once (a
    # sequential runner gives 1).
    assert all(any(overlap(spans[a], spans[b]) for b in spans if b != a) for a in spans)
    assert experiments_at_once(df) >= 4
    online = df[df.method.isin(["hd", "oho"])]
    assert most_at_once(list(zip(online.start, online.end, strict=True))) >= 2
    assert experiments_at_once(online) >= 2


def test_per_search_cap_never_exceeded_and_table_complete(suite_run):
    run_dir, _ = suite_run
    df, info = intervals(run_dir)
    tpe = df[df.method == "optuna-tpe"]
    peaks = [most_at_once(list(zip(g.start, g.end, strict=True))) for _, g in tpe.groupby("name")]
    assert max(peaks) <= ex.MODEL_BASED_CONCURRENT
    table = pd.read_parquet(run_dir / "records.parquet")
    trial = ["method", "optimizer", "repetition", "trial"]
    assert table.groupby(trial).ngroups == 2 * 6 + 2 * 6 + 2 + 2
    assert not table.duplicated([*trial, "epoch"]).any()
    assert set(table[table.optimizer == "online"].scheduler) == {"fifo"}
    full = table[table.scheduler == "fifo"].groupby(trial)["epoch"].apply(sorted)
    assert all(e == [1, 2, 3] for e in full)
    assert set(table[table.scheduler == "fifo"].status) == {"completed"}
    asha = table[table.scheduler == "asha"].groupby(["method", "repetition", "trial"]).agg(
        epochs=("epoch", "max"), status=("status", "first"))
    assert len(asha) == 2 * 2 * 6
    assert ((asha.status == "stopped") == (asha.epochs < 3)).all()
    # Per search, the first trial to reach the last rung is never stopped.
    assert asha.groupby(["method", "repetition"])["epochs"].max().eq(3).all()
    online = table[(table.epoch == 1) & table.method.isin(["hd", "oho"])]
    assert online.groupby("repetition")["seed"].nunique().eq(1).all()  # still paired


def test_progress_counts_per_experiment_and_prints_plain_lines(capsys):
    from bench.progress import SuiteView, count

    exps = ex.plan(suite.build({"methods": ["random", "hd"], "repetitions": 2, "trials": 3}))
    trials = [SimpleNamespace(status=status, config={"spec": SimpleNamespace(experiment=e.name)})
              for e, status in [(exps[0], "TERMINATED"), (exps[0], "RUNNING"),
                                (exps[0], "PENDING"), (exps[1], "ERROR"), (exps[2], "RUNNING")]]
    assert count(trials) == {exps[0].name: (1, 1, 1), exps[1].name: (1, 0, 0),
                             exps[2].name: (0, 1, 0)}
    view = SuiteView("lines", exps)
    view.update([], force=True)  # the run starts with no trial done
    view.began -= 10  # 2 of 8 trials done in 10 s: 30 s left at that rate
    view.update(trials, force=True)
    view.line("  [a trial line]", notable=False)
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("suite: 2/8 trials done · 2 running · 1 pending · elapsed 0:00:10")
    assert out[1].endswith("ETA 0:00:30") and out[2] == "  [a trial line]"
    resumed = SuiteView("lines", exps)  # 2 trials had ended before a resume; 1 more in 10 s
    resumed.update(trials, force=True)
    resumed.began -= 10
    resumed.update([*trials, SimpleNamespace(status="TERMINATED", config=trials[0].config)],
                   force=True)
    assert capsys.readouterr().out.splitlines()[1].endswith(
        "3/8 trials done · 2 running · 1 pending · elapsed 0:00:10 · ETA 0:00:50")
    quiet = SuiteView("quiet", exps)
    quiet.update(trials, force=True)
    quiet.line("x")
    assert capsys.readouterr().out == ""
    bars = SuiteView("bars", exps)  # tqdm, one bar per experiment under the suite's
    bars.update(trials, force=True)
    assert [b.n for b in bars.bars] == [2, 1, 1, 0, 0] and len(bars.bars) == 1 + len(exps)
    bars.close()


# --- every black-box search under every scheduler, through Ray -------------------------------

SEARCHES = ["random", "optuna-tpe", "optuna-gp", "skopt-gp"]
SCHEDULERS = ["fifo", "asha", "hyperband", "pbt"]
EPOCHS, TRIALS = 3, 4


@pytest.fixture(scope="module")
def conformance_run(tmp_path_factory):
    """One suite: every search under every scheduler, one repetition each, and an online method
    (which runs under fifo whatever the suite's schedulers). Hyperband with eta 3 over 3 epochs
    puts trials 1-2 of a search in a bracket that runs them to the end and trials 3-4 in one
    that keeps 1 of them after epoch 1 if both are in it by then (the suite's 52 trials are
    proposed a few at a time, so that depends on timing)."""

    tmp = tmp_path_factory.mktemp("conformance")
    chosen = suite.build({"name": "conformance", "tasks": ["digits"],
                          "methods": [*SEARCHES, "hd"], "schedulers": SCHEDULERS,
                          "repetitions": 1, "trials": TRIALS, "epochs": EPOCHS,
                          "out": str(tmp), "scheduler": {"asha": {"reduction_factor": 2},
                                                         "pbt": {"population": TRIALS,
                                                                 "interval": 1}},
                          "options": {"optuna-gp": {"n_startup_trials": 2, "fast": True},
                                      "skopt-gp": {"n_initial_points": 2}}})
    run_dir, _ = run_on_local_ray(chosen)
    table = pd.read_parquet(run_dir / "records.parquet")
    return run_dir, table, json.loads((run_dir / "run.json").read_text())


def per_trial(table):
    return table.groupby(["method", "scheduler", "trial"]).agg(
        epochs=("epoch", list), last=("epoch", "max"), status=("status", "first"),
        seconds=("train_seconds_cum", "max"))


def test_every_search_under_every_scheduler_is_complete(conformance_run):
    _, table, info = conformance_run
    trials = per_trial(table[table.optimizer != "online"])
    counts = trials.groupby(["method", "scheduler"]).size()
    assert counts.to_dict() == {(m, s): TRIALS for m in SEARCHES for s in SCHEDULERS}
    assert not table.duplicated(["method", "scheduler", "trial", "epoch"]).any()
    assert all(e == list(range(1, len(e) + 1)) for e in trials.epochs)  # no gap, no repeat
    assert ((trials.status == "stopped") == (trials["last"] < EPOCHS)).all()
    assert set(trials.status) <= {"completed", "stopped"}
    fifo = trials.xs("fifo", level="scheduler")
    assert set(fifo.status) == {"completed"} and (fifo["last"] == EPOCHS).all()
    # Stopped trials keep their records and their time, in the table and in run.json.
    stopped = trials[trials.status == "stopped"]
    assert len(stopped) and (stopped.seconds > 0).all()
    assert {s for (_, s, _) in stopped.index} <= {"asha", "hyperband"}
    assert "asha" in {s for (_, s, _) in stopped.index}  # 4 searches with 4 trials each
    rows = {(e["method"], e["scheduler"]): e for e in info["experiments"]}
    for (method, scheduler, trial), row in stopped.iterrows():
        [summary] = [t for t in rows[(method, scheduler)]["trials"] if t["trial"] == trial]
        assert summary["status"] == "stopped" and summary["epochs"] == row["last"]
    # Hyperband's first bracket runs trials 1-2 to the end; the second stops at most one of
    # trials 3-4, after epoch 1.
    hyperband = trials.xs("hyperband", level="scheduler").reset_index()
    assert (hyperband[hyperband.trial < 2]["last"] == EPOCHS).all()
    late = hyperband[hyperband.trial >= 2].groupby("method")["last"].apply(sorted)
    assert all(last in ([EPOCHS, EPOCHS], [1, EPOCHS]) for last in late)
    assert set(table[table.method == "hd"].scheduler) == {"fifo"}
    # Each population copies within itself only, a member better than the copying one then.
    pbt = table[table.scheduler == "pbt"].set_index(["method", "trial", "epoch"])
    clones = pbt[pbt.cloned_from.notna()]
    assert len(clones)
    for (method, trial, _epoch), row in clones.iterrows():
        at = int(row.cloned_at)
        assert pbt.loc[(method, int(row.cloned_from), at), "val_loss"] < \
            pbt.loc[(method, trial, at), "val_loss"]


def test_hyperband_pauses_stops_and_resumes_through_ray(tmp_path):
    """One search under Hyperband, its 4 trials proposed at once: trials 3-4 share a bracket,
    the first of them at epoch 1 is paused, and one of the two is stopped there. If the paused
    one is promoted, it continues from its checkpoint of epoch 1: one start, nothing trained
    twice, nothing in retry_seconds."""

    chosen = suite.build({"name": "hyperband", "tasks": ["digits"], "methods": ["random"],
                          "schedulers": ["hyperband"], "repetitions": 1, "trials": TRIALS,
                          "epochs": EPOCHS, "out": str(tmp_path)})
    run_dir, _ = run_on_local_ray(chosen)
    table = pd.read_parquet(run_dir / "records.parquet")
    trials = table.groupby("trial").agg(epochs=("epoch", list), status=("status", "first"),
                                        retry=("retry_seconds", "max"),
                                        start=("trial_start", "first"))
    assert trials.epochs.tolist()[:2] == [[1, 2, 3]] * 2 and set(trials.status[:2]) == {
        "completed"}
    late = trials.iloc[2:]
    [stopped] = late[late.status == "stopped"].index
    [promoted] = late[late.status == "completed"].index
    assert late.epochs[stopped] == [1] and late.epochs[promoted] == [1, 2, 3]
    assert (trials.retry == 0).all()
    assert table.groupby("trial").trial_start.nunique().eq(1).all()
    info = json.loads((run_dir / "run.json").read_text())
    assert [t["status"] for t in info["experiments"][0]["trials"]] == list(trials.status)


def test_a_scheduler_compares_the_trials_of_its_own_search_only(conformance_run):
    """A trial stopped at epoch e was worse there than a trial of its own search: stopped by
    its own search's rung, not by another search's trials. ASHA decides on the results it has,
    so that trial reported epoch e first; Hyperband waits for its bracket."""
    _, table, _ = conformance_run
    black_box = table[table.optimizer != "online"]
    trials = per_trial(black_box)
    for (method, scheduler, trial), row in trials[trials.status == "stopped"].iterrows():
        search = black_box[(black_box.method == method) & (black_box.scheduler == scheduler)]
        at_rung = search[search.epoch == row["last"]].set_index("trial")
        mine = at_rung.loc[trial]
        better = at_rung[(at_rung.index != trial) & (at_rung.val_loss < mine.val_loss)]
        if scheduler == "asha":
            better = better[better.timestamp < mine.timestamp]
        assert len(better), (method, scheduler, trial)


def test_the_report_names_each_search_under_each_scheduler(conformance_run, capsys):
    from bench import report
    from bench.cli import print_report

    run_dir, table, _ = conformance_run
    summary = report.summary(table)
    names = {m if s == "fifo" else f"{m} · {s}" for m in SEARCHES for s in SCHEDULERS}
    assert set(summary.method) == names | {"hd"}  # fifo entries are named as before
    assert (summary.trials[summary.method != "hd"] == TRIALS).all()
    print_report(run_dir, None)  # what `ohobench run` and `ohobench report` print and write
    assert "optuna-gp · hyperband" in capsys.readouterr().out
    shown = (run_dir / "summary.md").read_text()
    assert "| optuna-tpe · asha | fixed |" in shown and "| skopt-gp · hyperband | fixed |" in shown


@pytest.mark.parametrize("journaled", [True, False])
def test_a_resumed_asha_compares_new_trials_with_those_before_the_resume(tmp_path, journaled):
    """Tune restores schedulers as they were built, with empty rungs. Refilled from the
    journal as Tune re-adds the ended trials, ASHA stops a new trial that is worse than the
    three before it at the first rung; with nothing journaled, it has nothing to compare with."""
    values = {"methods": ["random"], "schedulers": ["asha"], "repetitions": 1, "epochs": 9}
    exps, searcher = searcher_for(values)
    name = exps[0].name
    path = tmp_path / f"{name}.jsonl"
    for i, val in enumerate([0.1, 0.2, 0.3] if journaled else []):
        for epoch in (1, 2, 3):
            journal.append(path, {"event": "result", "trial": i,
                                  "record": {"epoch": epoch, "val_loss": val}})
        journal.append(path, {"event": "end", "trial": i, "summary": {"status": "completed"}})
    s = SuiteScheduler(searcher, {name: exps[0].scheduler.build()}, {name: path})
    s = cloudpickle.loads(cloudpickle.dumps(s))  # as Tune restores it
    for i in range(3):
        ended = FakeTrial(name, f"a{i}", status="TERMINATED")
        ended.config["spec"].trial = i
        s.on_trial_add(None, ended)
    new = FakeTrial(name, "a3")
    new.config["spec"].trial = 3
    s.on_trial_add(None, new)
    decision = s.on_trial_result(None, new, {"epoch": 1, "val_loss": 0.9, "trial_start": 0.0})
    assert decision == (TrialScheduler.STOP if journaled else TrialScheduler.CONTINUE)
    assert list(s.queue) == ["a3"]


def test_a_new_trial_costs_no_journal_read(tmp_path):
    """Ray's `last_result` of a trial that never reported holds its id: that is not a result,
    and reading the journal for every new ASHA trial would grow with the search."""
    values = {"methods": ["random"], "schedulers": ["asha"], "repetitions": 1, "epochs": 3}
    exps, searcher = searcher_for(values)
    name = exps[0].name
    path = tmp_path / f"{name}.jsonl"
    journal.append(path, {"event": "result", "trial": 0, "record": {"epoch": 1, "val_loss": 1}})
    s = SuiteScheduler(searcher, {name: exps[0].scheduler.build()}, {name: path})
    for i, last_result in enumerate([{"trial_id": "a0"}, {"trial_id": "a1", "epoch": 1}]):
        trial = FakeTrial(name, f"a{i}")
        trial.config["spec"].trial = 0
        trial.run_metadata = SimpleNamespace(last_result=last_result)
        trial.last_result = last_result
        s.on_trial_add(None, trial)
        assert (path in s.journals_read) == (i == 1)  # only the one that had reported


def test_paused_trials_of_the_search_with_least_progress_run_first():
    """Two populations, each with a member waiting: the one whose search has reported fewer
    results goes first, whatever the suite's order (rep 0 trained to its end first before)."""
    values = {"methods": ["random"], "schedulers": ["pbt"], "repetitions": 2, "epochs": 6,
              "trials": 4, "scheduler": {"pbt": {"population": 4}}}
    exps, searcher = searcher_for(values)
    first, second = (e.name for e in exps)

    class Waiting(FIFOScheduler):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def choose_trial_to_run(self, tune_controller):
            return self.name

    s = SuiteScheduler(searcher, {first: Waiting(first), second: Waiting(second)})
    assert s.choose_trial_to_run(None) == first  # no results yet: suite order
    for _ in range(3):
        s.on_trial_result(None, FakeTrial(first, "a0"), {"epoch": 1, "val_loss": 1.0,
                                                          "trial_start": 0.0})
    assert s.choose_trial_to_run(None) == second


def test_trial_seconds_leave_out_the_time_a_trial_waited_paused():
    records = [{"trial": 0, "attempt_start": 100.0, "timestamp": t} for t in (101.0, 102.0)]
    records += [{"trial": 0, "attempt_start": 110.0, "timestamp": t} for t in (111.0, 113.0)]
    trials = [{"trial": 0, "start": 100.0, "end": 113.0},
              {"trial": 1, "start": 100.0, "end": 105.0}]  # its records predate attempt_start
    assert accounting.trial_seconds(records, trials) == 2.0 + 3.0 + 5.0


def test_utilization_leaves_out_the_gap_between_a_cut_session_and_its_resume():
    """Session 1 runs 0-50 (its last record at 50, then SIGKILL); the resume at 1,000 runs to
    1,040. Two slots, 150 trial-seconds: the run lived 90 s, not 1,040."""
    trials = [{"start": 0.0, "end": 40.0}, {"start": 1_000.0, "end": 1_040.0}]
    info = {"started": 0.0, "resumed": [1_000.0], "finished": 1_040.0, "slots": 2,
            "experiments": [{"trials": trials, "trial_seconds": 150.0}]}
    assert accounting.live_seconds(info, [10.0, 50.0, 1_020.0]) == 50.0 + 40.0
    assert accounting.live_seconds(info) == 40.0 + 40.0  # without records: trial events only
    used = accounting.utilization(info, [50.0])
    assert used["wall_seconds"] == 90.0 and used["slot_utilization"] == 150.0 / (2 * 90.0)


def test_tune_sees_only_the_top_level_numbers_of_a_result():
    """Tune keeps statistics of every number it finds in a result's dicts, for every trial of
    the run: the record's must stay out of its reach, and come back whole."""
    from ray._private.dict import flatten_dict

    from bench.ray_adapter import record_of, tune_result

    record = {"val_loss": 0.5, "epoch": 2, "diverged": False, "trial_start": 1.0,
              "train_loss": 0.4, "hp_lr": 0.1, "hg_lr": -3.0}
    result = tune_result(record, replayed=False)
    assert set(flatten_dict(result)) == {"val_loss", "epoch", "diverged", "collapsed",
                                         "trial_start", "record", "replayed"}
    assert record_of(result) == record
    assert record_of(json.loads(json.dumps(result))) == record  # as a restored snapshot has it
