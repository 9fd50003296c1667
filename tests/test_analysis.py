"""The analysis library on hand-made tables with answers known in advance."""

import math

import numpy as np
import pandas as pd
import pytest

from bench import analysis, report, results
from bench.analysis.stats import median
from bench.errors import ConfigError


def rows(method, trials, rep=0, task="t", optimizer="fixed"):
    """trials: list of (start, [(seconds_cum, val, test), ...])."""
    return [dict(task=task, method=method, optimizer=optimizer, repetition=rep, trial=trial,
                 epoch=e + 1, trial_start=start, train_seconds_cum=secs, val_loss=val,
                 test_loss=test, diverged=not math.isfinite(val))
            for trial, (start, epochs) in enumerate(trials)
            for e, (secs, val, test) in enumerate(epochs)]


# Three one-epoch trials, started in the order 2, 0, 1 (trial_start), so compute cumulates
# as 3, 3 + 1, 3 + 1 + 2. Trial 1 has the lowest validation loss.
SHUFFLED = rows("bb", [(1, [(1, 0.5, 0.6)]), (2, [(2, 0.2, 0.3)]), (0, [(3, 0.4, 0.45)])])


def test_time_to_target_cumulates_trials_in_start_order():
    ttt = analysis.time_to_target(results.table(SHUFFLED), target=0.5).iloc[0]
    assert ttt["compute_to_target"] == 3  # trial 2 (started first, 3 s) reaches 0.45
    assert ttt["trials_to_target"] == 1 and ttt["reached"] and ttt["target"] == 0.5
    ttt = analysis.time_to_target(results.table(SHUFFLED), target=0.3).iloc[0]
    assert ttt["compute_to_target"] == 3 + 1 + 2 and ttt["trials_to_target"] == 3


def test_not_reached_is_infinite_and_marked():
    ttt = analysis.time_to_target(results.table(SHUFFLED), target=0.1).iloc[0]
    assert not ttt["reached"] and math.isinf(ttt["compute_to_target"])
    assert math.isinf(ttt["trials_to_target"])


def test_targets_per_task_and_derived():
    df = results.table(SHUFFLED + rows("bb", [(0, [(1, 0.2, 2.0)])], task="u"))
    ttt = analysis.time_to_target(df, target={"t": 0.5}).set_index("task")
    assert ttt.loc["t", "target"] == 0.5 and ttt.loc["u", "target"] == 2.0  # u: derived
    assert analysis.time_to_target(df).set_index("task").loc["t", "target"] == 0.3


def test_entry_times_median_counts_not_reached_as_infinite():
    parts = []
    for rep, test in enumerate([0.2, 0.9, 0.9]):
        parts += rows("m", [(0, [(rep + 1, test, test)])], rep=rep)
    times = analysis.entry_times(analysis.time_to_target(results.table(parts), 0.5)).iloc[0]
    assert math.isinf(times["compute_to_target"]) and times["reached"] == 1
    assert times["reps"] == 3


def test_bootstrap_degenerate_samples():
    assert all(math.isnan(v) for v in analysis.bootstrap_ci([]))
    assert all(math.isnan(v) for v in analysis.bootstrap_ci([0.3]))
    assert all(math.isnan(v) for v in analysis.bootstrap_ci([0.3, math.nan]))
    assert analysis.bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)
    assert analysis.bootstrap_ci([0.3, 0.3, 0.3], analysis.iqm, method="BCa") == (0.3, 0.3)
    lo, hi = analysis.bootstrap_ci([1.0, 2.0, 3.0, 4.0, 10.0], method="BCa")
    assert lo <= 3.0 <= hi


def test_bootstrap_is_seeded():
    x = np.random.default_rng(0).normal(size=20)
    assert analysis.bootstrap_ci(x, seed=1) == analysis.bootstrap_ci(x, seed=1)


def test_bootstrap_coverage_on_a_known_distribution():
    """Exp(1): median ln 2, IQM 2((a+1)e^-a - (b+1)e^-b) with a = ln(4/3), b = ln 4. Over 200
    seeded samples of 40, the 95% percentile intervals measured 0.93-0.965 coverage for five
    seeds (binomial sd 0.015); 50% intervals must cover about half the time, so the 95% ones
    are not merely wide."""
    a, b = math.log(4 / 3), math.log(4)
    truth = {median: math.log(2), analysis.iqm: 2 * ((a + 1) * 0.75 - (b + 1) * 0.25)}
    rng = np.random.default_rng(0)
    samples = [rng.exponential(size=40) for _ in range(200)]
    for stat, true in truth.items():
        for level, low, high in ((0.95, 0.88, 0.99), (0.5, 0.38, 0.62)):
            covered = [lo <= true <= hi for lo, hi in (
                analysis.bootstrap_ci(x, stat, level, n_resamples=1000, seed=i)
                for i, x in enumerate(samples))]
            assert low <= np.mean(covered) <= high, (stat.__name__, level, np.mean(covered))


