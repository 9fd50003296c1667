"""Comparisons at equal compute, and verdicts that say when the data cannot tell.

An online method's result is the final test loss of one run, at the compute of one run. A
black-box entry's result at a compute budget B is the final test loss of the choice (by
validation loss) of a search that spent B:
- random search, and ASHA over random draws: searches replayed from a pool of logged trials
  (random search's proposals are independent draws from the prior, so drawing them from a pool
  of such draws is exact in distribution; ASHA's stop decisions replay on the logged curves,
  with Ray's rule: `AshaRungs`). A search draws trials without replacement and trains them one
  after another until it has spent B; the last one stops where B runs out.
- model-based searches (skopt-gp, optuna-tpe): their live searches, cut at B.

Every comparison is one online method (X, n runs) against one black-box entry (Y, its
searches) and reports:
- the difference of medians, median(X) - median(Y), with a 95% percentile bootstrap interval;
- P(X < Y), the probability that one online run ends below one search (ties count half), with
  its interval;
- the verdict: "better" where P's interval lies above 1/2, "worse" where it lies below,
  otherwise "inconclusive at n = k";
- the smallest difference of medians this n could detect at 80% power (two-sided 5%):
  (z_0.975 + z_0.8) = 2.80 bootstrap standard errors of the difference.
The bootstrap resamples the online runs and, for a replayed entry, the pool itself (the pool's
own sampling error belongs in the interval), or, for a live entry, its searches.
"""

from __future__ import annotations

import bisect
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench import intervals, report
from bench.analysis.stats import pooled_iqm, pooled_iqm_interval
from bench.errors import ConfigError
from bench.vocabulary import BLACK_BOX, ONLINE, entry_label

MULTIPLES = (1, 2, 4, 8)  # budgets, in runs of the online method
FULL = "full"  # the black-box search's own budget
REPLAY_ASHA = "replay-asha"  # ASHA over random draws, replayed from the pool
REPLAY_HYPERBAND = "replay-hyperband"  # Hyperband over random draws, likewise
REPLAYED = "(replayed)"
POOL_METHOD, POOL_FAMILY = "random", "fixed"  # the pool: random search's fixed-lr trials
CONFIDENCE = 0.95
# Fewer runs (or live searches) than this on either side: P's interval undercovers (88% at
# n = 5 in tests/test_verdict.py's simulation), so no interval and no verdict are given.
MIN_N = 10
POWER_Z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)  # 2.80


NOTE = ("Each online method against the best black-box entry (the lowest median at the "
        "search's full budget), at the compute of one online run (1x) and at the full budget. "
        "Difference: median(online) - median(black-box), with a 95% percentile bootstrap "
        "interval over the online runs and the pool (replayed entries) or the live searches. "
        "P: the probability that one online run ends below one black-box search, the mean of "
        "the runs' placements among the searches, with a Student t interval over the runs "
        "widened by the searches' own variance. Verdict: better or worse where P's interval "
        "excludes 1/2, else inconclusive at n = k. Detectable: the difference of medians this "
        "n would detect with 80% power (2.80 bootstrap standard errors). Below n = 10 runs "
        "or searches on either side no interval is given, and no verdict.")


PAIRED_NOTE = ("Repetition r of every online method starts from the same initial "
               "hyperparameters and model seed: each row compares A and B on the same "
               "initializations (A - B per pair; a diverged run counts as the worst). The "
               "median's interval is distribution-free (none below 6 pairs); P(A < B) counts "
               "the untied pairs, with its exact binomial interval (a sign test).")


@dataclass(frozen=True)
class Pool:
    """Logged trials of one task: per trial, validation and test loss after each epoch (NaN
    past its end) and its compute per epoch, in the table's unit."""

    task: str
    val: np.ndarray  # (trials, epochs)
    test: np.ndarray
    length: np.ndarray  # epochs each trial reported
    epoch_cost: np.ndarray  # each trial's compute per epoch

    def __len__(self) -> int:
        return len(self.length)

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        """One bootstrap resample of the pool, as indices of its trials."""
        return rng.integers(len(self), size=len(self))

    @property
    def trial_cost(self) -> float:
        """The compute of one whole trial (the largest: every epoch trained)."""
        return float(np.max(self.epoch_cost * self.val.shape[1]))


