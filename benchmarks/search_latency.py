"""How long does each black-box search take to propose the next configuration?

Run from the repository root:

    python benchmarks/search_latency.py [--observed 10 30] [--repeats 5]

For every registered black-box search, on the digits task's space (lr log-uniform, wd
uniform), it observes N configurations with a synthetic validation loss, then times
`suggest()` + `observe()` of one more trial (median of --repeats fresh searches, each seeded
differently). This is the time the searcher costs per trial, which a short trial must amortize;
it is not counted in time-to-target, which is training time only. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import methods
from bench import tasks
from methods.base import MethodKind, TrialOutcome, TrialStatus


def loss(config: dict) -> float:
    return (math.log10(config["lr"]) + 1.3) ** 2 + ((config["wd"] - 5e-4) * 1e3) ** 2


def latency(name: str, observed: int, seed: int) -> float:
    method = methods.get(name)
    search = method.search(tasks.DIGITS.space, seed, observed + 1, method.options_type())
    for _ in range(observed):
        config = search.suggest()
        search.observe(config, TrialOutcome(TrialStatus.COMPLETED, loss(config)))
    start = time.perf_counter()
    config = search.suggest()
    search.observe(config, TrialOutcome(TrialStatus.COMPLETED, loss(config)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observed", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    names = sorted(n for n, m in methods.all_methods().items() if m.kind is MethodKind.BLACK_BOX)
    print("ms per suggest + observe, after N observed trials (median of "
          f"{args.repeats} seeds)")
    print(f"{'method':12s}" + "".join(f"{'N=' + str(n):>10s}" for n in args.observed))
    for name in names:
        cells = [statistics.median(latency(name, n, seed) for seed in range(args.repeats))
                 for n in args.observed]
        print(f"{name:12s}" + "".join(f"{1e3 * c:10.1f}" for c in cells))


if __name__ == "__main__":
    main()
