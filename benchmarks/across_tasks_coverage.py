"""How often the IQM-over-tasks interval covers the truth (the verdict's "Over the tasks").

    python benchmarks/across_tasks_coverage.py [--samples N] [--resamples N] [--runs 10+10 ...]

Two tasks of different shapes (lognormal and normal scores), each weighing the same. Per case
(runs on task 1 + runs on task 2): draw that many runs, take `stats.pooled_iqm_interval`, and
count how often it holds the pooled IQM of the two distributions (from 10^6 draws each).
Prints the coverage with its 95% binomial half-width. A measurement: exit 0.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.analysis.stats import pooled_iqm, pooled_iqm_interval

TWO_TASKS = (lambda rng, n: rng.lognormal(0, 0.5, n), lambda rng, n: rng.normal(1, 0.2, n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--runs", nargs="+", default=["10+10", "15+30", "20+50", "10+50"])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    cases = [case.split("+") for case in args.runs]
    if not all(len(c) == 2 and all(n.isdigit() and int(n) > 0 for n in c) for c in cases):
        ap.error(f"--runs {' '.join(args.runs)}: each case is RUNS+RUNS, two positive integers")
    rng = np.random.default_rng(args.seed)
    truth = pooled_iqm([draw(rng, 1_000_000) for draw in TWO_TASKS])
    for case, runs in zip(args.runs, cases, strict=True):
        runs = [int(n) for n in runs]
        hits = 0
        for _ in range(args.samples):
            sample = [draw(rng, n) for draw, n in zip(TWO_TASKS, runs, strict=True)]
            lo, hi = pooled_iqm_interval(sample, rng, args.resamples)
            hits += lo <= truth <= hi
        p = hits / args.samples
        half = 1.96 * np.sqrt(p * (1 - p) / args.samples)
        print(f"{case} runs: coverage {p:.3f} ± {half:.3f} ({args.samples} samples, "
              f"{args.resamples} resamples; nominal 0.95)", flush=True)


if __name__ == "__main__":
    main()
