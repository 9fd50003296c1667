"""Comparisons at equal compute (bench.analysis.verdict): pool replays against what they
replay, sustained time-to-target, and one-line refusals."""

import json
import math
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from bench import analysis, cli, report, results
from bench.analysis import stats, verdict
from bench.trial import run_trial


def synthetic_pool(n=30, epochs=10, seed=0):
    rng = np.random.default_rng(seed)
    final = rng.random(n)
    shape = np.linspace(2.0, 1.0, epochs)
    val = final[:, None] * shape[None, :]
    test = val + rng.normal(0, 0.1, size=val.shape)
    return verdict.Pool("t", val, test, np.full(n, epochs), np.ones(n))


def orders(pool, searches, seed=0):
    return verdict.search_orders(len(pool), searches, np.random.default_rng(seed))


def test_replayed_random_search_matches_the_analytic_best_of_k():
    """A random search of k whole trials from a pool of N chooses the trial of validation rank
    r with probability C(N - r, k - 1) / C(N, k): the replay draws that distribution."""
    pool = synthetic_pool()
    n, k = len(pool), 4
    got = verdict.replay_random(pool, 10.0 * k, orders(pool, 40_000, seed=1))
    order = np.argsort(pool.val[:, -1])
    weights = np.array([comb(n - r, k - 1) / comb(n, k) for r in range(1, n + 1)])
    expected = pool.test[order, -1]
    assert weights.sum() == pytest.approx(1.0)
    sorted_values = np.sort(expected)
    cdf_expected = np.array([weights[expected <= v].sum() for v in sorted_values])
    cdf_got = np.array([np.mean(got <= v) for v in sorted_values])
    assert np.max(np.abs(cdf_got - cdf_expected)) < 0.01


def test_a_replayed_search_trains_its_last_trial_until_the_budget_runs_out():
    """Budget 2.5 trials: two whole trials and five epochs of a third, whose validation loss
    there may make it the choice."""
    val = np.array([[3.0] * 10, [2.0] * 10, [5.0] * 5 + [1.0] * 5])
    pool = verdict.Pool("t", val, val + 0.5, np.full(3, 10), np.ones(3))
    got = verdict.replay_random(pool, 25.0, orders(pool, 600))
    # the third trial is the choice only where it is first or second (trained 10 epochs)
    third_whole = np.mean(got == 1.5)
    assert third_whole == pytest.approx(2 / 3, abs=0.06)
    assert set(np.unique(got)) <= {1.5, 2.5, 3.5, 5.5}


def digits_curves(trials=12, epochs=10):
    rng = np.random.default_rng(3)
    curves = []
    for t in range(trials):
        lr = float(10 ** rng.uniform(-3, 0.3))
        records = run_trial({"task": "digits", "method": "random", "seed": t, "epochs": epochs,
                             "hparams": {"lr": lr, "wd": 0.0}, "device": "cpu"})
        curves.append([r["val_loss"] for r in records])
    return curves


