"""How long the equal-compute analysis takes: `ohobench verdict` over a published study.

    python benchmarks/verdict_speed.py [RUN_DIR ...] [--repeats 3]

Prints the seconds of each part (loading the records in SGD-epochs, the replays and verdicts,
writing the tables and the figure), median and range over --repeats, with 10,000 replayed
searches per budget and 1,000 bootstrap resamples of 200 replayed searches per verdict; then
each replay's thread CPU time per search at each task's 1x and full budgets.
Target: the published MNIST pilot in under 30 s on 2 cores. A measurement: exit 0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import analysis, cli
from bench.analysis import verdict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = [str(ROOT / "results" / "published" / "pilot-mnist")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="*", default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    parts: dict[str, list[float]] = {"load": [], "analyse": [], "command (all of it)": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        df, _ = analysis.load_runs(args.run_dirs, unit="flops")
        parts["load"].append(time.perf_counter() - start)
        start = time.perf_counter()
        curves, verdicts = verdict.analyse(df)
        parts["analyse"].append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            assert cli.main(["verdict", *args.run_dirs, "--out", out]) == 0
            parts["command (all of it)"].append(time.perf_counter() - start)
    print(f"\n{len(verdicts)} verdicts, {len(curves)} equal-compute rows, "
          f"{verdict.Settings().searches:,} replayed searches per budget")
    for name, seconds in parts.items():
        print(f"{name:<22} median {statistics.median(seconds):6.2f} s  "
              f"range {min(seconds):.2f}-{max(seconds):.2f} s  (n = {len(seconds)})")
    print("target: the command under 30 s on 2 cores")
    per_search(df, curves)


def per_search(df, curves, searches: int = 2_000) -> None:
    """Thread CPU time (1 torch thread) per replayed search, per replay, at each task's 1x
    budgets and full budget."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    print("\nper replayed search (thread CPU time):")
    for task in sorted(curves["task"].unique()):
        pool = verdict.pool_of(df, task)
        budgets = sorted(set(curves.loc[(curves["task"] == task) & (curves["budget"].isin(
            ["1x", verdict.FULL])), "compute"]))
        orders = verdict.search_orders(len(pool), searches, np.random.default_rng(0))
        for name, replay in verdict.REPLAYS.items():
            cells = []
            for budget in budgets:
                start = time.thread_time()
                try:
                    replay(pool, budget, orders)
                except verdict.ConfigError:
                    cells.append(f"{budget:g}: pool too small")
                    continue
                cells.append(f"{budget:g}: {(time.thread_time() - start) / searches * 1e6:.1f} us")
            print(f"  {task} {name:<17} " + ", ".join(cells))


if __name__ == "__main__":
    main()
