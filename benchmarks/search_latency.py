"""How long does each black-box search take per trial, next to the digits trial it schedules?

Run from the repository root:

    python benchmarks/search_latency.py [--observed 20 100] [--repeats 3] [--threads 1]

For every registered black-box search, on the digits task's space (lr log-uniform, wd
uniform), it observes configurations of its own choosing with a synthetic validation loss and,
once N have been observed, times one more `suggest()` and, separately, the `observe()` of its
result: a GP search may do its work in either (skopt refits its GP and picks its next point in
`observe`, Optuna's GPSampler in `suggest`). The timed trial then counts as observed, so one
search per seed covers every N. Each column is the median over --repeats searches seeded 0, 1,
...; the total is the median of each seed's suggest + observe, the time the searcher costs per
trial. That cost is not counted in time-to-target, which is training time only, so it should
stay small next to a trial.

In the same process it times whole digits trials, `bench.trial.run_trial` with lr 0.05, wd 1e-4,
seed 0 and the task's 20 epochs (data loading and evaluation included, on the device "auto"
picks): one before each search's measurements and one after the last, so machine noise reaches
both alike, and takes their median. Each total is printed as a percentage of that trial; the
target is below 5%, and the totals above it are marked. torch and the BLAS/OpenMP pools
(threadpoolctl) run --threads threads, after an untimed warm-up of every search and a 1-epoch
trial has loaded them. A measurement, not a test: it exits 0 either way.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from threadpoolctl import threadpool_limits

import methods
from bench import tasks
from bench.trial import resolve_device, run_trial
from methods.base import MethodKind, TrialOutcome, TrialStatus

TARGET = 0.05  # the most a searcher should cost per trial, as a share of a digits trial
TRIAL = {"task": "digits", "method": "random", "hparams": {"lr": 0.05, "wd": 1e-4}, "seed": 0,
         "epochs": tasks.DIGITS.epochs}
WARM_UP = 8  # suggest/observe rounds per search before the thread limits: past random starts


def loss(config: dict) -> float:
    return (math.log10(config["lr"]) + 1.3) ** 2 + ((config["wd"] - 5e-4) * 1e3) ** 2


def latencies(name: str, observed: list[int], seed: int) -> dict[int, tuple[float, float]]:
    """Seconds of (suggest, observe) for the trial after each N in `observed`, in one search."""
    method = methods.get(name)
    search = method.search(tasks.DIGITS.space, seed, max(observed) + 1, method.options_type())
    out = {}
    for n in range(max(observed) + 1):
        start = time.perf_counter()
        config = search.suggest()
        suggested = time.perf_counter()
        search.observe(config, TrialOutcome(TrialStatus.COMPLETED, loss(config)))
        if n in observed:
            out[n] = (suggested - start, time.perf_counter() - suggested)
    return out


def trial_seconds() -> float:
    start = time.perf_counter()
    run_trial(TRIAL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observed", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS/OpenMP threads")
    args = parser.parse_args(argv)
    observed = sorted(set(args.observed))
    names = sorted(n for n, m in methods.all_methods().items() if m.kind is MethodKind.BLACK_BOX)
    began = time.perf_counter()

    # Warm up before limiting threads: threadpoolctl only reaches libraries already loaded.
    for name in names:
        latencies(name, [WARM_UP - 1], seed=0)
    run_trial({**TRIAL, "epochs": 1})
    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)

    trials, rows = [], []
    for name in names:
        trials.append(trial_seconds())
        runs = [latencies(name, observed, seed) for seed in range(args.repeats)]
        for n in observed:
            s, o = zip(*(r[n] for r in runs), strict=True)
            total = statistics.median(a + b for a, b in zip(s, o, strict=True))
            rows.append((name, n, statistics.median(s), statistics.median(o), total))
    trials.append(trial_seconds())
    trial = statistics.median(trials)

    print(f"digits trial ({TRIAL['epochs']} epochs, device {resolve_device('auto')}, "
          f"threads={args.threads}): median {trial * 1e3:.0f} ms of {len(trials)} runs "
          f"(min {min(trials) * 1e3:.0f}, max {max(trials) * 1e3:.0f}); "
          f"{TARGET:.0%} of it = {TARGET * trial * 1e3:.0f} ms")
    print(f"ms per call after N observed trials, median of {args.repeats} seeds; "
          "total = suggest + observe, as % of the trial")
    print(f"{'method':12s}{'N':>5s}{'suggest':>10s}{'observe':>10s}{'total':>10s}{'% trial':>9s}")
    for name, n, s, o, total in rows:
        share = total / trial
        flag = f"  over {TARGET:.0%}" if share > TARGET else ""
        print(f"{name:12s}{n:5d}{s * 1e3:10.1f}{o * 1e3:10.1f}{total * 1e3:10.1f}"
              f"{share:9.1%}{flag}")
    print(f"({time.perf_counter() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