class FakeTrial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def test_replayed_asha_stops_where_rays_asha_scheduler_stops():
    """The same logged digits curves, in the same order, through Ray's ASHAScheduler and
    through AshaRungs: the same stop epoch for every trial."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    epochs = 10
    curves = digits_curves(epochs=epochs)
    ray_asha = ASHAScheduler(time_attr="epoch", metric="val_loss", mode="min", max_t=epochs,
                             grace_period=1, reduction_factor=3)
    ours = verdict.AshaRungs(1, 3, epochs)
    ray_stops, our_stops = [], []
    for t, curve in enumerate(curves):
        trial = FakeTrial(str(t))
        ray_asha.on_trial_add(None, trial)
        stop = len(curve)
        for e, v in enumerate(curve, 1):
            result = {"epoch": e, "val_loss": v}
            if ray_asha.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                ray_asha.on_trial_complete(None, trial, result)
                stop = e
                break
        ray_stops.append(stop)
        our_stops.append(ours.run(np.array(curve), len(curve)))
    assert our_stops == ray_stops
    assert any(s < epochs for s in ray_stops) and any(s == epochs for s in ray_stops)


def test_asha_replay_spends_its_budget_and_refuses_a_pool_too_small():
    pool = synthetic_pool(n=30)
    got = verdict.replay_asha(pool, 20.0, orders(pool, 200))
    assert len(got) == 200 and np.isfinite(got).all()
    with pytest.raises(verdict.ConfigError, match="more trials than the pool's 30"):
        verdict.replay_asha(pool, 10_000.0, orders(pool, 5))


def test_probability_of_improvement_and_the_verdicts():
    assert verdict.placements(np.array([1.0, 2.0]), np.array([2.0, 3.0])).mean() == \
        pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert verdict.placements(np.array([math.nan]), np.array([1.0])) == 0.0  # NaN: the worst
    assert verdict.search_placements(np.array([1.0, 2.0]), np.array([2.0, 3.0])).tolist() == \
        [0.75, 1.0]  # per search: the share of online runs below it, ties half
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.0, 0.1, 20), rng.normal(1.0, 0.1, 200)
    resample = verdict.Resampling.of(high)
    assert verdict.compare(low, high, resample, 300, rng).verdict == "better"
    flipped = verdict.Resampling.of(low)
    assert verdict.compare(high[:20], low, flipped, 300, rng).verdict == "worse"
    same = rng.normal(0.0, 1.0, 12)
    other = same.copy()  # the same distribution, exactly: P = 1/2
    c = verdict.compare(same, other, verdict.Resampling.of(other), 300, rng)
    assert c.verdict == "inconclusive at n = 12" and c.p_less_ci[0] < 0.5 < c.p_less_ci[1]
    c = verdict.compare(low[:5], high, resample, 300, rng)
    assert c.verdict == "inconclusive at n = 5" and math.isnan(c.p_less_ci[0])
    assert verdict.placements(np.array([1.0, 3.0]), np.array([1.0, 2.0])).tolist() == [0.75,
                                                                                       0.0]
    assert c.detectable > 0


def test_the_replays_monte_carlo_noise_is_taken_out_of_ps_interval():
    """Y under a resample: m searches replayed from a resampled pool. Their finite number
    widens the spread of the mean placement over resamples; with `simulated` it is taken
    out, so P's interval is as wide with 50 searches a resample as with 1,000 (0.113)."""
    rng = np.random.default_rng(1)
    x, pool = rng.normal(0.0, 1.0, 20), rng.normal(0.3, 1.0, 300)

    def replayed(m):
        return verdict.Resampling(lambda r: r.integers(300, size=300)[r.integers(300, size=m)],
                                  lambda draws: pool[draws])

    def half(m, simulated):
        c = verdict.compare(x, pool, replayed(m), 400, np.random.default_rng(2), n_y=300,
                            simulated=simulated)
        return (c.p_less_ci[1] - c.p_less_ci[0]) / 2

    exact = half(1000, True)
    assert half(50, True) == pytest.approx(exact, rel=0.1)
    assert half(10, False) > 1.5 * exact  # the noise, left in, widens it (0.27)


def test_a_resample_whose_online_median_diverged_keeps_its_infinite_difference():
    """9 of 20 online runs diverged (NaN: the worst): in many resamples half or more did, so
    the online median is infinite there, and the interval's upper end is infinite too."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.1, 0.01, 11), np.full(9, np.nan)])
    y = rng.normal(0.12, 0.01, 50)
    c = verdict.compare(x, y, verdict.Resampling.of(y), 400, rng)
    assert math.isinf(c.difference_ci[1]) and math.isfinite(c.difference_ci[0])
    assert math.isinf(c.detectable)


def test_random_streams_belong_to_what_they_draw_for():
    """A replay's or a comparison's stream comes from the seed and its own key: adding an
    entry or a budget elsewhere changes none of the others' numbers."""
    a = verdict.stream(0, "digits", "random · fixed", 1311.0).random(3)
    assert np.array_equal(a, verdict.stream(0, "digits", "random · fixed", 1311.0).random(3))
    assert not np.array_equal(a, verdict.stream(0, "digits", "random · fixed", 3000.0).random(3))
    assert not np.array_equal(a, verdict.stream(1, "digits", "random · fixed", 1311.0).random(3))