def pool_rows(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """The pool's records on `task`: random search's fixed-lr trials under fifo (all
    repetitions)."""
    rows = report.entries(df)
    return rows[(rows["task"] == task) & (rows["method"] == POOL_METHOD)
                & (rows["optimizer"] == POOL_FAMILY)]


def pool_of(df: pd.DataFrame, task: str) -> Pool:
    """The pool of `task` (`pool_rows`), from a table whose `compute` is in a unit with a
    fixed cost per epoch of a training (flops, calibrated)."""
    rows = pool_rows(df, task).sort_values(["repetition", "trial", "epoch"])
    if rows.empty:
        raise ConfigError(f"{task}: no {POOL_METHOD} · {POOL_FAMILY} trials to replay searches "
                          f"from (the pool is the trials of the {POOL_METHOD} searches under "
                          "fifo)")
    trials = list(rows.groupby(["repetition", "trial"], sort=True))
    epochs = int(rows["epoch"].max())
    val = np.full((len(trials), epochs), np.nan)
    test = np.full((len(trials), epochs), np.nan)
    length = np.zeros(len(trials), dtype=int)
    cost = np.zeros(len(trials))
    for i, (_, t) in enumerate(trials):
        e = t["epoch"].to_numpy(int) - 1
        val[i, e], test[i, e] = t["val_loss"].to_numpy(float), t["test_loss"].to_numpy(float)
        length[i] = int(e.max()) + 1
        cost[i] = float(t["trial_compute"].iloc[-1]) / length[i]
    return Pool(task, val, test, length, cost)


def search_orders(pool_size: int, searches: int, rng: np.random.Generator) -> np.ndarray:
    """Per search (row), the order in which it draws a pool's trials, without replacement.
    A replay reads a row as indices of the pool's trials, so a row of a resampled pool is its
    resample's indices in this order (`Pool.resample`)."""
    return np.argsort(rng.random((searches, pool_size)), axis=1)


def replay_random(pool: Pool, budget: float, order: np.ndarray) -> np.ndarray:
    """The final test loss of the choice of each random search (a row of `order`, the trials
    it draws: `search_orders`) that spent `budget` (NaN where every trial it trained had
    diverged)."""
    n = order.shape[1]
    full = pool.epoch_cost * pool.length
    spent_before = np.cumsum(full[order], axis=1) - full[order]
    if np.any(spent_before[:, -1] + full[order[:, -1]] < budget):
        need = math.ceil(budget / pool.trial_cost)
        raise ConfigError(f"{pool.task}: a random search of {budget:.4g} needs about {need} "
                          f"trials, more than the pool's {n}; give a smaller budget or a "
                          "larger pool")
    left = budget - spent_before
    epochs = np.clip(np.floor(left / pool.epoch_cost[order] + 1e-9), 0,
                     pool.length[order]).astype(int)
    return _choice(pool, order, epochs)


def _choice(pool: Pool, order: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """Per search (row): the test loss, at its last trained epoch, of the trial with the
    lowest validation loss there; `epochs` 0 means not trained."""
    drawn = np.flatnonzero((epochs > 0).any(axis=0))
    used = drawn[-1] + 1 if len(drawn) else 1  # positions past it: no search trained them
    order, epochs = order[:, :used], epochs[:, :used]
    last = np.maximum(epochs - 1, 0)
    val = np.where(epochs > 0, pool.val[order, last], np.nan)
    test = pool.test[order, last]
    val = np.where(np.isfinite(val) & np.isfinite(test), val, np.inf)
    best = np.argmin(val, axis=1)
    rows = np.arange(len(order))
    return np.where(np.isfinite(val[rows, best]), test[rows, best], np.nan)


class AshaRungs:
    """Ray Tune's ASHAScheduler (one bracket, stop_last_trials) as a sequence of trials sees
    it: at each rung epoch grace_period * reduction_factor^k below max_t, a trial stops if its
    validation loss is worse than the best 1/reduction_factor of those recorded there before
    it (the (1 - 1/rf) percentile of -val_loss, numpy's linear interpolation)."""

    def __init__(self, grace_period: int, reduction_factor: float, max_t: int):
        rungs = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
        self.milestones = [grace_period * reduction_factor ** k for k in range(rungs)]
        self.q = 1 - 1 / reduction_factor
        self.max_t = max_t
        self.recorded: list[list[float]] = [[] for _ in self.milestones]

    def cutoff(self, rung: int) -> float | None:
        v = self.recorded[rung]
        if not v:
            return None
        pos = self.q * (len(v) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (pos - lo) * (v[hi] - v[lo])

    def run(self, val: np.ndarray, length: int) -> int:
        """The epoch at which a trial with validation losses `val` (epoch 1 first), which
        reports `length` epochs, stops; its rung results are recorded."""
        for rung, milestone in enumerate(self.milestones):
            if milestone > length or milestone >= self.max_t:
                break
            reward = -float(val[int(milestone) - 1])
            cutoff = self.cutoff(rung)
            if not math.isnan(reward):
                bisect.insort(self.recorded[rung], reward)
            if cutoff is not None and reward < cutoff:
                return int(milestone)
        return min(length, self.max_t)


def replay_asha(pool: Pool, budget: float, orders: np.ndarray, grace_period: int = 1,
                reduction_factor: float = 3) -> np.ndarray:
    """Like `replay_random`, with every search under ASHA (its own rungs); a search that
    would need more trials than the pool holds is refused."""
    n, max_t = orders.shape[1], pool.val.shape[1]
    cheapest = float(pool.epoch_cost.min())  # one epoch of the cheapest trial
    epochs = np.zeros(orders.shape, dtype=int)
    for s, order in enumerate(orders):
        rungs, spent = AshaRungs(grace_period, reduction_factor, max_t), 0.0
        for j, p in enumerate(order):
            if budget - spent < cheapest - 1e-9:  # not one more epoch of any trial
                break
            stop = rungs.run(pool.val[p], int(pool.length[p]))
            trained = min(stop, int(math.floor((budget - spent) / pool.epoch_cost[p] + 1e-9)))
            epochs[s, j] = trained
            spent += trained * pool.epoch_cost[p]
        else:
            if budget - spent >= cheapest - 1e-9:
                raise ConfigError(f"{pool.task}: an ASHA search of {budget:.4g} needs more "
                                  f"trials than the pool's {n}; give a smaller budget or a "
                                  "larger pool")
    return _choice(pool, orders, epochs)


def hyperband_brackets(max_t: int, eta: int) -> list[list[tuple[int, int]]]:
    """Ray Tune's HyperBandScheduler brackets, in the order it fills them (s = 0, 1, ...):
    per bracket, the rungs as (trials, epochs reached): n0 = ceil(s_max_1 / (s + 1) * eta^s)
    trials to r0 = int(max_t * eta^-s) epochs, then ceil(n / eta) of them to int(min(r * eta,
    max_t)), s times."""
    s_max_1 = int(np.round(np.log(max_t) / np.log(eta))) + 1
    out = []
    for s in range(s_max_1):
        n, r = int(np.ceil(s_max_1 / (s + 1) * eta ** s)), int(max_t * eta ** (-s))
        if r == 0:
            continue  # Ray skips a bracket too small
        rungs = [(n, r)]
        for _ in range(s):
            n, r = int(np.ceil(n / eta)), int(min(r * eta, max_t))
            rungs.append((n, r))
        out.append(rungs)
    return out


def replay_hyperband(pool: Pool, budget: float, orders: np.ndarray,
                     reduction_factor: int = 3) -> np.ndarray:
    """Like `replay_random`, with every search under synchronous Hyperband with Ray's bracket
    sizes (`hyperband_brackets`, filled in turn, band after band): a bracket's trials train to
    its first rung, the best by validation loss there go on to the next, and so on; a search
    stops where its budget runs out. Refused where a search would need more trials than the
    pool holds. All searches step through the brackets together (arrays of searches)."""
    searches, n_pool = orders.shape
    done = budget - float(pool.epoch_cost.min()) + 1e-9  # past this, not one more epoch
    epochs = np.zeros(orders.shape, dtype=int)
    spent = np.zeros(searches)
    drawn = 0
    brackets = hyperband_brackets(pool.val.shape[1], reduction_factor)
    while (spent < done).any():
        for rungs in brackets:
            if not (spent < done).any():
                break
            n0 = rungs[0][0]
            if drawn + n0 > n_pool:
                raise ConfigError(f"{pool.task}: a Hyperband search of {budget:.4g} needs "
                                  f"more trials than the pool's {n_pool}; give a smaller "
                                  "budget or a larger pool")
            live = np.broadcast_to(np.arange(drawn, drawn + n0), (searches, n0))
            drawn += n0
            for n, r in rungs:
                trials = np.take_along_axis(orders, live, axis=1)
                trained = np.take_along_axis(epochs, live, axis=1)
                rank = np.argsort(_rank_key(pool, trials, trained), axis=1, kind="stable")
                live = np.take_along_axis(live, rank[:, :n], axis=1)
                _train_rung(pool, orders, epochs, spent, live, r, budget, done)
    return _choice(pool, orders, epochs)


def _rank_key(pool: Pool, trials: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """Trials' validation loss at `epochs` for ranking (not trained yet: ranks first, so the
    rung's first pass trains every trial drawn; non-finite: last)."""
    val = pool.val[trials, np.maximum(epochs - 1, 0)]
    return np.where(epochs == 0, -np.inf, np.where(np.isfinite(val), val, np.inf))


def _train_rung(pool: Pool, orders: np.ndarray, epochs: np.ndarray, spent: np.ndarray,
                live: np.ndarray, r: int, budget: float, done: float) -> None:
    """Each search (not yet done) trains its `live` trials (positions in its order), one after
    another, to `r` epochs (or their end); the one where its budget runs out trains the epochs
    left, and a search stops once `spent` reaches `done`. Updates `epochs` and `spent`."""
    rows = np.arange(len(live))[:, None]
    trials = np.take_along_axis(orders, live, axis=1)
    target = np.minimum(r, pool.length[trials])
    cost_per_epoch = pool.epoch_cost[trials]
    position = np.arange(live.shape[1])[None, :]
    start = np.where(spent < done, 0, live.shape[1])  # the next position each search trains
    while (pending := start < live.shape[1]).any():
        now = epochs[rows, live]
        cost = np.where(position >= start[:, None], (target - now) * cost_per_epoch, 0.0)
        # spent before each position, summed left to right as one search at a time would
        before = np.cumsum(np.concatenate([spent[:, None], cost], axis=1), axis=1)
        over = (before[:, :-1] + cost > budget + 1e-9) & (position >= start[:, None])
        first_over = np.where(over.any(axis=1), over.argmax(axis=1), live.shape[1])
        reached = (before[:, :-1] >= done) & (position >= start[:, None])
        first_done = np.where(reached.any(axis=1), reached.argmax(axis=1), live.shape[1])
        stop = np.minimum(first_over, first_done)
        whole = pending[:, None] & (position >= start[:, None]) & (position < stop[:, None])
        epochs[rows, live] = np.where(whole, target, now)
        ended = pending & (first_done <= first_over)  # done, or every position trained
        spent[ended] = before[ended, np.minimum(first_done[ended], live.shape[1])]
        start[ended] = live.shape[1]
        cut = np.flatnonzero(pending & ~ended)  # the budget runs out at `first_over`
        j = first_over[cut]
        spent_before, e = before[cut, j], now[cut, j]
        per_epoch = cost_per_epoch[cut, j]
        cut_target = e + np.floor((budget - spent_before) / per_epoch + 1e-9).astype(int)
        epochs[cut, live[cut, j]] = cut_target
        spent[cut] = spent_before + (cut_target - e) * per_epoch
        start[cut] = np.where(spent[cut] < done, j + 1, live.shape[1])


REPLAYS = {POOL_METHOD: replay_random, REPLAY_ASHA: replay_asha,
           REPLAY_HYPERBAND: replay_hyperband}


def live_results(df: pd.DataFrame, task: str, method: str, optimizer: str, budget: float
                 ) -> np.ndarray:
    """Per live search of an entry: the final test loss of its choice once it had spent
    `budget` (its whole run where it spent less)."""
    rows = report.entries(df)
    rows = rows[(rows["task"] == task) & (rows["method"] == method)
                & (rows["optimizer"] == optimizer)]
    out = []
    for _, rep in rows.groupby("repetition", sort=True):
        trace = report.incumbent_trace(rep[rep["compute"] <= budget + 1e-9])
        out.append(float(trace["chosen_test_loss"].iloc[-1]) if len(trace) else math.nan)
    return np.array(out)


def online_results(df: pd.DataFrame, task: str, method: str) -> tuple[np.ndarray, float]:
    """(final test loss per run, the median compute of one run) of an online method."""
    reps = report.repetitions(df[(df["task"] == task) & (df["method"] == method)])
    return reps["final_test_loss"].to_numpy(float), float(reps["compute"].median())


def nanmedian_worst(x: np.ndarray) -> float:
    """The median with NaN (no result) counted as the worst."""
    return float(np.median(np.where(np.isnan(x), np.inf, x)))


@dataclass(frozen=True)
class Comparison:
    difference: float
    difference_ci: tuple[float, float]
    p_less: float
    p_less_ci: tuple[float, float]
    verdict: str
    detectable: float


def placements(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per x_i: P(x_i < Y) over the values of y (ties half; NaN counts as the worst)."""
    x, y = np.where(np.isnan(x), np.inf, x), np.sort(np.where(np.isnan(y), np.inf, y))
    right, left = np.searchsorted(y, x, side="right"), np.searchsorted(y, x, side="left")
    return (len(y) - right + 0.5 * (right - left)) / len(y)


@dataclass(frozen=True)
class Resampling:
    """Y under bootstrap resamples: `draw(rng)` takes one resample's random numbers (an array),
    `results(draws)` gives Y for a stack of them, a row per resample, so that replays run a
    batch of resamples at once."""

    draw: Callable[[np.random.Generator], np.ndarray]
    results: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def of(cls, y: np.ndarray) -> Resampling:
        """The plain bootstrap of the values `y` (live searches)."""
        return cls(lambda rng: rng.integers(len(y), size=len(y)), lambda draws: y[draws])


RESAMPLES_AT_ONCE = 50  # bootstrap resamples replayed in one batch


def compare(x: np.ndarray, y: np.ndarray, resample_y: Resampling, resamples: int,
            rng: np.random.Generator, n_y: int | None = None,
            simulated: bool = False) -> Comparison:
    """X (online runs) against Y (the black-box entry's search results); `resample_y` gives Y
    under bootstrap resamples (of the pool, or of the live searches).

    P(X < Y) is the mean of the placements u_i = P(x_i < Y); its interval is Student's t over
    the n placements, its variance widened by Y's own (the variance of the mean placement over
    resamples of Y). `simulated`: each resample's Y are searches replayed from a resampled
    pool, whose finite number adds Monte Carlo noise to that variance; the noise (the variance
    of one search's placement over their number, averaged over the resamples) is taken out.
    tests/test_verdict.py simulates its coverage and its false verdicts at n = 5, 10 and 20 (a
    percentile bootstrap of P made false verdicts 15% of the time at n = 5). The difference of
    medians gets a percentile bootstrap interval over both sides; a resample whose online
    median is infinite (half its runs diverged) keeps its infinite difference."""
    diffs, means = np.empty(resamples), np.empty(resamples)
    noise = np.zeros(resamples)
    xs = np.sort(np.where(np.isnan(x), np.inf, x))
    for first in range(0, resamples, RESAMPLES_AT_ONCE):
        batch = range(first, min(first + RESAMPLES_AT_ONCE, resamples))
        picks, draws = [], []
        for _ in batch:  # the random numbers in the order of one resample after another
            picks.append(rng.integers(len(x), size=len(x)))
            draws.append(resample_y.draw(rng))
        for b, pick, yb in zip(batch, picks, resample_y.results(np.stack(draws)), strict=True):
            diffs[b], means[b], noise[b] = _resampled(x[pick], yb, xs, simulated)
    u = placements(x, y)
    n = min(len(x), n_y or len(y))  # replayed searches: the pool's size is what counts
    var_y = max(float(np.var(means, ddof=1)) - float(noise.mean()), 0.0)
    se = math.sqrt((np.var(u, ddof=1) / len(x) if len(x) > 1 else math.inf) + var_y)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, max(len(x) - 1, 1)) * se
    p = float(u.mean())
    p_ci = ((max(0.0, p - half), min(1.0, p + half)) if n >= MIN_N else (math.nan, math.nan))
    alpha = (1 - CONFIDENCE) / 2
    kept = diffs[~np.isnan(diffs)]  # NaN: both medians infinite
    d_ci = (tuple(np.quantile(kept, [alpha, 1 - alpha], method="inverted_cdf"))
            if len(kept) and n >= MIN_N else (math.nan,) * 2)
    se_d = (float(np.std(kept, ddof=1)) if len(kept) > 1 and np.isfinite(kept).all()
            else math.inf if len(kept) > 1 else math.nan)
    return Comparison(nanmedian_worst(x) - nanmedian_worst(y),
                      (float(d_ci[0]), float(d_ci[1])), p, p_ci, verdict_of(p_ci, n),
                      POWER_Z * se_d)


def _resampled(xb: np.ndarray, yb: np.ndarray, xs: np.ndarray, simulated: bool
               ) -> tuple[float, float, float]:
    """One resample's difference of medians, mean placement, and (simulated) the Monte Carlo
    variance of that mean."""
    below = search_placements(xs, yb)  # per search: the share of online runs below it
    noise = np.var(below, ddof=1) / len(yb) if simulated and len(yb) > 1 else 0.0
    return nanmedian_worst(xb) - nanmedian_worst(yb), float(below.mean()), float(noise)


def search_placements(sorted_x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per y_j: the share of the (sorted, NaN as inf) online results below it, ties half."""
    y = np.where(np.isnan(y), np.inf, y)
    left = np.searchsorted(sorted_x, y, side="left")
    right = np.searchsorted(sorted_x, y, side="right")
    return (left + 0.5 * (right - left)) / len(sorted_x)


def verdict_of(p_ci: tuple[float, float], n: int) -> str:
    if math.isnan(p_ci[0]):
        return f"inconclusive at n = {n}"
    if p_ci[0] > 0.5:
        return "better"
    if p_ci[1] < 0.5:
        return "worse"
    return f"inconclusive at n = {n}"


@dataclass(frozen=True)
class Settings:
    searches: int = 10_000  # replayed searches per budget
    resamples: int = 1_000  # bootstrap resamples of a verdict's intervals
    bootstrap_searches: int = 200  # replayed searches per bootstrap resample
    multiples: Sequence[float] = MULTIPLES
    every_entry: bool = False  # verdicts against every entry at every budget, not the headline
    seed: int = 0


def stream(seed: int, *key) -> np.random.Generator:
    """The random stream of one replay or comparison, from the seed and what it is about (a
    task, entries, a budget), so that adding an entry or a budget changes no other number."""
    text = "|".join(f"{k:.6g}" if isinstance(k, float) else str(k) for k in key)
    return np.random.default_rng([seed, zlib.crc32(text.encode())])


def black_box_entries(df: pd.DataFrame, task: str) -> list[tuple[str, str, str]]:
    """(label, method, optimizer) of every black-box entry on `task`, live or replayed:
    random search's fifo trials also give `random · asha · fixed (replayed)`."""
    rows = report.entries(df)
    rows = rows[(rows["task"] == task) & (rows["optimizer"] != ONLINE)]
    out = [(f"{m} · {o}", m, o) for m, o in
           rows[["method", "optimizer"]].drop_duplicates().itertuples(index=False)]
    if not pool_rows(df, task).empty:
        for name, replay in (("asha", REPLAY_ASHA), ("hyperband", REPLAY_HYPERBAND)):
            out.append((f"{POOL_METHOD} · {name} · {POOL_FAMILY} {REPLAYED}", replay,
                        POOL_FAMILY))
    return out


def analyse(df: pd.DataFrame, settings: Settings = Settings()) -> tuple[pd.DataFrame,
                                                                          pd.DataFrame]:
    """(equal-compute table: per task, entry and budget, the distribution of results;
    verdict table: per online method against the best black-box entry, the one with the
    lowest median at the full budget, at equal compute (1x) and at the full budget; with
    `settings.every_entry`, against every entry at every budget)."""
    if not (df["optimizer"] == ONLINE).any():
        raise ConfigError("no online method in these runs: a verdict compares online methods "
                          "with black-box searches; give runs that hold both")
    curves, verdicts = [], []
    for task in sorted(df["task"].unique()):
        pool = pool_of(df, task) if not pool_rows(df, task).empty else None
        entries = black_box_entries(df, task)
        full = full_budget(df, task)
        onlines = {m: online_results(df, task, m) for m in sorted(df.loc[
            (df["task"] == task) & (df["optimizer"] == ONLINE), "method"].unique())}
        budgets = {(m, f"{k:g}x"): k * cost for m, (_, cost) in onlines.items()
                   for k in settings.multiples}
        cheapest = pool.trial_cost if pool is not None else None
        for (m, label), budget in budgets.items():
            if cheapest is not None and budget < cheapest - 1e-9:
                raise ConfigError(f"{task}: a budget of {budget:.4g} ({label} one {m} run) is "
                                  f"below the cost of one black-box trial ({cheapest:.4g})")
        found: dict[tuple[str, float], tuple] = {}
        for name, m, o in entries:
            for budget in sorted({*budgets.values(), full}):
                y, again = results_at(df, task, m, o, pool, budget, settings,
                                      stream(settings.seed, task, name, budget))
                if y is not None:
                    found[name, budget] = (y, again)
                    label = FULL if budget == full else "equal"
                    curves.append(_row(task, name, BLACK_BOX, label, budget, y))
        for method, (x, cost) in onlines.items():
            curves.append(_row(task, method, ONLINE, "1x", cost, x))
        ranked = sorted((nanmedian_worst(found[name, full][0]), name) for name, *_ in entries
                        if (name, full) in found)
        best = ranked[0][1]
        for method, (x, _) in onlines.items():
            pairs = [(f"{k:g}x", budgets[method, f"{k:g}x"]) for k in settings.multiples]
            pairs = [(lbl, b) for lbl, b in pairs + [(FULL, full)]
                     if settings.every_entry or lbl in ("1x", FULL)]
            for name, *_ in entries:
                if not settings.every_entry and name != best:
                    continue
                for label, budget in pairs:
                    if (name, budget) not in found:
                        continue
                    y, again = found[name, budget]
                    replayed = pool is not None and (REPLAYED in name
                                                     or name == f"{POOL_METHOD} · fixed")
                    c = compare(x, y, again, settings.resamples,
                                stream(settings.seed, task, method, name, budget),
                                len(pool) if replayed else None, simulated=replayed)
                    verdicts.append({
                        "task": task, "online": method, "budget": label, "compute": budget,
                        "black_box": name, "best": name == best, "n_online": len(x),
                        "n_black_box": _n(name, pool, y), "online_median": nanmedian_worst(x),
                        "black_box_median": nanmedian_worst(y), "difference": c.difference,
                        "difference_lo": c.difference_ci[0],
                        "difference_hi": c.difference_ci[1], "p_improvement": c.p_less,
                        "p_lo": c.p_less_ci[0], "p_hi": c.p_less_ci[1], "verdict": c.verdict,
                        "detectable": c.detectable})
    return pd.DataFrame(curves), pd.DataFrame(verdicts)


def paired(df: pd.DataFrame) -> pd.DataFrame:
    """Online methods against each other, paired by initialization (repetition r of every
    online method starts from the same draw and model seed): per pair of methods on a task,
    the median of the paired differences A - B with its distribution-free interval (none below
    n = 6: bench.intervals), P(A < B) over the pairs with its exact (Clopper-Pearson)
    interval, ties left out as in a sign test, the verdict for A, and the detectable median
    difference at 80% power (2.80 standard errors of the paired differences' median,
    1.2533 s / sqrt(n))."""
    rows = []
    reps = report.repetitions(df[df["optimizer"] == ONLINE])
    for task, g in reps.groupby("task", sort=True):
        wide = g.pivot_table(index="repetition", columns="method", values="final_test_loss",
                             aggfunc="first", dropna=False)
        methods = list(wide.columns)
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                both = wide[[a, b]].dropna(how="all")
                x = np.where(np.isnan(both[a]), np.inf, both[a].to_numpy(float))
                y = np.where(np.isnan(both[b]), np.inf, both[b].to_numpy(float))
                d = np.where(x == y, 0.0, x - y)  # both diverged: a tie
                wins, untied = int(np.sum(d < 0)), int(np.sum(d != 0))
                p_ci = ((lambda ci: (float(ci.low), float(ci.high)))(
                    stats.binomtest(wins, untied).proportion_ci(method="exact"))
                    if untied else (0.0, 1.0))
                lo, hi = intervals.median_interval(d, keep_infinite=True)  # diverged: worst
                finite = d[np.isfinite(d)]
                spread = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
                rows.append({
                    "task": task, "a": a, "b": b, "n_pairs": len(d),
                    "median_difference": float(np.median(d)),
                    "difference_lo": lo, "difference_hi": hi,
                    "p_a_below_b": wins / untied if untied else 0.5,
                    "p_lo": p_ci[0], "p_hi": p_ci[1],
                    "verdict_for_a": verdict_of(p_ci, len(d)),
                    "detectable": POWER_Z * 1.2533 * spread / math.sqrt(len(finite))
                    if len(finite) > 1 else math.nan})
    return pd.DataFrame(rows)


def displayed_paired(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task": table["task"], "A": table["a"], "B": table["b"],
        "pairs": table["n_pairs"],
        "median A - B [95% CI]": [f"{d:+.4f} " + (f"[{lo:+.4f}, {hi:+.4f}]" if math.isfinite(lo)
                                                  else intervals.describe(lo, hi, n))
                                  for d, lo, hi, n
                                  in zip(table["median_difference"], table["difference_lo"],
                                         table["difference_hi"], table["n_pairs"],
                                         strict=True)],
        "P(A < B) [95% CI]": [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, lo, hi in zip(
            table["p_a_below_b"], table["p_lo"], table["p_hi"], strict=True)],
        "verdict for A": table["verdict_for_a"],
        "detectable (80% power)": [f"{v:.4f}" for v in table["detectable"]]})


def _n(name: str, pool: Pool | None, y: np.ndarray) -> str:
    if pool is not None and (name.startswith(f"{POOL_METHOD} · fixed") or REPLAYED in name):
        return f"pool of {len(pool)}"
    return str(len(y))


def results_at(df: pd.DataFrame, task: str, method: str, optimizer: str, pool: Pool | None,
               budget: float, settings: Settings, rng: np.random.Generator):
    """(results of the entry's searches at `budget`, a function giving them under one
    bootstrap resample), or (None, None) where the entry cannot be replayed there."""
    if method in REPLAYS and optimizer == POOL_FAMILY and pool is not None:
        replay, n, m = REPLAYS[method], len(pool), settings.bootstrap_searches
        try:
            y = replay(pool, budget, search_orders(n, settings.searches, rng))
        except ConfigError:
            if method == POOL_METHOD:
                raise
            return None, None  # ASHA or Hyperband needs more trials than the pool: not shown
        return y, Resampling(
            lambda r: pool.resample(r)[search_orders(n, m, r)],  # resampled trials, in order
            lambda draws: replay(pool, budget, draws.reshape(-1, n)).reshape(len(draws), m))
    if budget > own_budget(df, task, method, optimizer) * (1 + 1e-9) and \
            budget != full_budget(df, task):
        return None, None  # a live search says nothing past what it spent (but its whole run)
    y = live_results(df, task, method, optimizer, budget)
    return y, Resampling.of(y)


def full_budget(df: pd.DataFrame, task: str) -> float:
    """A black-box search's own budget: the median compute its live searches spent (the
    largest over the entries)."""
    rows = report.entries(df)
    rows = rows[(rows["task"] == task) & (rows["optimizer"] != ONLINE)]
    if rows.empty:
        raise ConfigError(f"{task}: no black-box entry to compare the online methods with")
    spent = rows.groupby(["method", "optimizer", "repetition"])["compute"].max()
    return float(spent.groupby(level=[0, 1]).median().max())


def own_budget(df: pd.DataFrame, task: str, method: str, optimizer: str) -> float:
    """The most compute any live search of an entry spent."""
    rows = report.entries(df)
    rows = rows[(rows["task"] == task) & (rows["method"] == method)
                & (rows["optimizer"] == optimizer)]
    return float(rows["compute"].max())


def _row(task: str, entry: str, kind: str, budget: str, compute: float, y: np.ndarray
         ) -> dict:
    finite = y[np.isfinite(y)]
    q25, q50, q75 = (np.percentile(finite, [25, 50, 75]) if len(finite)
                     else (math.nan,) * 3)
    return {"task": task, "entry": entry, "kind": kind, "budget": budget, "compute": compute,
            "n": len(y), "median": nanmedian_worst(y), "q25": q25, "q75": q75,
            "no_result": int(np.sum(~np.isfinite(y)))}


def displayed(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict rows as text cells."""
    out = pd.DataFrame({
        "task": verdicts["task"], "online": verdicts["online"],
        "budget": [f"{b} ({c:,.4g})" for b, c in zip(verdicts["budget"], verdicts["compute"],
                                                     strict=True)],
        "black-box": verdicts["black_box"],
        "n": [f"{a} vs {b}" for a, b in zip(verdicts["n_online"], verdicts["n_black_box"],
                                            strict=True)],
        "online median": [f"{v:.4f}" for v in verdicts["online_median"]],
        "black-box median": [f"{v:.4f}" for v in verdicts["black_box_median"]],
        "difference [95% CI]": [
            f"{d:+.4f} " + (f"[{lo:+.4f}, {hi:+.4f}]" if math.isfinite(lo) else "(none)")
            for d, lo, hi in zip(verdicts["difference"], verdicts["difference_lo"],
                                 verdicts["difference_hi"], strict=True)],
        "P(online < black-box) [95% CI]": [
            f"{p:.2f} " + (f"[{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else "(none)")
            for p, lo, hi in zip(verdicts["p_improvement"], verdicts["p_lo"], verdicts["p_hi"],
                                 strict=True)],
        "verdict": verdicts["verdict"],
        "detectable (80% power)": [f"{v:.4f}" for v in verdicts["detectable"]]})
    return out


def references(curves: pd.DataFrame) -> dict[str, float]:
    """Per task: the median of its best black-box entry at the search's full budget, live or
    replayed (the verdict's best entry), from the equal-compute table."""
    full = curves[(curves["kind"] == BLACK_BOX) & (curves["budget"] == FULL)]
    return {task: float(g["median"].min()) for task, g in full.groupby("task")}


def across_tasks(df: pd.DataFrame, reference: dict[str, float] | None = None,
                 resamples: int = 2_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Over several tasks (rliable's aggregate view, computed here with numpy): every run's
    final test loss, online runs and live black-box searches alike, as a score normalized by
    its task's reference (`reference`: per task, the median of its best black-box entry,
    `references` of the verdict's equal-compute table; without it, the lowest median of the
    task's live black-box entries, a search without a result counting as the worst): 1 = as
    good as it, below 1 = better. Per entry present on every task, each task weighing the
    same whatever its number of runs: the IQM of its scores (`stats.pooled_iqm`), with a 95%
    stratified bootstrap interval (repetitions resampled within each task), and the
    performance profile: the share of its runs scoring at most tau, averaged over the tasks.
    Empty below two tasks."""
    reps = report.repetitions(df)
    tasks = sorted(reps["task"].unique())
    if len(tasks) < 2:
        return pd.DataFrame(), pd.DataFrame()
    scored = []
    for task, g in reps.groupby("task"):
        bb = g[g["optimizer"] != ONLINE]
        if bb.empty:
            raise ConfigError(f"{task}: no black-box entry to normalize the scores by")
        ref = (reference[task] if reference and task in reference else
               min(nanmedian_worst(e["final_test_loss"].to_numpy(float))
                   for _, e in bb.groupby(["method", "optimizer"])))
        scored.append(g.assign(score=g["final_test_loss"].fillna(np.inf) / ref))  # worst
    scores = pd.concat(scored)
    rng = np.random.default_rng(seed)
    rows, profile = [], []
    finite = scores["score"][np.isfinite(scores["score"]) & (scores["score"] > 0)]
    taus = np.geomspace(finite.min() * 0.98, finite.max() * 1.02, 100) if len(finite) else []
    for (method, optimizer), g in scores.groupby(["method", "optimizer"], sort=True):
        per_task = [g.loc[g["task"] == t, "score"].to_numpy(float) for t in tasks]
        if any(len(x) == 0 for x in per_task):
            continue  # not on every task
        lo, hi = pooled_iqm_interval(per_task, rng, resamples, min_n=MIN_N)  # as the verdicts
        rows.append({"method": method, "optimizer": optimizer,
                     "runs": "+".join(str(len(x)) for x in per_task),
                     "iqm": pooled_iqm(per_task), "iqm_lo": lo, "iqm_hi": hi})
        profile += [{"method": method, "optimizer": optimizer, "tau": float(t),
                     "fraction": float(np.mean([np.mean(x <= t) for x in per_task]))}
                    for t in taus]
    return pd.DataFrame(rows), pd.DataFrame(profile)


ACROSS_NOTE = ("Every run's final test loss (an online run, or a live black-box search's "
               "choice at its full budget) over its task's reference, the median of the task's "
               "best black-box entry: below 1 is better. IQM: the mean of the middle half, each "
               "task weighing the same whatever its number of runs, with a 95% stratified "
               "bootstrap interval (runs resampled within each task; none below 10 runs on a "
               "task). Only entries present on "
               "every task. across-tasks.png draws it with the score profile.")


def displayed_across(aggregate: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "entry": [entry_label(m, o) for m, o in zip(aggregate["method"], aggregate["optimizer"],
                                                    strict=True)],
        "runs per task": aggregate["runs"],
        "IQM of loss / reference [95% CI]": [
            f"{v:.3f} " + (f"[{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) else
                           f"(none: fewer than {MIN_N} runs on a task)")
            for v, lo, hi in zip(aggregate["iqm"], aggregate["iqm_lo"], aggregate["iqm_hi"],
                                 strict=True)]})

