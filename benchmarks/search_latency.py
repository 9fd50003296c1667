"""How long does each black-box search take per trial, next to the digits trial it schedules?

Run from the repository root:

    python benchmarks/search_latency.py [--observed 20 100] [--repeats 3] [--threads 1]
                                        [--fast] [--quality [--budget 30] [--seeds 5]]

For every registered black-box search, on the digits task's space (lr log-uniform, wd
uniform), it observes configurations of its own choosing with a synthetic validation loss and
times every `suggest()` and, separately, every `observe()` of its result: a GP search may do its
work in either (skopt refits its GP and picks its next point in `observe`, Optuna's GPSampler in
`suggest`). For each N it prints the suggest, observe and total of the trial after N observed
(median over --repeats searches seeded 0, 1, ...), and the mean and max total over trials
N/2 + 1 .. N: the GP searches refit their kernel with random restarts only now and then (skopt
at 5, 10, 20, 40, 80... observations), so the mean is the cost per trial and the max the worst
single trial. That cost is not counted in time-to-target, which is training time only, so it
should stay small next to a trial.

In the same process it times whole digits trials, `bench.trial.run_trial` with lr 0.05, wd 1e-4,
seed 0 and the task's 20 epochs (data loading and evaluation included, on the device "auto"
picks): one before each search's measurements and one after the last, so machine noise reaches
both alike, and takes their median. Each mean is printed as a percentage of that trial; the
target is below 5% ("meets" / "OVER"). torch and the BLAS/OpenMP pools (threadpoolctl) run
--threads threads, after an untimed warm-up of every search and a 1-epoch trial has loaded them.
--fast adds the GP searches with their option `fast = true` (`skopt-gp:fast`,
`optuna-gp:fast`), for a side-by-side comparison with their default settings, the libraries'.

--quality (instead of the timings) runs the GP searches, default and fast settings, and random
search for reference, on cheap synthetic functions of 2 to 4 dimensions with known minima and
prints the regret (best value found after --budget trials minus the minimum) per function:
median and geometric mean over --seeds seeds. A measurement, not a test: it exits 0 either way.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import methods
from bench import tasks
from bench.space import IntUniform, LogUniform, SearchSpace, Uniform
from bench.trial import resolve_device, run_trial
from methods.base import MethodKind, Search, TrialOutcome, TrialStatus

TARGET = 0.05  # the most a searcher should cost per trial, as a share of a digits trial
TRIAL = {"task": "digits", "method": "random", "hparams": {"lr": 0.05, "wd": 1e-4}, "seed": 0,
         "epochs": tasks.DIGITS.epochs}
WARM_UP = 8  # suggest/observe rounds per search before the thread limits: past random starts

Factory = Callable[[SearchSpace, int, int], Search]  # (space, seed, budget) -> a search


def loss(config: dict) -> float:
    return (math.log10(config["lr"]) + 1.3) ** 2 + ((config["wd"] - 5e-4) * 1e3) ** 2


def registered(name: str) -> Factory:
    method = methods.get(name)
    return lambda space, seed, budget: method.search(space, seed, budget, method.options_type())


def fast() -> dict[str, Factory]:
    """The GP searches with `fast = true`: cheaper settings that trade search quality."""
    out = {}
    for name in ("optuna-gp", "skopt-gp"):
        method = methods.get(name)
        out[f"{name}:fast"] = (lambda m: lambda space, seed, budget: m.search(
            space, seed, budget, m.options_type(fast=True)))(method)
    return out


def latencies(make: Factory, last: int, seed: int) -> list[tuple[float, float]]:
    """Seconds of (suggest, observe) of trials 1 .. last + 1, in one search."""
    search = make(tasks.DIGITS.space, seed, last + 1)
    out = []
    for _ in range(last + 1):
        start = time.perf_counter()
        config = search.suggest()
        suggested = time.perf_counter()
        search.observe(config, TrialOutcome(TrialStatus.COMPLETED, loss(config)))
        out.append((suggested - start, time.perf_counter() - suggested))
    return out


def trial_seconds() -> float:
    start = time.perf_counter()
    run_trial(TRIAL)
    return time.perf_counter() - start


def timings(args: argparse.Namespace, searches: dict[str, Factory]) -> None:
    observed = sorted(set(args.observed))
    began = time.perf_counter()

    # Warm up before limiting threads: threadpoolctl only reaches libraries already loaded.
    for make in searches.values():
        latencies(make, WARM_UP - 1, seed=0)
    run_trial({**TRIAL, "epochs": 1})
    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)

    trials, rows = [], []
    for name, make in searches.items():
        trials.append(trial_seconds())
        runs = [latencies(make, max(observed), seed) for seed in range(args.repeats)]
        for n in observed:
            s, o = zip(*(r[n] for r in runs), strict=True)
            # trial k + 1 is run after k observed: the window N/2 + 1 .. N is r[n // 2 : n]
            window = [[a + b for a, b in r[n // 2:n]] for r in runs]
            rows.append((name, n, statistics.median(s), statistics.median(o),
                         statistics.median(a + b for a, b in zip(s, o, strict=True)),
                         statistics.median(statistics.fmean(w) for w in window),
                         statistics.median(max(w) for w in window)))
    trials.append(trial_seconds())
    trial = statistics.median(trials)

    print(f"digits trial ({TRIAL['epochs']} epochs, device {resolve_device('auto')}, "
          f"threads={args.threads}): median {trial * 1e3:.0f} ms of {len(trials)} runs "
          f"(min {min(trials) * 1e3:.0f}, max {max(trials) * 1e3:.0f}); "
          f"{TARGET:.0%} of it = {TARGET * trial * 1e3:.0f} ms")
    print(f"ms per call, median of {args.repeats} seeds: suggest, observe and their total for "
          "the trial after N observed; mean and max total over trials N/2+1..N; % trial = mean")
    print(f"{'method':15s}{'N':>5s}{'suggest':>9s}{'observe':>9s}{'total':>9s}{'mean':>9s}"
          f"{'max':>9s}{'% trial':>9s}")
    for name, n, s, o, total, mean, worst in rows:
        share = mean / trial
        verdict = f"  {'meets' if share < TARGET else 'OVER'} {TARGET:.0%}"
        print(f"{name:15s}{n:5d}{s * 1e3:9.1f}{o * 1e3:9.1f}{total * 1e3:9.1f}{mean * 1e3:9.1f}"
              f"{worst * 1e3:9.1f}{share:9.1%}{verdict}")
    print(f"({time.perf_counter() - began:.0f} s in all)")


# Synthetic functions for --quality: (space, f, minimum). All minimized.
def _branin(c: dict) -> float:
    x, y = c["x"], c["y"]
    b, k = 5.1 / (4 * math.pi ** 2), 5 / math.pi
    return (y - b * x ** 2 + k * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547],
                         [381, 5743, 8828]])


def _hartmann3(c: dict) -> float:
    x = np.array([c["x1"], c["x2"], c["x3"]])
    return float(-np.dot([1.0, 1.2, 3.0, 3.2], np.exp(-np.sum(_H3_A * (x - _H3_P) ** 2, 1))))


def _mixed4(c: dict) -> float:
    """lr, wd log-scale, momentum, an integer step size; a tilted bowl, minimum 0."""
    a, b = math.log10(c["lr"]) + 1.5, c["momentum"] - 0.9
    return (a ** 2 + 2 * a * b + 4 * b ** 2 + 0.5 * (math.log10(c["wd"]) + 4) ** 2
            + 0.02 * (c["step_size"] - 4) ** 2)


FUNCTIONS = {
    "bowl2 (digits space)": (tasks.DIGITS.space, loss, 0.0),
    "branin2": ({"x": Uniform(-5.0, 10.0), "y": Uniform(0.0, 15.0)}, _branin, 0.397887),
    "hartmann3": ({f"x{i}": Uniform(0.0, 1.0) for i in (1, 2, 3)}, _hartmann3, -3.86278),
    "mixed4": ({"lr": LogUniform(1e-4, 1.0), "wd": LogUniform(1e-6, 1e-2),
                "momentum": Uniform(0.0, 0.99), "step_size": IntUniform(1, 10)}, _mixed4, 0.0),
}


def quality(args: argparse.Namespace, searches: dict[str, Factory]) -> None:
    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)
    print(f"regret after {args.budget} trials (best found - minimum), over seeds "
          f"0..{args.seeds - 1}: median / geometric mean; s = seconds per search run")
    print(f"{'function':22s}{'method':15s}{'median':>11s}{'geo mean':>11s}{'s':>7s}")
    for fname, (space, f, minimum) in FUNCTIONS.items():
        for name, make in searches.items():
            regrets, began = [], time.perf_counter()
            for seed in range(args.seeds):
                search, best = make(space, seed, args.budget), math.inf
                while (config := search.suggest()) is not None:
                    value = f(config)
                    best = min(best, value)
                    search.observe(config, TrialOutcome(TrialStatus.COMPLETED, value))
                regrets.append(max(best - minimum, 1e-12))
            geo = math.exp(statistics.fmean(math.log(r) for r in regrets))
            print(f"{fname:22s}{name:15s}{statistics.median(regrets):11.2e}{geo:11.2e}"
                  f"{(time.perf_counter() - began) / args.seeds:7.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observed", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS/OpenMP threads")
    parser.add_argument("--methods", nargs="+",
                        help="only these searches (default: all); NAME:fast for one setting")
    parser.add_argument("--fast", action="store_true",
                        help="also the GP searches with their option fast = true")
    parser.add_argument("--quality", action="store_true",
                        help="regret on synthetic functions, GP searches default and fast")
    parser.add_argument("--budget", type=int, default=30, help="--quality: trials per search")
    parser.add_argument("--seeds", type=int, default=5, help="--quality: seeds per function")
    args = parser.parse_args(argv)
    names = sorted(n for n, m in methods.all_methods().items() if m.kind is MethodKind.BLACK_BOX)
    if args.quality:
        names = [n for n in names if n.endswith("-gp") or n == "random"]  # random: reference
    searches = {n: registered(n) for n in names if not args.methods or n in args.methods}
    if args.fast or args.quality:
        searches.update({n: f for n, f in fast().items() if not args.methods
                         or n in args.methods or n.split(":")[0] in args.methods})
    searches = dict(sorted(searches.items()))
    (quality if args.quality else timings)(args, searches)


if __name__ == "__main__":
    main()