def test_distribution_median_iqm_and_missing():
    parts = []
    for rep, test in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, math.nan]):
        parts += rows("m", [(0, [(1, test, test)])], rep=rep)
    d = analysis.distribution(analysis.final_losses(results.table(parts))).iloc[0]
    assert d["n"] == 8 and d["n_missing"] == 1
    assert d["median"] == 4.5 and d["iqm"] == 4.5  # mean of 3, 4, 5, 6
    # n = 8: (x_(2), x_(7)) covers 93.0% only, so (min, max) (99.2%); the IQM needs n >= 10
    assert (d["median_lo"], d["median_hi"]) == (1.0, 8.0)
    assert math.isnan(d["iqm_lo"]) and math.isnan(d["iqm_hi"])
    assert (d["min"], d["max"], d["q25"], d["q75"]) == (1.0, 8.0, 2.75, 6.25)
    one = analysis.distribution(analysis.final_losses(results.table(rows("m", [(0, [(1, 2, 2)])]))))
    assert one.iloc[0]["median"] == 2 and math.isnan(one.iloc[0]["median_lo"])


# Performance profile, 3 entries on 2 tasks (seconds to target):
#        t1   t2          ratios t1, t2
#   A    10   30          1, 2
#   B    20   15          2, 1
#   C   inf   60        inf, 4
PROFILE = pd.DataFrame({"task": ["t1"] * 3 + ["t2"] * 3, "method": list("ABC") * 2,
                        "optimizer": "fixed",
                        "compute_to_target": [10, 20, math.inf, 30, 15, 60]})


def test_performance_profile_by_hand():
    ratios = analysis.performance_ratios(PROFILE)["ratio"].tolist()
    assert ratios == [1, 2, math.inf, 2, 1, 4]
    p = analysis.performance_profile(PROFILE, taus=[1, 1.5, 2, 4, 10])
    got = p.pivot(index="method", columns="tau", values="fraction")
    assert got.loc["A"].tolist() == [0.5, 0.5, 1, 1, 1]
    assert got.loc["B"].tolist() == [0.5, 0.5, 1, 1, 1]
    assert got.loc["C"].tolist() == [0, 0, 0, 0.5, 0.5]


def test_performance_profile_edge_cases():
    nobody = PROFILE.assign(compute_to_target=math.inf)  # no entry reached: no ratio is finite
    assert (analysis.performance_profile(nobody, taus=[1, 100])["fraction"] == 0).all()
    missing = PROFILE[~((PROFILE.task == "t2") & (PROFILE.method == "A"))]  # A absent on t2
    p = analysis.performance_profile(missing, taus=[10]).set_index("method")
    assert p.loc["A", "fraction"] == 0.5  # out of both tasks
    taus = analysis.performance_profile(PROFILE)["tau"]
    assert taus.min() == 1 and taus.max() >= 4


def test_mean_ranks():
    ranks = analysis.mean_ranks(PROFILE, by="compute_to_target").set_index("method")
    assert ranks.loc["A", "mean_rank"] == 1.5 and ranks.loc["B", "mean_rank"] == 1.5
    assert ranks.loc["C", "mean_rank"] == 3 and ranks.loc["C", "tasks"] == 2
    tied = PROFILE.assign(compute_to_target=[1, math.inf, math.inf, 1, 2, 3])
    assert analysis.mean_ranks(tied, "compute_to_target").set_index("method")[
        "mean_rank"].to_dict() == {"A": 1.0, "B": 2.25, "C": 2.75}


def test_anytime_curve_is_the_choice_by_validation():
    curve = analysis.anytime_curves(results.table(SHUFFLED))
    assert curve["compute"].tolist() == [3, 4, 6]
    assert curve["test_loss"].tolist() == [0.45, 0.45, 0.3]  # trial 0 (val 0.5) never chosen


def test_anytime_band_on_a_common_grid():
    df = results.table(rows("m", [(0, [(1, 0.5, 0.5), (2, 0.3, 0.3)])], rep=0)
                       + rows("m", [(0, [(3, 0.4, 0.4)])], rep=1))
    band = analysis.anytime_band(analysis.anytime_curves(df), grid=np.array([0.5, 1, 2, 3, 9]))
    assert band["n"].tolist() == [0, 1, 1, 2, 2]
    assert np.isnan(band["median"].iat[0])
    assert band["median"].tolist()[1:] == [0.5, 0.3, 0.35, 0.35]  # rep 0 holds 0.3 after 2 s
    assert band["q25"].iat[3] == pytest.approx(0.325) and band["q75"].iat[3] == 0.375
    assert len(analysis.time_grid(np.array([0.1, 50.0]), 5)) == 5
    assert analysis.time_grid(np.array([0.1, 50.0]), 3).tolist() == pytest.approx(
        [0.1, math.sqrt(5), 50])  # log-spaced: spans more than a decade