@pytest.mark.parametrize("n", [5, 10, 20])
def test_verdicts_rarely_claim_a_difference_that_is_not_there(n):
    """Simulated: online runs and black-box searches from the same distribution (P = 1/2) and
    from shifted ones. P's interval covers the truth within a few points of 95%, and a verdict
    other than inconclusive comes about as often as its 5% level allows."""
    from scipy import stats

    rng = np.random.default_rng(n)
    for shift in (0.0, 1.0):
        truth = stats.norm.cdf(shift / math.sqrt(2))
        covered = decided = 0
        for _ in range(300):
            x, pool = rng.normal(0, 1, n), rng.normal(shift, 1, 100)
            c = verdict.compare(x, pool, verdict.Resampling.of(pool), 60, rng)
            covered += c.p_less_ci[0] <= truth <= c.p_less_ci[1]
            decided += not c.verdict.startswith("inconclusive")
        if n < verdict.MIN_N:  # too few runs: no interval, no verdict
            assert covered == decided == 0
            continue
        assert covered / 300 >= 0.95 - 0.06
        if shift == 0.0:
            assert decided / 300 <= 0.05 + 0.035


def test_paired_comparisons_are_a_sign_test_over_initializations():
    rows = []
    for method, finals in (("a", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
                           ("b", [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])):
        for rep, v in enumerate(finals):
            rows += [dict(task="t", method=method, optimizer="online", repetition=rep, trial=0,
                          epoch=1, trial_start=0.0, train_seconds_cum=1.0, val_loss=v,
                          test_loss=v)]
    table = verdict.paired(results.table(rows)).iloc[0]
    assert (table["a"], table["b"], table["n_pairs"]) == ("a", "b", 9)
    assert table["p_a_below_b"] == 1.0 and table["verdict_for_a"] == "better"  # 9 of 9
    assert table["median_difference"] == pytest.approx(-0.1)
    # a diverged run of a (NaN) is its worst: the interval keeps that pair's +inf
    diverged = [dict(r, val_loss=math.nan, test_loss=math.nan)
                if r["method"] == "a" and r["repetition"] < 4 else r for r in rows]
    table = verdict.paired(results.table(diverged)).iloc[0]
    assert table["difference_hi"] == math.inf and table["verdict_for_a"].startswith("incon")
    five = [r for r in rows if r["repetition"] < 5]
    small = verdict.paired(results.table(five)).iloc[0]
    assert small["verdict_for_a"] == "inconclusive at n = 5"  # 5 of 5: p = 1/16 two-sided
    assert math.isnan(small["difference_lo"])


def trace_rows(curve):
    return [dict(task="t", method="m", optimizer="fixed", repetition=0, trial=0, epoch=e,
                 trial_start=0.0, train_seconds_cum=float(e), val_loss=v, test_loss=v)
            for e, v in enumerate(curve, 1)]


@pytest.mark.parametrize("curve, sustained, first", [
    ([0.9, 0.4, 0.8, 0.45, 0.42], 4, 2),  # a dip at 2 does not count; below from 4 on
    ([0.9, 0.6, 0.4, 0.3], 3, 3),  # stays below from 3: both rules agree
    ([0.9, 0.4, 0.6], math.inf, 2),  # ends above: not reached, however it dipped
])
def test_sustained_time_to_target(curve, sustained, first):
    """The choice's test loss must stay at or below the target to the end of the budget."""
    df = results.table(trace_rows(curve))
    for rule, want in (("sustained", sustained), ("first-touch", first)):
        got = report.time_to_target(df, {"t": 0.5}, rule)["compute_to_target"].iloc[0]
        assert got == want, rule


def write_run(path, rows, suite, costs):
    results.write_table(results.table(rows), path)
    results.write_json({"suite": suite, "experiments": [], "finished": 1.0,
                        "compute": costs}, path / results.RUN_JSON)
    return path


def cost_row(training, method, optimizer, per_epoch, device=None, task="digits"):
    return {"task": task, "training": training, "method": method, "optimizer": optimizer,
            "batch_size": 8, "val_batch_size": 8, "steps_per_epoch": 10,
            "step_flops": per_epoch, "epoch_extra_flops": 0.0, "eval_flops_per_epoch": 0.0,
            "sgd_step_flops": 1.0, "step_seconds": per_epoch if device else math.nan,
            "sgd_step_seconds": 1.0 if device else math.nan, "device": device}


@pytest.fixture
def study(tmp_path):
    return write_study(tmp_path / "run")


def write_study(path, task="digits", methods=("random", "oho")):
    """A random pool of 20 trials of 4 epochs (4 searches of 5) and 12 oho runs that cost 2
    SGD-epochs an epoch (of `methods`, those named)."""
    rng = np.random.default_rng(0)
    rows = []
    for rep in range(4):
        for t in range(5):
            final = rng.uniform(0.1, 0.5)
            rows += [dict(task=task, method="random", optimizer="fixed", repetition=rep,
                          trial=t, epoch=e, trial_start=float(t), train_seconds_cum=float(e),
                          val_loss=final * (5 - e), test_loss=final * (5 - e) + 0.01)
                     for e in range(1, 5)]
    for rep in range(12):
        rows += [dict(task=task, method="oho", optimizer="online", repetition=rep, trial=0,
                      epoch=e, trial_start=0.0, train_seconds_cum=2.0 * e,
                      val_loss=0.05 * (5 - e), test_loss=0.05 * (5 - e) + 0.01)
                 for e in range(1, 5)]
    suite = {"tasks": [task], "methods": list(methods), "seed": 0, "epochs": 4,
             "batch_size": 8, "options": {}}
    costs = [c for c in (cost_row("black-box · fixed", "random", "fixed", 1.0, task=task),
                         cost_row("oho", "oho", "online", 2.0, task=task))
             if c["method"] in methods]
    return write_run(path, [r for r in rows if r["method"] in methods], suite, costs)


def test_the_verdict_command_writes_its_tables_and_figure(study, capsys):
    assert cli.main(["verdict", str(study), "--searches", "2000"]) == 0
    table = pd.read_csv(study / "verdict.csv")
    assert set(table["budget"]) == {"1x", "full"}
    one = table.set_index("budget").loc["1x"]
    assert one["compute"] == 8.0 and one["n_online"] == 12 and one["verdict"] == "better"
    curves = pd.read_csv(study / "equal-compute.csv")
    assert {"random · fixed", "oho"} <= set(curves["entry"])
    assert (study / "equal-compute.png").is_file() and "P(online" in (
        study / "verdict.md").read_text()


def test_a_verdict_over_a_run_still_going_says_so(study, capsys):
    """Its table holds the trials ended so far: the command says it first, verdict.md on its
    Runs line."""
    info = json.loads((study / results.RUN_JSON).read_text())
    results.write_json({**info, "finished": None}, study / results.RUN_JSON)
    assert cli.main(["verdict", str(study), "--searches", "1000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"ohobench: {study} has not finished: this verdict covers the 32 "
                             "trial(s) it has ended so far")
    assert f"`{study}` (not finished: the trials it had ended)" in (
        study / "verdict.md").read_text()


def test_a_study_split_over_runs_gets_the_verdict_it_gets_in_one(study, tmp_path, capsys):
    """The evaluation keeps the pool, the GP searches and the online runs in runs of their
    own: read together, they make the same verdict as one run holding all."""
    pool = write_study(tmp_path / "pool", methods=("random",))
    online = write_study(tmp_path / "online", methods=("oho",))
    assert cli.main(["verdict", str(pool), str(online), "--out", str(tmp_path / "out")]) == 0
    assert cli.main(["verdict", str(study)]) == 0
    split, whole = (pd.read_csv(d / "verdict.csv") for d in (tmp_path / "out", study))
    assert len(whole) == 2 and split.equals(whole)


def test_a_task_without_a_pool_compares_with_its_live_searches_alone(tmp_path, capsys):
    """digits has random search's pool; on ridge only a GP searched (live). Then random search
    runs there too, with another optimizer family: those trials are no pool of fixed-lr ones."""
    digits, ridge = write_study(tmp_path / "digits"), write_study(tmp_path / "ridge", "ridge")
    df = pd.read_parquet(ridge / results.TABLE)
    gp = df.assign(method=df["method"].replace({"random": "skopt-gp"}))
    info = json.loads((ridge / results.RUN_JSON).read_text())
    info["suite"]["methods"] = ["skopt-gp", "oho"]
    info["compute"] = [cost_row("black-box · fixed", "skopt-gp", "fixed", 1.0, task="ridge"),
                       cost_row("oho", "oho", "online", 2.0, task="ridge")]
    settings = verdict.Settings(searches=200, resamples=50, bootstrap_searches=20)
    for also in ([], ["random"]):
        adam = df[df["method"].isin(also)].assign(optimizer="adam")
        results.write_table(pd.concat([gp, adam], ignore_index=True), ridge)
        info["suite"]["methods"] += also
        info["compute"] += [cost_row("black-box · adam", m, "adam", 1.0, task="ridge")
                            for m in also]
        results.write_json(info, ridge / results.RUN_JSON)
        both, _ = analysis.load_runs([digits, ridge])
        assert verdict.pool_rows(both, "ridge").empty
        curves, _ = verdict.analyse(both, settings)
        assert set(curves.loc[curves["task"] == "ridge", "entry"]) == {
            "skopt-gp · fixed", "oho", *(f"{m} · adam" for m in also)}
        assert "random · hyperband · fixed (replayed)" in set(curves["entry"])  # digits'


def test_over_two_tasks_the_verdict_adds_the_aggregate_table_and_figure(tmp_path, capsys):
    runs = [write_study(tmp_path / task, task) for task in ("digits", "ridge")]
    assert cli.main(["verdict", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    aggregate = pd.read_csv(out / "across-tasks.csv").set_index("method")
    assert aggregate.loc["oho", "runs"] == "12+12" and aggregate.loc["random", "runs"] == "4+4"
    assert aggregate.loc["oho", "iqm_hi"] < 1.0  # oho ends below the pool on both tasks
    assert np.isnan(aggregate.loc["random", "iqm_lo"])  # 4 searches a task: no interval
    text = (out / "verdict.md").read_text()
    assert "## Over the tasks" in text and "| oho | 12+12 | 0.515 [" in text
    # the reference is the verdict's best entry, here ASHA replayed from the pool, so the
    # live random searches score above 1
    curves = pd.read_csv(out / "equal-compute.csv")
    full = curves[(curves["budget"] == "full") & (curves["kind"] == "black-box")]
    best = full.loc[full.groupby("task")["median"].idxmin(), "entry"].unique().tolist()
    assert best == ["random · asha · fixed (replayed)"]
    assert "| random · fixed | 4+4 | 1.273 (none: fewer than 10 runs on a task) |" in text
    assert (out / "across-tasks.png").is_file() and (out / "across-tasks.pdf").is_file()


@pytest.mark.parametrize("flags, expected", [
    (["--budgets", "0.25"], "below the cost of one black-box trial"),
    (["--budgets", "1,100"], "more than the pool's 20"),
    (["--budgets", "x"], "--budgets 'x': expected positive multiples"),
    (["--compute", "seconds"], "argument --compute: invalid choice: 'seconds'"),
    (["--searches", "0"], "--searches 0: give 1 to"),
])
def test_bad_verdict_input_gets_one_line(study, capsys, flags, expected):
    assert cli.main(["verdict", str(study), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_reports_refuse_an_unknown_unit_and_calibrations_on_different_devices(
        study, tmp_path, capsys):
    assert cli.main(["report", str(study), "--compute", "joules"]) == 2
    assert "invalid choice: 'joules'" in capsys.readouterr().err
    other = tmp_path / "other"
    rows = pd.read_parquet(study / results.TABLE)
    rows = rows[rows["method"] == "oho"].assign(task="digits")
    import json

    info = json.loads((study / results.RUN_JSON).read_text())
    info["compute"] = [dict(r, device="cpu") for r in info["compute"]]
    (study / results.RUN_JSON).write_text(json.dumps(info))
    write_run(other, rows.to_dict("records"),
              {**info["suite"], "methods": ["oho"]},
              [dict(r, device="cuda:0") for r in info["compute"]])
    assert cli.main(["report", str(study), str(other), "--compute", "calibrated"]) == 2
    err = capsys.readouterr().err
    assert "calibrated on different devices" in err and len(err.strip().splitlines()) == 1


def test_across_tasks_normalizes_by_the_best_black_box_entry_and_bootstraps_within_tasks():
    rows = []
    for task, scale in (("a", 1.0), ("b", 10.0)):
        for rep in range(12):
            for method, optimizer, loss in (("random", "fixed", 1.0 + 0.01 * rep),
                                            ("oho", "online", 0.8 + 0.01 * rep)):
                rows.append(dict(task=task, method=method, optimizer=optimizer, repetition=rep,
                                 trial=0, epoch=1, trial_start=0.0, train_seconds_cum=1.0,
                                 val_loss=loss * scale, test_loss=loss * scale))
    aggregate, profile = verdict.across_tasks(results.table(rows))
    by = aggregate.set_index("method")
    assert by.loc["oho", "runs"] == "12+12"
    assert by.loc["oho", "iqm_hi"] < 1.0 < by.loc["random", "iqm_hi"]  # scale-free: ~0.8 vs 1
    assert by.loc["oho", "iqm_lo"] <= by.loc["oho", "iqm"] <= by.loc["oho", "iqm_hi"]
    oho = profile[profile["method"] == "oho"]["fraction"].to_numpy()
    assert (np.diff(oho) >= 0).all() and oho[-1] == 1.0
    assert verdict.across_tasks(results.table([r for r in rows if r["task"] == "a"]))[0].empty



def test_the_iqm_over_tasks_weighs_each_task_the_same():
    """As rliable's IQM of a runs x tasks matrix where tasks have as many runs; with 4 runs on
    one task and 100 on another, each task still carries half the weight."""
    rng = np.random.default_rng(0)
    a, b = rng.random(8), rng.random(8) + 1
    assert stats.pooled_iqm([a, b]) == pytest.approx(trim_mean(np.concatenate([a, b]), 0.25))
    assert stats.pooled_iqm([np.ones(4), np.full(100, 2.0)]) == pytest.approx(1.5)
    # a diverged run is the worst: inf only once one reaches the middle half
    assert math.isfinite(stats.pooled_iqm([np.array([1, 1, 1, np.inf]), np.ones(4)]))
    assert stats.pooled_iqm([np.full(4, np.inf), np.ones(40)]) == math.inf

def test_hyperband_brackets_are_rays():
    """The brackets Ray's HyperBandScheduler fills, in its order: n0 trials to r0 epochs."""
    from ray.tune.schedulers import HyperBandScheduler

    for max_t, eta in ((100, 3), (27, 3), (16, 2)):
        ray_hb = HyperBandScheduler(time_attr="epoch", metric="val_loss", mode="min",
                                    max_t=max_t, reduction_factor=eta)
        ours = verdict.hyperband_brackets(max_t, eta)
        expected = [(ray_hb._get_n0(s), ray_hb._get_r0(s)) for s in range(ray_hb._s_max_1)
                    if ray_hb._get_r0(s) > 0]
        assert [rungs[0] for rungs in ours] == expected
    assert verdict.hyperband_brackets(100, 3)[2] == [(15, 11), (5, 33), (2, 99)]


def hyperband_one_search_at_a_time(pool, budget, order, eta=3):
    """The replay written the plain way, one search and one trial at a time: the oracle for
    the array version."""
    epochs, spent, drawn = np.zeros(len(order), dtype=int), 0.0, 0
    done = budget - float(pool.epoch_cost.min()) + 1e-9

    def key(j):
        v = pool.val[order[j], epochs[j] - 1]
        return -math.inf if epochs[j] == 0 else v if math.isfinite(v) else math.inf

    while spent < done:
        for rungs in verdict.hyperband_brackets(pool.val.shape[1], eta):
            if spent >= done:
                break
            live = list(range(drawn, drawn + rungs[0][0]))
            drawn += rungs[0][0]
            for n, r in rungs:
                live = sorted(live, key=key)[:n]
                for j in live:
                    if spent >= done:
                        break
                    target = min(r, int(pool.length[order[j]]))
                    cost = (target - epochs[j]) * pool.epoch_cost[order[j]]
                    if spent + cost > budget + 1e-9:
                        target = epochs[j] + int(math.floor(
                            (budget - spent) / pool.epoch_cost[order[j]] + 1e-9))
                        cost = (target - epochs[j]) * pool.epoch_cost[order[j]]
                    epochs[j], spent = target, spent + cost
    return epochs


@pytest.mark.parametrize("seed", range(4))
def test_the_hyperband_replay_trains_what_one_search_at_a_time_would(seed):
    """Trials of unequal cost per epoch, some ended early, some diverged (NaN), tied losses,
    budgets that run out mid-rung: every search's choice is the oracle's."""
    rng = np.random.default_rng(seed)
    n, max_t = 120, 27
    val = np.round(rng.random((n, max_t)) + np.linspace(1, 0, max_t), 1)  # ties: kept in order
    val[rng.random(n) < 0.1, rng.integers(1, max_t):] = np.nan
    length = np.where(rng.random(n) < 0.2, rng.integers(1, max_t, n), max_t)
    val[np.arange(max_t)[None, :] >= length[:, None]] = np.nan
    cost = rng.choice([1.0, 1.0, 0.7, 2.5], n) if seed % 2 else np.ones(n)
    pool = verdict.Pool("t", val, val + 0.1, length, cost)
    for budget in (27.0, 60.5, 143.2, 400.0):
        order = verdict.search_orders(n, 40, rng)
        got = verdict.replay_hyperband(pool, budget, order)
        want = np.array([hyperband_one_search_at_a_time(pool, budget, o) for o in order])
        assert np.array_equal(got, verdict._choice(pool, order, want), equal_nan=True)


def test_a_replayed_hyperband_search_runs_its_first_bracket_like_a_random_search():
    """Ray fills bracket s = 0 first: s_max_1 trials at full length, no halving. A budget of
    exactly that bracket is a random search of that many trials."""
    pool = synthetic_pool(n=40, epochs=9)  # eta 3, max_t 9: s_max_1 = 3
    assert verdict.hyperband_brackets(9, 3)[0] == [(3, 9)]
    hb = verdict.replay_hyperband(pool, 27.0, orders(pool, 500))
    rs = verdict.replay_random(pool, 27.0, orders(pool, 500))  # the same draws
    assert (hb == rs).all()
    halved = verdict.replay_hyperband(pool, 27.0 + 5 * 3 + 2 * 6, orders(pool, 500))
    assert (halved <= hb + 1e-12).sum() > 0.9 * len(hb)  # bracket 1 only adds candidates
    with pytest.raises(verdict.ConfigError, match="more trials than the pool's 40"):
        verdict.replay_hyperband(pool, 5_000.0, orders(pool, 2))
