"""`ohobench run` through a real local Ray Tune instance, with a plugin method from a throwaway
installed distribution beside the built-ins."""

import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest

from bench import report
from tests import plugin_dist

SUITE = """
name = "e2e"
tasks = ["digits"]
methods = ["random", "optuna-tpe", "asha", "hd", "halving"]
repetitions = 2
trials = 2
epochs = 3
max_concurrent = 2

[options.hd]
beta = 0.01

[options.asha]
reduction_factor = 2
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    plugin = plugin_dist.make(tmp / "site")
    (tmp / "suite.toml").write_text(SUITE)
    env = dict(os.environ, PYTHONPATH=str(plugin))
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--suite",
                           str(tmp / "suite.toml"), "--out", str(tmp / "results")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = list((tmp / "results").iterdir())
    assert len(dirs) == 1 and f"results: {dirs[0]}" in proc.stdout
    assert "time-to-target" in proc.stdout and "halving" in proc.stdout
    return dirs[0]


def test_one_row_per_epoch_per_trial_with_finite_losses(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    trials = df.groupby(["method", "repetition", "trial"])
    assert trials.ngroups == 3 * 2 * 2 + 2 + 2  # black-box: 2 reps x 2 trials; online: 1 per rep
    full = df[df.method != "asha"].groupby(["method", "repetition", "trial"])
    assert (full["epoch"].apply(list) == pd.Series([[1, 2, 3]] * full.ngroups,
                                                   index=full.size().index)).all()
    assert not df.duplicated(["method", "repetition", "trial", "epoch"]).any()
    assert df[["train_loss", "val_loss", "test_loss"]].map(math.isfinite).all().all()
    assert set(df[df.method != "asha"]["status"]) == {"completed"}
    assert df["trial_id"].notna().all()


def test_asha_stops_trials_early_and_says_so(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    asha = df[df.method == "asha"].groupby(["repetition", "trial"]).agg(
        epochs=("epoch", "max"), status=("status", "first"))
    assert (asha["epochs"] <= 3).all() and (asha["epochs"] == 3).any()
    assert ((asha["status"] == "stopped") == (asha["epochs"] < 3)).all()
    assert set(asha["status"]) <= {"completed", "stopped"}


def test_hyperparameters_recorded_and_moving_for_online_methods(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    assert {"hp_lr", "hp_wd", "hg_lr"} <= set(df.columns)
    for _, hd in df[df.method == "hd"].groupby("repetition"):
        assert hd["hp_lr"].nunique() == 3
    halving = df[df.method == "halving"].sort_values("epoch")
    assert halving.groupby("repetition")["hp_lr"].apply(
        lambda s: s.iloc[1] == s.iloc[0] / 2).all()
    fixed = df[df.method == "random"].groupby(["repetition", "trial"])["hp_lr"].nunique()
    assert (fixed == 1).all()


def test_online_methods_share_initializations(run_dir):
    df = pd.read_parquet(run_dir / "records.parquet")
    first = df[(df.epoch == 1) & df.method.isin(["hd", "halving"])]
    assert first.groupby("repetition")["seed"].nunique().eq(1).all()
    assert first.groupby("repetition")["hp_wd"].nunique().eq(1).all()


def test_run_json_and_time_to_target(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"] and info["environment"]["packages"]["ray"]
    assert len(info["experiments"]) == 5 * 2
    assert all(e["scheduling_overhead_per_trial"] >= 0 for e in info["experiments"])
    assert (run_dir / "ray").is_dir() and (run_dir / "summary.csv").is_file()
    df = pd.read_parquet(run_dir / "records.parquet")
    s = report.summary(df)
    assert set(s["method"]) == {"random", "optuna-tpe", "asha", "hd", "halving"}
    assert any(math.isfinite(v) for v in s["ttt_median_s"])


def test_report_command_reprints_the_table(run_dir):
    out = subprocess.run([sys.executable, "-m", "bench.cli", "report", str(run_dir),
                          "--target", "5.0"], capture_output=True, text=True, check=True).stdout
    assert "random" in out and "reached" in out and "2/2" in out