# --- combining runs ---------------------------------------------------------------------------

def write_run(path, methods=("bb",), task="t", reps=(0,), **suite):
    parts = [r for m in methods for rep in reps
             for r in rows(m, [(0, [(1, 0.5, 0.5)])], rep=rep, task=task)]
    results.write_table(results.table(parts), path)
    base = {"tasks": [task], "methods": list(methods), "seed": 0, "epochs": 3,
            "batch_size": 8, "val_batch_size": None, "target": None, "options": {}}
    results.write_json({"suite": {**base, **suite}, "experiments": []}, path / results.RUN_JSON)
    return path


def load(run_dirs, **kwargs):
    """These runs' made-up tasks and methods have no FLOP count: their training seconds."""
    return analysis.load_runs(run_dirs, unit="measured", **kwargs)


def test_combining_agreeing_runs(tmp_path):
    a = write_run(tmp_path / "a", methods=("bb",), target=0.4)
    b = write_run(tmp_path / "b", methods=("hd",))
    c = write_run(tmp_path / "c", methods=("bb",), task="u")
    df, meta = load([a, b, c])
    assert len(df) == 3 and sorted(df["run"].unique()) == sorted(map(str, (a, b, c)))
    assert meta["targets"] == {"t": 0.4}  # b states none; task u gets the derived target


@pytest.mark.parametrize("change, expected", [
    ({"target": 0.3}, "disagree on the target of task t (0.4 vs 0.3)"),
    ({"seed": 1}, "define task t differently (seed 0 vs 1)"),
    ({"epochs": 5, "batch_size": 16}, "(epochs 3 vs 5, batch_size 8 vs 16, val_batch_size"),
])
def test_disagreeing_runs_are_refused(tmp_path, change, expected):
    a = write_run(tmp_path / "a", methods=("bb",), target=0.4)
    b = write_run(tmp_path / "b", methods=("hd",), **{"target": 0.4, **change})
    with pytest.raises(ConfigError) as err:
        load([a, b])
    message = str(err.value)
    assert expected in message and str(a) in message and str(b) in message
    assert len(message.splitlines()) == 1


def test_an_explicit_target_overrides_disagreeing_run_targets(tmp_path):
    a = write_run(tmp_path / "a", methods=("bb",), target=0.4)
    b = write_run(tmp_path / "b", methods=("hd",), target=0.3)
    assert load([a, b], target=0.2)[1]["targets"] == {}


def test_task_defaults_are_resolved_before_comparing(tmp_path):
    a = write_run(tmp_path / "a", task="digits", epochs=None, batch_size=None)
    b = write_run(tmp_path / "b", methods=("hd",), task="digits", epochs=20, batch_size=32)
    assert len(load([a, b])[0]) == 2  # digits' defaults: 20 epochs, batch 32


def test_the_same_repetition_twice_is_refused(tmp_path):
    a = write_run(tmp_path / "a", reps=(0, 1))
    b = write_run(tmp_path / "b", reps=(1, 2))
    with pytest.raises(ConfigError, match=r"both hold t · bb · fixed repetition 1: .*twice"):
        load([a, b])
    with pytest.raises(ConfigError, match="is given twice"):
        load([a, a])
    with pytest.raises(ConfigError, match="is not a run directory"):
        load([a, tmp_path])


def test_method_options_that_differ_make_separate_entries(tmp_path):
    a = write_run(tmp_path / "a", methods=("oho",))
    b = write_run(tmp_path / "b", methods=("oho",), options={"oho": {"groups": 2}})
    df, meta = load([a, b])
    assert sorted(df["method"].unique()) == ["oho", "oho[groups=2]"]
    assert meta["options"]["oho[groups=2]"] == {"groups": 2}


def test_a_method_set_per_task_keeps_its_name_so_the_tasks_compare(tmp_path):
    """oho with one set of options on task t and another on task u is `oho` on both (the
    across-tasks view matches entries by name); the settings say which options ran where."""
    a = write_run(tmp_path / "a", methods=("oho",), options={"oho": {"wd_max": 0.01}})
    b = write_run(tmp_path / "b", methods=("oho",), task="u", options={"oho": {"groups": 2}})
    df, meta = load([a, b])
    assert df["method"].unique().tolist() == ["oho"]
    assert meta["settings"] == {"t": {"oho": {"wd_max": 0.01}}, "u": {"oho": {"groups": 2}}}
    c = write_run(tmp_path / "c", methods=("oho",), task="u", reps=(1,))
    assert sorted(load([a, b, c])[0]["method"].unique()) == ["oho", "oho[groups=2]"]


