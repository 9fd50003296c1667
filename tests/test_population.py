"""Population-based training (PBT, PB2) as a scheduler of a search: options, accounting, and
whole populations through Ray on digits, interrupted too."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench import experiment as ex
from bench import journal, population, results, runner, suite
from bench.cli import main
from bench.multiplex import SearchView
from bench.space import Categorical, IntUniform, LogUniform, Uniform
from tests.test_resume import finish, start_cli, wait_for
from tests.test_scheduling import FakeTrial


def write_suite(path, trials=4, epochs=6, scheduler="pbt", **options):
    table = "".join(f"{k} = {v!r}\n" for k, v in options.items())
    path.write_text(f"""name = "population"
tasks = ["digits"]
methods = ["random"]
schedulers = ["{scheduler}"]
repetitions = 1
trials = {trials}
epochs = {epochs}
[scheduler.{scheduler}]
{table}""")
    return path


@pytest.mark.parametrize("options, expected", [
    ({"population": 1}, "scheduler.pbt.population: must be >= 2, got 1"),
    ({"quantile": 0.6}, "scheduler.pbt.quantile: must be in (0, 0.5], got 0.6"),
    ({"quantile": 0.0}, "scheduler.pbt.quantile: must be in (0, 0.5], got 0.0"),
    ({"interval": 6}, "scheduler.pbt.interval: 6 epochs leaves no exploit step in trials of 6"),
    ({"population": 5},
     "scheduler.pbt.population: 5 members is more than the suite's trials (4)"),
    ({"members": 4}, "members"),
])
def test_bad_population_options_get_one_line_and_exit_2(capsys, tmp_path, options, expected):
    path = write_suite(tmp_path / "s.toml", **options)
    code = main(["run", "--suite", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_population_is_one_search_of_its_members_all_live():
    chosen = suite.build({"tasks": ["digits"], "methods": ["random"], "schedulers": ["pbt"],
                          "trials": 10, "max_concurrent": 2, "repetitions": 1,
                          "scheduler": {"pbt": {"population": 6, "interval": 3}}})
    (exp,) = ex.plan(chosen)
    assert exp.budget == 6 and exp.cap is None and exp.entry == "random · pbt · fixed"
    assert runner.checkpoints_kept([exp]) == 5  # the copied one outlives 3 more epochs + pause


def test_perturbed_values_stay_in_the_space():
    space = {"lr": LogUniform(1e-3, 1.0), "wd": Uniform(0.0, 1e-3), "n": IntUniform(1, 4),
             "kind": Categorical(("a", "b"))}
    assert population.clip({"lr": 1.3, "wd": -1e-9, "n": 4.6, "kind": "b"}, space) == {
        "lr": 1.0, "wd": 0.0, "n": 4, "kind": "b"}
    assert set(population.bounds(space)) == {"lr", "wd", "n"}
    assert population.mutations(space)["kind"] == ["a", "b"]


def test_a_search_view_shows_its_own_trials_only():
    mine, other = FakeTrial("a", "t0"), FakeTrial("b", "t1")
    controller = SimpleNamespace(get_trials=lambda: [mine, other],
                                 get_live_trials=lambda: {mine, other}, pause_trial="pause")
    view = SearchView(controller, "a")
    assert view.get_trials() == [mine] and view.get_live_trials() == {mine}
    assert view.search_alg is None and view.pause_trial == "pause"


def test_a_population_counts_every_members_epochs_in_step():
    """Two members of 2 epochs; member 1 copied member 0 after epoch 1 and reported member 0's
    seconds in its cumulative time, which the table replaces with its own."""
    base = {"task": "digits", "method": "random", "optimizer": "fixed", "scheduler": "pbt",
            "repetition": 0, "val_loss": 1.0, "test_loss": 1.0, "trial_start": 0.0}
    rows = [dict(base, trial=0, epoch=1, train_seconds=1.0, train_seconds_cum=1.0),
            dict(base, trial=0, epoch=2, train_seconds=2.0, train_seconds_cum=3.0),
            dict(base, trial=1, epoch=1, train_seconds=4.0, train_seconds_cum=4.0),
            dict(base, trial=1, epoch=2, train_seconds=8.0, train_seconds_cum=9.0,
                 cloned_from=0, cloned_at=1)]
    df = results.table(rows)
    assert list(zip(df.trial, df.epoch, strict=True)) == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert df.search_seconds.tolist() == [1.0, 5.0, 7.0, 15.0]
    assert df.train_seconds_cum.tolist() == [1.0, 4.0, 3.0, 12.0]


# --- through Ray -----------------------------------------------------------------------------

def test_pbt_on_digits_exploits_and_records_lineage(tmp_path):
    """Every member trains all its epochs once; at each exploit step a bottom-quantile member
    copies a top-quantile one: its next record names it, continues its steps, and trains with
    its hyperparameters x0.8 or x1.2 (resampling off), kept within the space."""
    path = write_suite(tmp_path / "s.toml", trials=4, epochs=6, population=4, interval=2,
                       resample_probability=0.0)
    finish(start_cli(tmp_path, "--suite", str(path), "--quiet"))
    (run_dir,) = (tmp_path / "results").iterdir()
    df = pd.read_parquet(run_dir / "records.parquet")
    assert sorted(df.groupby("trial").epoch.apply(list).tolist()) == [list(range(1, 7))] * 4
    clones = df[df.cloned_from.notna()]
    assert len(clones) >= 1
    space = suite.build({"tasks": ["digits"]}).space_for("digits", "fixed")
    by = df.set_index(["trial", "epoch"])
    for row in clones.itertuples():
        donor, at = int(row.cloned_from), int(row.cloned_at)
        assert row.epoch == at + 1 and at % 2 == 0 and donor != row.trial
        assert by.loc[(donor, at), "val_loss"] < by.loc[(row.trial, at), "val_loss"]
        assert row.step == by.loc[(donor, at), "step"] + by.loc[(donor, 1), "step"]
        for name in ("lr", "wd"):
            copied = by.loc[(donor, at + 1), f"hp_{name}"] if (donor, at + 1) in by.index \
                else None
            start = by.loc[(donor, at), f"hp_{name}"]
            allowed = [population.clip({name: start * f}, space)[name] for f in (0.8, 1.2)]
            assert np.isclose(getattr(row, f"hp_{name}"), allowed).any(), (name, copied)
    # The compute of every member counts: the last record's search_seconds is all of it.
    assert np.isclose(df.search_seconds.max(), df.train_seconds.sum())
    # Members wait paused for a slot: that time is not a trial's (4 members on 2 slots).
    assert df.groupby("trial").attempt_start.nunique().max() >= 2
    info = json.loads((run_dir / "run.json").read_text())
    spans = sum(t["end"] - t["start"] for e in info["experiments"] for t in e["trials"])
    assert 0 < info["scheduling"]["trial_seconds"] < spans
    assert 0 < info["scheduling"]["slot_utilization"] <= 1


@pytest.mark.slow  # about a minute on 2 cores
def test_pbt_resumes_after_sigkill_with_nothing_lost_or_repeated(tmp_path):
    trials, epochs = 4, 10
    path = write_suite(tmp_path / "s.toml", trials=trials, epochs=epochs, population=trials,
                       interval=2)
    proc = start_cli(tmp_path, "--suite", str(path))
    name = "digits__random__fixed__pbt__rep0"

    def epochs_done():
        files = list((tmp_path / "results").glob(f"*/journal/{name}.jsonl"))
        return max((len(r) for r in journal.read(files[0]).records.values()), default=0) \
            if files else 0

    wait_for(lambda: epochs_done() >= 5, what="a population past its second exploit step",
             proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (run_dir,) = (tmp_path / "results").iterdir()
    finish(start_cli(tmp_path, "--resume", str(run_dir)))
    df = pd.read_parquet(run_dir / "records.parquet")
    assert not df.duplicated(["trial", "epoch"]).any()
    assert sorted(df.groupby("trial").epoch.apply(list).tolist()) == \
        [list(range(1, epochs + 1))] * trials
    assert (df.status == "completed").all()
    assert df.cloned_from.notna().any()


@pytest.mark.slow
def test_a_population_is_repeatable_on_a_cpu(tmp_path):
    """PBT's choices come from the search's seed: two runs record the same population."""
    path = write_suite(tmp_path / "s.toml", trials=4, epochs=6, population=4, interval=2)
    frames = []
    for out in ("a", "b"):
        finish(start_cli(tmp_path, "--suite", str(path), "--quiet", "--out",
                         str(tmp_path / out)))
        (run_dir,) = (tmp_path / out).iterdir()
        frames.append(pd.read_parquet(run_dir / "records.parquet").sort_values(
            ["trial", "epoch"]).reset_index(drop=True))
    cols = ["trial", "epoch", "hp_lr", "hp_wd", "val_loss", "cloned_from", "cloned_at"]
    assert frames[0].cloned_from.notna().any()
    pd.testing.assert_frame_equal(frames[0][cols], frames[1][cols])
