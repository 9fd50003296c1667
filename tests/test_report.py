import math

import pandas as pd
import pytest

from bench import report, results


def rows(method, trials):
    """trials: list of (start, [(seconds_cum, val, test), ...]) in any order."""
    out = []
    for trial, (start, epochs) in enumerate(trials):
        for e, (secs, val, test) in enumerate(epochs):
            out.append(dict(task="t", method=method, repetition=0, trial=trial, epoch=e + 1,
                            trial_start=start, train_seconds_cum=secs, val_loss=val,
                            test_loss=test, diverged=not math.isfinite(val)))
    return out


# Black box: three one-epoch trials. The third has the best *test* loss but not the best
# validation loss, so it is never the choice.
BLACK_BOX = rows("bb", [(0, [(1, 0.5, 0.6)]), (1, [(2, 0.3, 0.35)]), (2, [(3, 0.4, 0.2)])])
ONLINE = rows("on", [(0, [(1, 0.6, 0.5), (2, 0.4, 0.3), (3, 0.3, 0.25)])])
DIVERGED = rows("dv", [(0, [(1, 0.2, 0.3), (2, math.nan, math.nan)]), (1, [(1, 0.5, 0.5)])])


def table(*parts):
    return results.table([r for p in parts for r in p])


def test_choice_is_by_validation_loss_never_test_loss():
    reps = report.repetitions(table(BLACK_BOX)).iloc[0]
    assert reps["final_test_loss"] == 0.35 and reps["chosen_trial"] == 1


def test_time_to_target_cumulates_trials_in_start_order():
    ttt = report.time_to_target(table(BLACK_BOX, ONLINE), {"t": 0.4}).set_index("method")
    assert ttt.loc["bb", "compute_to_target"] == 1 + 2  # reached with the second trial
    assert ttt.loc["bb", "trials_to_target"] == 2
    assert ttt.loc["on", "compute_to_target"] == 2  # the online run's second epoch


def test_not_reached_is_shown_not_dropped():
    s = report.summary(table(BLACK_BOX, ONLINE), target=0.3).set_index("method")
    assert math.isinf(s.loc["bb", "ttt_median"]) and s.loc["bb", "reached"] == "0/1"
    assert s.loc["on", "reached"] == "1/1" and s.loc["on", "ttt_median"] == 2  # 0.3 <= 0.3
    assert "not reached" in report.format_summary(s.reset_index())


def test_default_target_is_the_median_final_test_loss_over_methods():
    s = report.summary(table(BLACK_BOX, ONLINE))
    assert s["target"].tolist() == pytest.approx([(0.35 + 0.25) / 2] * 2)


def test_diverged_trial_is_counted_and_its_last_good_epoch_not_chosen():
    reps = report.repetitions(table(DIVERGED)).iloc[0]
    assert reps["diverged_trials"] == 1 and reps["final_test_loss"] == 0.5


def test_distribution_over_repetitions():
    parts = []
    for rep, test in enumerate([0.1, 0.2, 0.3, 0.4, 0.9]):
        parts += [dict(r, repetition=rep) for r in rows("m", [(0, [(1, test, test)])])]
    s = report.summary(results.table(parts), target=0.25).iloc[0]
    assert (s["test_median"], s["test_min"], s["test_max"]) == (0.3, 0.1, 0.9)
    assert s["test_iqr"] == pytest.approx(0.2) and s["reached"] == "2/5"
    # n = 5: (min, max) covers the median with 93.8% only, so no 95% interval is given
    assert math.isnan(s["test_ci_lo"]) and math.isnan(s["test_ci_hi"])
    assert "none at n = 5" in report.format_summary(report.summary(results.table(parts), 0.25))
    assert math.isinf(s["ttt_median"])  # 3 of 5 never reached: the median did not either
    assert isinstance(s, pd.Series)
    # two of the five runs diverged (no final loss): they count as the worst, not as absent
    diverged = [dict(r, val_loss=math.nan, test_loss=math.nan, diverged=True)
                if r["repetition"] < 2 else r for r in parts]
    s = report.summary(results.table(diverged), target=0.25).iloc[0]
    assert s["test_median"] == 0.9 and (s["test_min"], s["test_max"]) == (0.3, 0.9)  # not 0.4