def test_a_run_from_before_schedulers_still_reports(tmp_path):
    """A table without the scheduler column (and the retired method asha) loads with scheduler
    `-`, each entry named as before; beside a new run whose search ran under asha too."""
    old = write_run(tmp_path / "old", methods=("asha", "bb"))
    table = pd.read_parquet(old / results.TABLE).drop(columns="scheduler")
    table.to_parquet(old / results.TABLE)
    new = write_run(tmp_path / "new", methods=("rs",))
    fresh = pd.read_parquet(new / results.TABLE)
    pd.concat([fresh.assign(scheduler="fifo"), fresh.assign(scheduler="asha")]).to_parquet(
        new / results.TABLE)
    df, _ = load([old, new])
    assert sorted(df["method"].unique()) == ["asha", "bb", "rs", "rs · asha"]
    assert set(df.loc[df.run == str(old), "scheduler"]) == {"-"}
    assert sorted(report.summary(df)["method"]) == ["asha", "bb", "rs", "rs · asha"]


def test_anytime_against_wall_clock():
    """The seconds one of the search's trials ran so far (here they overlap from 100 to 109)."""
    parts = [dict(r, experiment_start=100.0, trial_start=100.0 + r["trial_start"],
                  timestamp=100.0 + stamp)
             for r, stamp in zip(SHUFFLED, [7.0, 9.0, 3.0], strict=True)]
    curve = analysis.anytime_curves(results.table(parts), x="wall_seconds")
    assert curve["wall_seconds"].tolist() == [3, 7, 9]
    late = [dict(r, trial_start=r["trial_start"] + 50 * (r["trial"] == 1),
                 timestamp=r["timestamp"] + 50 * (r["trial"] == 1)) for r in parts]
    curve = analysis.anytime_curves(results.table(late), x="wall_seconds")  # 1 waited 50 s
    assert curve["wall_seconds"].tolist() == [3, 7, 7 + 7]
    assert curve["test_loss"].tolist() == [0.45, 0.45, 0.3]
    with pytest.raises(ValueError, match="no wall-clock"):
        analysis.anytime_curves(results.table(SHUFFLED), x="wall_seconds")


# --- the target sweep ---------------------------------------------------------------------------

def sweep_table():
    """Black-box `bb` (finals 0.1 ... 0.5 over 5 repetitions, one 1-second trial each), worse
    black-box `bb2`, online `oho` (finals 0.2, 0.3, 0.4; 3 seconds each)."""
    parts = []
    for rep, loss in enumerate([0.1, 0.2, 0.3, 0.4, 0.5]):
        parts += rows("bb", [(0, [(1, loss, loss)])], rep=rep)
        parts += rows("bb2", [(0, [(1, loss, loss + 0.5)])], rep=rep)
    for rep, loss in enumerate([0.2, 0.3, 0.4]):
        parts += rows("oho", [(0, [(3, loss, loss)])], rep=rep, optimizer="online")
    return results.table(parts)


def test_sweep_targets_are_quantiles_of_the_best_black_box_entry():
    from bench.analysis import targets

    sweep = targets.target_sweep(sweep_table(), quantiles=(0.25, 0.5))
    labels = sweep.drop_duplicates("target_label").set_index("target_label")["target"]
    assert labels.to_dict() == pytest.approx({"q=0.25": 0.2, "q=0.5": 0.3, "paper": 0.3})
    at = sweep[sweep["target_label"] == "q=0.25"].set_index("method")
    assert at.loc["bb", "reached"] == 2 and at.loc["oho", "reached"] == 1
    assert math.isinf(at.loc["oho", "compute_to_target"]) and at.loc["bb2", "reached"] == 0
    assert targets.recommended_target(sweep_table()) == {"t": 0.3}
    assert targets.round_up(0.06312, 2) == 0.064 and targets.round_up(0.063, 2) == 0.063


def test_best_of_k_picks_by_validation_among_k_draws():
    # 4 one-epoch trials; validation ranks them 0 < 1 < 2 < 3, test says the opposite
    parts = rows("bb", [(t, [(1, 0.1 * (t + 1), 1.0 - 0.1 * t)]) for t in range(4)])
    curve = analysis.best_of_k(results.table(parts), ks=[1, 4, 5]).set_index("k")
    assert list(curve.index) == [1, 4] and curve.loc[4, "pool"] == 4  # k = 5: not enough trials
    assert curve.loc[4, "median"] == 1.0  # all 4 drawn: trial 0 chosen, its test loss
    assert 0.7 <= curve.loc[1, "q25"] < curve.loc[1, "q75"] <= 1.0  # one draw: any trial
