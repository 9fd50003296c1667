"""`ohobench run` through a real local Ray Tune instance, with the test plugins of
tests/fake_plugins.py beside the built-ins."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench import report
from tests import fake_plugins

# All built-in methods and two test plugins, black-box ones under two optimizer families (the
# schedulers are tested in tests/test_scheduling.py).
BLACK_BOX = ["random", "optuna-tpe", "optuna-gp", "skopt-gp"]
ONLINE = ["hd", "oho", "oho-layerwise", "rtho", "trho", "marthe", "t1t2", "controller",
          "halving", "flaky"]
SUITE = """
name = "e2e"
tasks = ["digits"]
methods = {methods}
optimizers = ["fixed", "step"]
repetitions = 1  # each experiment starts Ray workers (about 5 s here): keep them few
trials = 2
epochs = 3
max_concurrent = 2
max_failures = 1

[options.hd]
beta = 0.01

[options.controller]
retrain = true  # its trials go on with the chosen child, trained from scratch

[options.flaky]
marker_dir = "{marker_dir}"
fail_attempts = 1  # every flaky trial raises once, in epoch 2, then succeeds on its retry
"""


def run_cli(tmp, suite_text, *flags):
    plugin = tmp / "site"
    if not plugin.exists():
        fake_plugins.install_test_plugins(plugin)
    (tmp / "suite.toml").write_text(suite_text)
    env = dict(os.environ, PYTHONPATH=str(plugin))
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--suite",
                           str(tmp / "suite.toml"), "--out", str(tmp / "results"), *flags],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = list((tmp / "results").iterdir())
    assert len(dirs) == 1 and f"results: {dirs[0]}" in proc.stdout
    return dirs[0], proc.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "markers").mkdir()
    text = SUITE.format(methods=json.dumps(BLACK_BOX + ONLINE), marker_dir=tmp / "markers")
    return run_cli(tmp, text)


@pytest.fixture(scope="module")
def run_dir(run):
    return run[0]


def test_report_has_one_entry_per_method_and_family(run):
    run_dir, stdout = run
    assert "time-to-target" in stdout and "halving" in stdout
    s = report.summary(pd.read_parquet(run_dir / "records.parquet"))
    expected = {(m, f) for m in BLACK_BOX for f in ("fixed", "step")} | {
        (m, "online") for m in ONLINE}
    assert set(zip(s["method"], s["optimizer"], strict=True)) == expected
    assert (s["reps"] == 1).all()
    step = pd.read_parquet(run_dir / "records.parquet").query("optimizer == 'step'")
    assert step["hp_step_size"].notna().all() and step["hp_step_gamma"].between(0.1, 0.9).all()


def test_a_trial_that_raises_is_retried_and_its_failed_attempt_dropped(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    flaky = df[df.method == "flaky"]
    assert flaky["epoch"].tolist() == [1, 2, 3]
    assert set(flaky["status"]) == {"completed"}
    info = json.loads((run_dir / "run.json").read_text())
    trials = [t for e in info["experiments"] if e["method"] == "flaky" for t in e["trials"]]
    assert [t["attempts"] for t in trials] == [2]
    assert all("injected failure" in t["failed_attempts"][0] for t in trials)


def test_one_row_per_epoch_per_trial_with_finite_losses(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    trial = ["method", "optimizer", "repetition", "trial"]
    assert df.groupby(trial).ngroups == len(BLACK_BOX) * 2 * 2 + len(ONLINE)
    full = df[df.method != "controller"].groupby(trial)
    assert (full["epoch"].apply(list) == pd.Series([[1, 2, 3]] * full.ngroups,
                                                   index=full.size().index)).all()
    assert not df.duplicated([*trial, "epoch"]).any()
    controller = df[df.method == "controller"].sort_values("epoch")  # search, then retrain
    assert list(zip(controller.epoch, controller.phase, strict=True)) == [
        (1, "search"), (2, "search"), (3, "search"), (4, "retrain"), (5, "retrain"),
        (6, "retrain")]
    assert df[["train_loss", "val_loss", "test_loss"]].map(math.isfinite).all().all()
    assert set(df["status"]) == {"completed"} and set(df["scheduler"]) == {"fifo"}
    assert df["trial_id"].notna().all() and df["experiment_start"].notna().all()


def test_hyperparameters_recorded_and_moving_for_online_methods(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    assert {"hp_lr", "hp_wd", "hg_lr"} <= set(df.columns)
    for _, hd in df[df.method == "hd"].groupby("repetition"):
        assert hd["hp_lr"].nunique() == 3
    halving = df[df.method == "halving"].sort_values("epoch")
    assert halving.groupby("repetition")["hp_lr"].apply(
        lambda s: s.iloc[1] == s.iloc[0] / 2).all()
    fixed = df[(df.method == "random") & (df.optimizer == "fixed")].groupby(
        ["repetition", "trial"])["hp_lr"].nunique()
    assert (fixed == 1).all()


def test_online_methods_share_initializations(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    first = df[(df.epoch == 1) & df.method.isin(["hd", "halving"])]
    assert first.groupby("repetition")["seed"].nunique().eq(1).all()
    assert first.groupby("repetition")["hp_wd"].nunique().eq(1).all()


def test_run_json_and_time_to_target(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"] and info["environment"]["packages"]["ray"]
    assert len(info["experiments"]) == len(BLACK_BOX) * 2 + len(ONLINE)
    waits = report.slot_waits(info)  # seconds a slot sat free before each trial
    assert sorted(waits) == sorted(e["name"] for e in info["experiments"])
    assert all(0 <= w < 60 for trials in waits.values() for w in trials)
    # every experiment timed its searcher (it may overlap trials that run concurrently)
    assert all(0 <= e["searcher_seconds_per_trial"] < math.inf for e in info["experiments"])
    assert (run_dir / "ray").is_dir() and (run_dir / "summary.csv").is_file()
    df = pd.read_parquet(run_dir / "records.parquet")
    s = report.summary(df)
    assert set(s["method"]) == set(BLACK_BOX + ONLINE)
    assert s["searcher_s_per_trial"].isna().all()  # summary() alone has no run.json
    timed = report.summary(df, overhead=report.overhead_by_method(info))
    assert (timed["searcher_s_per_trial"] >= 0).all()  # NaN fails too
    assert any(math.isfinite(v) for v in s["ttt_median"])
    online = report.summary(df, target=5.0).query("optimizer == 'online'")
    # One trial: its wall-clock includes evaluation and Ray scheduling, so it is never less
    # than its training seconds.
    assert len(online) == len(ONLINE) and np.isfinite(online["wall_ttt_median"]).all()
    assert (online["wall_ttt_median"] >= online["ttt_median"]).all()


def test_report_command_reprints_the_table(run_dir):
    out = subprocess.run([sys.executable, "-m", "bench.cli", "report", str(run_dir),
                          "--target", "5.0"], capture_output=True, text=True, check=True).stdout
    assert "random" in out and "reached" in out and "1/1" in out and "wall_ttt" in out


BUDGET_SUITE = """
name = "budget"
tasks = ["digits"]
methods = ["random", "flaky"]
repetitions = 1
trials = 500
epochs = 4
budget_seconds = {budget}

[options.flaky]
marker_dir = "{marker_dir}"
fail_attempts = 5  # more than max_failures (0): the trial ends errored
"""


def test_budget_in_seconds_and_errored_trials(tmp_path):
    (tmp_path / "markers").mkdir()
    budget = 30.0  # Ray's worker start-up counts: it took up to 20 s on a loaded 2-core machine
    run_dir, stdout = run_cli(tmp_path, BUDGET_SUITE.format(budget=budget,
                                                            marker_dir=tmp_path / "markers"))
    info = json.loads((run_dir / "run.json").read_text())
    random, flaky = info["experiments"]
    # the search stops proposing at the budget, well before its 500 trials
    assert 1 <= len(random["trials"]) < 500
    assert random["wall_seconds"] < budget + 30
    assert {t["status"] for t in random["trials"]} <= {"completed", "stopped"}
    # online methods are one run each and are not cut by the black-box budget
    [trial] = flaky["trials"]
    assert trial["status"] == "errored" and "injected failure" in trial["error"]
    assert trial["attempts"] == 1
    df = pd.read_parquet(run_dir / "records.parquet")
    assert set(df[df.method == "flaky"]["status"]) == {"errored"}
    assert "flaky" in stdout and "ERRORED" in stdout