def test_wall_clock_time_to_target_counts_concurrent_trials_once():
    """Two trials run at once: compute cumulates them, wall-clock does not."""
    parts = [dict(r, experiment_start=100.0, timestamp=stamp)
             for r, stamp in zip(rows("bb", [(100, [(4, 0.5, 0.6)]), (100.5, [(5, 0.3, 0.35)])]),
                                 [104.5, 106.0], strict=True)]
    ttt = report.time_to_target(results.table(parts), {"t": 0.4}).iloc[0]
    assert ttt["compute_to_target"] == 4 + 5 and ttt["wall_seconds_to_target"] == 6.0
    assert ttt["trials_to_target"] == 2
    s = report.summary(results.table(parts), target=0.1).iloc[0]
    assert math.isinf(s["wall_ttt_median"])  # never reached
    assert math.isnan(report.time_to_target(table(BLACK_BOX), {"t": 0.4})  # no clock recorded
                      .iloc[0]["wall_seconds_to_target"])


def test_wall_clock_time_to_target_leaves_out_waiting_behind_other_experiments():
    """Every experiment of a run is in flight at once: the search's third trial started at
    200, after other experiments' trials held the slots since 106. Its wall-clock counts the
    seconds one of its own trials ran (6 + 3), not the 94 it waited, nor a resume's gap."""
    trials = [(100, [(4, 0.5, 0.6)]), (100.5, [(5, 0.45, 0.5)]), (200, [(3, 0.3, 0.35)])]
    parts = [dict(r, experiment_start=100.0, timestamp=stamp)
             for r, stamp in zip(rows("bb", trials), [104.5, 106.0, 203.0], strict=True)]
    ttt = report.time_to_target(results.table(parts), {"t": 0.4}).iloc[0]
    assert ttt["wall_seconds_to_target"] == 6.0 + 3.0 and ttt["compute_to_target"] == 12
    # one trial cut after epoch 2 and resumed at 500 (a second attempt): 2 s + 1 s
    epochs = rows("on", [(100, [(1, 0.6, 0.6), (2, 0.5, 0.5), (3, 0.3, 0.3)])])
    parts = [dict(r, experiment_start=100.0, attempt_start=a, timestamp=stamp)
             for r, a, stamp in zip(epochs, [100, 100, 500], [101, 102, 501], strict=True)]
    ttt = report.time_to_target(results.table(parts), {"t": 0.4}).iloc[0]
    assert ttt["wall_seconds_to_target"] == 3.0


def test_one_entry_per_method_and_optimizer_family():
    parts = [dict(r, optimizer=o) for o in ("fixed", "adam") for r in BLACK_BOX]
    s = report.summary(results.table(parts))
    assert list(zip(s["method"], s["optimizer"], strict=True)) == [("bb", "adam"),
                                                                    ("bb", "fixed")]


def test_a_search_under_each_scheduler_is_an_entry_of_its_own():
    """random under fifo keeps its name; under asha it is `random · asha`. Its repetition 0
    under each scheduler is its own search: compute cumulates within each only."""
    parts = [dict(r, optimizer="fixed", scheduler=s) for s in ("fifo", "asha")
             for r in BLACK_BOX]
    df = results.table(parts)
    assert df.groupby("scheduler")["search_seconds"].max().to_dict() == {"asha": 6, "fifo": 6}
    s = report.summary(df)
    assert sorted(zip(s["method"], s["trials"], strict=True)) == [("bb", 3), ("bb · asha", 3)]
    assert report.summary(report.entries(df)).equals(s)  # naming entries twice changes nothing
    overhead = report.overhead_by_method({"started": 0.0, "slots": 1, "experiments": [
        {"task": "t", "method": "bb", "optimizer": "fixed", "scheduler": s, "name": s,
         "searcher_seconds_per_trial": 0.0, "trials": [{"start": start, "end": start + 10}]}
        for s, start in (("fifo", 1.0), ("asha", 13.0))]})  # waits 1 s, then 2 s after fifo's
    assert overhead == {("t", "bb", "fixed"): (1.0, 0.0), ("t", "bb · asha", "fixed"): (2.0, 0.0)}


def test_slot_waits_count_a_free_slot_not_a_wait_behind_other_experiments():
    """Two slots, three experiments in flight at once. A trial waits from the moment the slot
    it takes freed (the run's start, a trial's end, a resume) to its own start. c's trial
    starts while a and b hold both slots (a paused member, or a clock's skew): it waits 0 and
    takes the slot that frees first; a resume frees every slot."""
    def exp(name, *spans):
        return {"name": name, "trials": [{"start": a, "end": b} for a, b in spans]}
    info = {"started": 100.0, "resumed": [500.0], "slots": 2, "experiments": [
        exp("a", (101.0, 200.0), (251.5, 300.0), (503.0, 600.0)),
        exp("b", (100.5, 250.0)),
        exp("c", (150.0, 260.0), (None, None))]}  # c's second trial never started
    assert report.slot_waits(info) == {"b": [0.5], "a": [1.0, 1.5, 3.0], "c": [0.0]}
    assert report.slot_waits({"started": 0.0, "slots": 2, "experiments": []}) == {}
