"""The horizon study: shorter epoch budgets read off longer runs where that is exact."""

import math

import pandas as pd
import pytest

import methods
from bench import cli, results
from bench.analysis import horizon
from bench.trial import run_trial
from tests.conftest import without_timing

DIFFERS = {"trial_id", "node", "node_id"}


@pytest.mark.parametrize("method", sorted(n for n, m in methods.all_methods().items()
                                          if m.horizon_free))
def test_horizon_free_methods_do_not_read_the_run_length(method):
    """The claim the study rests on: the first 2 epochs of a 3-epoch trial are the 2-epoch
    trial, record for record."""
    config = {"task": "digits", "method": method, "hparams": {"lr": 0.1, "wd": 1e-4},
              "seed": 5, "device": "cpu"}
    short = without_timing(run_trial({**config, "epochs": 2}))
    longer = without_timing(run_trial({**config, "epochs": 3}))[:2]
    assert len(short) == 2
    for a, b in zip(short, longer, strict=True):
        a, b = ({k: v for k, v in r.items() if k not in DIFFERS} for r in (a, b))
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k])
                                    and math.isnan(b[k])) for k in a), method


def test_a_schedule_over_the_run_is_not_horizon_free():
    config = {"task": "digits", "method": "random", "optimizer": "cosine",
              "hparams": {"lr": 0.1, "wd": 1e-4}, "seed": 5, "device": "cpu"}
    short, longer = (run_trial({**config, "epochs": e}) for e in (2, 3))
    assert short[1]["hp_lr"] != longer[1]["hp_lr"]  # cosine reads the run length
    assert not horizon.truncatable("random", "cosine")
    assert horizon.truncatable("random", "fixed") and horizon.truncatable("oho", "online")
    assert not horizon.truncatable("skopt-gp", "fixed")
    assert not horizon.truncatable("controller", "online")  # it retrains after the run
    assert not horizon.truncatable("not-installed", "fixed")


def rows(method, optimizer, epochs, rep=0, trials=2, start=0.0):
    """Trial t: 1 s per epoch; validation and test fall with the epoch, trial 1 faster."""
    return [dict(task="t", method=method, optimizer=optimizer, repetition=rep, trial=t,
                 epoch=e, trial_start=start + t, experiment_start=start, timestamp=start + e,
                 train_seconds_cum=float(e), val_loss=1.0 / (e * (t + 1)),
                 test_loss=1.0 / (e * (t + 1)) + 0.01, diverged=False)
            for t in range(trials) for e in range(1, epochs + 1)]


def write_run(path, parts, epochs, methods_):
    results.write_table(results.table(parts), path)
    suite = {"tasks": ["t"], "methods": methods_, "seed": 0, "epochs": epochs,
             "batch_size": 8, "val_batch_size": None, "target": None, "options": {}}
    results.write_json({"suite": suite, "experiments": []}, path / results.RUN_JSON)
    return path


@pytest.fixture
def two_runs(tmp_path):
    long = write_run(tmp_path / "long", rows("random", "fixed", 10) + rows("oho", "online", 10,
                     trials=1) + rows("skopt-gp", "fixed", 10), 10, ["random", "oho", "skopt-gp"])
    short = write_run(tmp_path / "short", rows("skopt-gp", "fixed", 4, trials=3), 4,
                      ["skopt-gp"])
    return long, short


def test_budgets_come_from_own_runs_or_exact_truncations(two_runs):
    long, short = two_runs
    tables = horizon.at_horizons([long, short], [4, 10], "measured")
    at4 = tables[4]
    src = at4.groupby("method")["source"].first()
    assert src["skopt-gp"] == str(short)  # its own run: GP proposals follow results
    assert src["random"] == f"first 4 epochs of {long}" and src["oho"].startswith("first 4")
    rand = at4[at4["method"] == "random"]
    assert at4["epoch"].max() == 4 and rand["experiment_start"].isna().all()  # no wall-clock
    # compute recounted from the kept epochs: trial 1 starts after trial 0's 4 seconds
    assert rand.loc[rand["trial"] == 1, "search_seconds"].max() == 4 + 4
    assert set(tables[10]["source"]) == {str(long)}  # the GP run at 10 epochs is the long one


def test_horizon_table_reference_and_ratios(two_runs):
    tables = horizon.at_horizons(list(two_runs), [4, 10], "measured")
    table = horizon.horizon_table(tables)
    at4 = table[table["epochs"] == 4].set_index("method")
    # 4 epochs: skopt-gp's best trial (2 of 3) ends at 1/12 + 0.01, below random's 1/8 + 0.01
    assert at4.loc["skopt-gp", "test_median"] == pytest.approx(1 / 12 + 0.01)
    assert at4.loc["oho", "target"] == pytest.approx(1 / 12 + 0.01)
    assert at4.loc["skopt-gp", "ttt_ratio"] == 1.0
    assert math.isinf(at4.loc["oho", "ttt_ratio"])  # one trial, 1/4 + 0.01: never reached
    assert at4.loc["skopt-gp", "reference"] == "skopt-gp · fixed"
    assert at4.loc["oho", "kind"] == "online" and at4.loc["random", "kind"] == "black-box"


def test_the_horizon_command_writes_the_study(two_runs, capsys):
    long, short = two_runs
    assert cli.main(["horizon", str(long), str(short), "--horizons", "4,10",
                     "--compute", "measured"]) == 0
    for name in ("horizon-measured.md", "horizon-measured.csv", "horizon-measured.png",
                 "horizon-measured.pdf"):
        assert (long / name).is_file()
    md = (long / "horizon-measured.md").read_text()
    assert "| 4 | skopt-gp · fixed |" in md and "first 4 epochs of" in md
    assert len(pd.read_csv(long / "horizon-measured.csv")) == 6


@pytest.mark.parametrize("flags, expected", [
    (["--horizons", "10,x"], "--horizons '10,x': expected epoch budgets >= 1"),
    (["--horizons", "0"], "expected epoch budgets >= 1"),
    (["--horizons", "40"], "no run of at least 40 epochs"),
])
def test_bad_horizons_get_one_line(two_runs, capsys, flags, expected):
    assert cli.main(["horizon", str(two_runs[0]), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_a_search_under_a_scheduler_is_its_own_entry_and_never_truncated(tmp_path):
    """random under asha stops trials by rungs that depend on the epoch budget: its first 4
    epochs of a 10-epoch run are not its run at 4, while random under fifo's are."""
    parts = rows("random", "fixed", 10) + [dict(r, scheduler="asha")
                                           for r in rows("random", "fixed", 10)]
    long = write_run(tmp_path / "long", parts, 10, ["random"])
    tables = horizon.at_horizons([long], [4, 10], "measured")
    assert set(tables[4]["method"]) == {"random"}
    assert set(tables[10]["method"]) == {"random", "random · asha"}
    assert len(tables[10]) == len(parts)
