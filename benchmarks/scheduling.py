"""Whole-suite scheduling on a simulated 64-slot cluster (issue 15).

Ray is started with 64 logical CPUs (`ray.init(num_cpus=64)`), and trials sleep for known,
varied durations instead of training, so 64 slots mean something on a 2-core machine. The
suite goes through ohobench's own runner (bench.runner.fit: one Tuner, the multiplexing
searcher and per-search schedulers); only the trainable is replaced, by benchmarks/sleeper.py,
which imports neither torch nor bench, so a worker costs what Ray Tune's function trainable
costs (its trials' configs carry a plain namespace, not a TrialConfig: `plain_config`).

    python benchmarks/scheduling.py            # the suite, the old sequential behaviour, scale
    python benchmarks/scheduling.py --part suite --base 15 --trials 20 --families 3 --reps 2

Parts:
- suite: shaped like suites/baselines.toml plus online methods: optuna-tpe, optuna-gp,
  skopt-gp (model-based, cap 4; the GP searches with `fast = true`), random under fifo and under
  asha, x 5
  families x 3 repetitions, 30 trials each; hd, oho, rtho, t1t2 x 10 initializations. Prints
  makespan, slot utilization (trial-seconds / (slots x makespan)) and the ratio of makespan to
  the lower bound max(trial-seconds / slots, the longest search's critical path given its cap),
  the trial start rate Ray achieved against the one the slots need, and the worker processes'
  max RSS (each trial records its worker's, and whether torch or bench is imported there).
- before: the old behaviour, one Tuner per experiment, one after another, against the new one,
  on a reduced suite (1 family, 1 repetition, 10 trials, 2 initializations; the full one would
  take about an hour sequentially).
- scale: >= 5,000 short trials; the driver's CPU seconds per handled result and its peak
  memory (max RSS), at 10% and at 100% of the results. With `--compare-registry-cache N`,
  instead N runs of `--scale-trials` trials with method and task lookups cached
  (bench.registry.declared) and N with every lookup scanning the entry points again, as before
  they were cached; interleaved; driver CPU per result over each whole run (suite, plan, fit).

Trials (benchmarks/sleeper.py): black-box epochs last base x U(0.5, 1.5) seconds (from the
trial's seed), online ones 3x as long (their steps cost more); 4 epochs; the validation loss
falls with epochs and depends on the hyperparameters, so ASHA has something to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# sleeper: from this script's directory, which Ray also puts on its workers' sys.path: they
# import the trainable from there, by reference.
import ray  # noqa: E402
import sleeper  # noqa: E402
from ray.tune import Callback  # noqa: E402

from bench import registry, runner, suite  # noqa: E402
from bench.experiment import plan  # noqa: E402
from bench.ray_adapter import tune_result  # noqa: E402
from bench.runner import tune_config  # noqa: E402
from bench.vocabulary import ONLINE as ONLINE_OPTIMIZER  # noqa: E402

SPANS_OUT: str | None = None  # --spans: each run's spans are appended there, a JSON line
SLOTS = 64  # logical CPUs by default (--slots), one per trial
BLACK_BOX = ["optuna-tpe", "optuna-gp", "skopt-gp", "random"]  # under fifo; random also asha
ONLINE = ["hd", "oho", "rtho", "t1t2"]
FAMILIES = ["fixed", "adam", "step", "exp", "cosine"]
FAST = {"optuna-gp": {"fast": True}, "skopt-gp": {"fast": True}}


def plain_config(experiment, index: int, hparams: dict) -> dict:
    """runner.tune_config with the TrialConfig as a SimpleNamespace of its fields: the driver
    reads the same attributes, and a worker unpickles it without importing bench."""
    config = tune_config(experiment, index, hparams)
    spec = config["spec"]
    return {**config, "spec": SimpleNamespace(
        **{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})}


def check_sleeper() -> None:
    """The sleeper's results are the harness's: bench.ray_adapter.tune_result's."""
    record = {"val_loss": 0.5, "epoch": 2, "diverged": False, "trial_start": 1.0}
    for replayed in (False, True):
        assert sleeper.tune_result(record, replayed) == tune_result(record, replayed)
    assert sleeper.ONLINE == ONLINE_OPTIMIZER


def experiments(reps: int, trials: int, inits: int, families: list[str], cheap: bool = False):
    """The suite's experiments. `cheap`: model-based searches propose like random search (each
    keeps its cap of 4), so that the driver's time is the scheduler's, not the GP fits'."""
    common = {"tasks": ["digits"], "epochs": 4, "seed": 0}
    black = suite.build({**common, "methods": BLACK_BOX, "optimizers": families,
                         "repetitions": reps, "trials": trials, "options": FAST})
    asha = suite.build({**common, "methods": ["random"], "schedulers": ["asha"],
                        "optimizers": families, "repetitions": reps, "trials": trials})
    online = suite.build({**common, "methods": ONLINE, "repetitions": inits})
    # Workers get no method options (their classes would import torch in every worker).
    exps = [dataclasses.replace(e, trial_base={**e.trial_base, "options": None})
            for e in plan(black) + plan(asha) + plan(online)]
    return black, [dataclasses.replace(e, method="random") if cheap and e.model_based else e
                   for e in exps]


class Probe(Callback):
    """Driver CPU seconds per result and peak RSS around 10% and 100% of `expected` results."""

    def __init__(self, expected: int):
        self.expected, self.n, self.marks = expected, 0, {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.n += 1
        for name, at in (("5%", 0.05), ("10%", 0.10), ("95%", 0.95)):
            if self.n == int(at * self.expected):
                self.marks[name] = self.mark()

    def on_experiment_end(self, trials, **info):
        self.marks["100%"] = self.mark()

    def mark(self):
        return (self.n, time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class ProfiledProbe(Probe):
    """Also runs cProfile over the driver's main thread for the results 5-10% and 90-95%: the
    CPU per result in each window (profiler included), ohobench's own share, and what grew."""

    WINDOWS = (("early", 0.05, 0.10), ("late", 0.90, 0.95))

    def __init__(self, expected: int):
        super().__init__(expected)
        self.profiles, self.started = {}, None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        import cProfile

        super().on_trial_result(iteration, trials, trial, result, **info)
        for name, begin, end in self.WINDOWS:
            if self.n == int(begin * self.expected):
                self.started = (cProfile.Profile(), self.n, time.process_time())
                self.started[0].enable()
            elif self.n == int(end * self.expected) and self.started:
                profile, n, cpu = self.started
                profile.disable()
                self.profiles[name] = (profile, self.n - n, time.process_time() - cpu)
                self.started = None

    def print(self) -> None:
        import pstats

        seconds = {}
        for name, (profile, n, cpu) in self.profiles.items():
            stats = pstats.Stats(profile).stats  # (file, line, name) -> (.., .., tottime, cumtime)
            own = sum(v[2] for k, v in stats.items() if "/bench/" in k[0]) / n * 1e3
            print(f"profile {name}: {cpu / n * 1e3:.2f} ms driver CPU per result, ohobench's own "
                  f"functions {own:.2f} ms", flush=True)
            seconds[name] = {k: v[3] / n for k, v in stats.items()}
        if len(seconds) == 2:
            early, late = seconds["early"], seconds["late"]
            grew = sorted(late, key=lambda k: early.get(k, 0.0) - late[k])[:8]
            print("grew most (cumulative ms per result, early -> late):")
            for k in grew:
                print(f"  {early.get(k, 0.0) * 1e3:6.2f} -> {late[k] * 1e3:6.2f}  "
                      f"{k[2]} ({k[0].split('site-packages/')[-1]}:{k[1]})")


def run_suite(chosen, exps, base: float, tmp: Path, sequential: bool = False,
              callbacks: tuple = ()) -> tuple[float, list[dict], float, float]:
    """(makespan, trial spans, start time, the driver's CPU seconds) of running `exps`, all at
    once or one Tuner after another. Each span also has its worker's facts from its last record
    (sleeper.worker_facts)."""
    from bench import journal

    run_dir = Path(tempfile.mkdtemp(dir=tmp))
    (run_dir / "journal").mkdir()
    trainable = functools.partial(sleeper.sleepy, base=base)
    began, cpu = time.time(), time.process_time()
    for group in ([[e] for e in exps] if sequential else [exps]):
        storage = str(run_dir / "ray" / (group[0].name if sequential else "all"))
        runner.fit(chosen, group, run_dir, storage, "quiet", False, trainable, callbacks,
                   make_config=plain_config)
    makespan, cpu = time.time() - began, time.process_time() - cpu
    spans = []
    for e in exps:
        kept = journal.read(journal.path_of(run_dir, e.name))
        for i, t in sorted(kept.summaries.items()):
            last = (kept.records.get(i) or [{}])[-1]
            spans.append({"experiment": e.name, "cap": e.cap, "start": t["start"],
                          "end": t["end"], **{k: v for k, v in last.items()
                                              if k.startswith("worker_")}})
    if SPANS_OUT:
        with open(SPANS_OUT, "a") as fh:
            fh.write(json.dumps({"makespan": makespan, "began": began, "driver_cpu": cpu,
                                 "spans": spans}) + "\n")
    return makespan, spans, began, cpu


def lower_bound(spans: list[dict], slots: int) -> tuple[float, float, float]:
    """(trial-seconds, trial-seconds / slots, longest critical path): a search with cap c needs
    at least max(its longest trial, its trial-seconds / c)."""
    busy = sum(s["end"] - s["start"] for s in spans)
    by_exp: dict[str, list[dict]] = {}
    for s in spans:
        by_exp.setdefault(s["experiment"], []).append(s)
    path = max(max(max(d := [t["end"] - t["start"] for t in ts]), sum(d) / (ts[0]["cap"] or 1e9))
               for ts in by_exp.values())
    return busy, busy / slots, path


def ramp(spans: list[dict], began: float, slots: int) -> tuple[float, float]:
    """Seconds from the start until the first trial started, and until 90% of the slots were
    first busy at once (worker processes start on the machine's 2 real cores)."""
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running, full = 0, math.nan
    for t, step in events:
        running += step
        if running >= 0.9 * slots:
            full = t - began
            break
    return events[0][0] - began, full


def start_rate(spans: list[dict], slots: int) -> tuple[float, float]:
    """(trial starts per second from the first start to the last, the rate that keeps `slots`
    busy with trials as long as these: slots / mean trial seconds)."""
    starts = sorted(s["start"] for s in spans)
    mean = statistics.fmean(s["end"] - s["start"] for s in spans)
    return (len(starts) - 1) / max(starts[-1] - starts[0], 1e-9), slots / mean


def busy_in(spans: list[dict], a: float, b: float) -> float:
    """Trial-seconds within [a, b]."""
    return sum(max(0.0, min(s["end"], b) - max(s["start"], a)) for s in spans)


def idle_phases(spans: list[dict], began: float, makespan: float, slots: int) -> str:
    """Where makespan - trial-seconds / slots went: idle slot-seconds / slots before the first
    trial started, while slots filled up (to 90% busy), from then to the last trial start, and
    after it (the last trials ending)."""
    starts = sorted(s["start"] for s in spans)
    full = began + ramp(spans, began, slots)[1]
    full = starts[-1] if math.isnan(full) else min(full, starts[-1])
    edges = [("before the first start", began, starts[0]), ("filling up", starts[0], full),
             ("steady", full, starts[-1]), ("after the last start", starts[-1], began + makespan)]
    return ", ".join(f"{name} {(slots * (b - a) - busy_in(spans, a, b)) / slots:.1f} s "
                     f"(of {b - a:.0f} s)" for name, a, b in edges)


def workers(spans: list[dict], began: float) -> str:
    """The worker processes that ran the trials: how many, when they first ran a trial, their
    max RSS (each one's largest), and in how many torch or bench was imported."""
    rss: dict[int, int] = {}
    first: dict[int, float] = {}
    torch, ours = set(), set()
    for s in spans:
        if "worker_pid" not in s:
            continue
        pid = s["worker_pid"]
        rss[pid] = max(rss.get(pid, 0), s["worker_maxrss_kib"])
        first[pid] = min(first.get(pid, math.inf), s["start"] - began)
        if s["worker_torch"]:
            torch.add(pid)
        if s["worker_bench"]:
            ours.add(pid)
    if not rss:
        return "no worker facts recorded"
    mib = sorted(v / 1024 for v in rss.values())
    up = sorted(first.values())
    at = ", ".join(f"{n} at {up[n - 1]:.0f} s" for n in (1, len(up) // 2, len(up)))
    return (f"{len(rss)} worker processes (first trial of the {at}), max RSS median "
            f"{statistics.median(mib):.0f} MiB (range {mib[0]:.0f}-{mib[-1]:.0f}), torch "
            f"imported in {len(torch)}, bench or methods in {len(ours)}")


def report(name: str, makespan: float, spans: list[dict], began: float,
           driver_cpu: float = math.nan) -> float:
    import ray

    slots = int(ray.cluster_resources()["CPU"])
    busy, per_slot, path = lower_bound(spans, slots)
    bound = max(per_slot, path)
    first, full = ramp(spans, began, slots)
    rate, needed = start_rate(spans, slots)
    print(f"{name}: {len(spans)} trials, makespan {makespan:.1f} s, trial-seconds {busy:.0f}, "
          f"slot utilization {busy / (slots * makespan):.1%}, lower bound {bound:.1f} s "
          f"(trial-seconds / {slots} = {per_slot:.1f} s, critical path {path:.1f} s), "
          f"makespan / bound {makespan / bound:.3f}; first trial started at {first:.1f} s, "
          f"90% of slots busy at {full:.1f} s; {rate:.2f} trial starts per second from the "
          f"first to the last (trials of mean "
          f"{statistics.fmean(s['end'] - s['start'] for s in spans):.1f} s need {needed:.2f} "
          f"on {slots} slots); idle slot-seconds / slots: "
          f"{idle_phases(spans, began, makespan, slots)}; driver CPU {driver_cpu:.0f} s; "
          f"{workers(spans, began)}", flush=True)
    return makespan


def part_suite(tmp: Path, base: float, args) -> None:
    families = FAMILIES[:args.families]
    chosen, exps = experiments(args.reps, args.trials, args.inits, families, args.cheap)
    report(f"suite ({(len(BLACK_BOX) + 1) * len(families) * args.reps} searches x {args.trials} "
           f"trials + {len(ONLINE) * args.inits} online{', cheap' if args.cheap else ''})",
           *run_suite(chosen, exps, base, tmp))


def part_reduced(tmp: Path, base: float) -> None:
    chosen, exps = experiments(reps=1, trials=10, inits=2, families=["fixed"])
    report("the whole suite at once (reduced suite)", *run_suite(chosen, exps, base, tmp))


def part_before(tmp: Path, base: float) -> None:
    chosen, exps = experiments(reps=1, trials=10, inits=2, families=["fixed"])
    old = report("before, one Tuner per experiment (reduced suite)",
                 *run_suite(chosen, exps, base, tmp, sequential=True))
    new = report("after, the whole suite at once (reduced suite)",
                 *run_suite(chosen, exps, base, tmp))
    print(f"before / after makespan: {old / new:.1f}x", flush=True)


def scale_suite(trials: int):
    """100 searches (random under fifo and asha, 2 families, 25 repetitions) of trials // 100
    one-epoch trials each, and their experiments."""
    chosen = suite.build({"tasks": ["digits"], "methods": ["random"], "epochs": 1,
                          "schedulers": ["fifo", "asha"],
                          "optimizers": ["fixed", "adam"], "repetitions": 25,
                          "trials": max(trials // 100, 1)})
    return chosen, [dataclasses.replace(e, trial_base={**e.trial_base, "options": None})
                    for e in plan(chosen)]


def part_scale(tmp: Path, base: float, trials: int, profile: bool = False) -> None:
    chosen, exps = scale_suite(trials)
    total = sum(e.budget for e in exps)
    probe = (ProfiledProbe if profile else Probe)(total)  # one result per trial (1 epoch)
    began = time.time()
    run_suite(chosen, exps, base, tmp, callbacks=(probe,))
    m = probe.marks

    def per_result(a, b):
        return (m[b][1] - m[a][1]) / max(m[b][0] - m[a][0], 1) * 1e3

    print(f"scale: {total} trials ({len(exps)} searches), {probe.n} results in "
          f"{time.time() - began:.0f} s; driver CPU per result {per_result('5%', '10%'):.2f} ms "
          f"at 10%, {per_result('95%', '100%'):.2f} ms at 100%; peak RSS "
          f"{m['10%'][2] / 1024:.0f} MiB at 10%, {m['100%'][2] / 1024:.0f} MiB at 100%",
          flush=True)
    if profile:
        probe.print()


@contextlib.contextmanager
def registry_scans(cached: bool):
    """Counts the lookups' entry-point scans (registry.declared) within, and the main thread's
    CPU seconds in them; uncached, every lookup scans again, as before lookups were cached
    (d106846). Yields [lookups, scans, CPU seconds]."""
    cached_declared, counts = registry.declared, [0, 0, 0.0]

    def counting(group: str, path: tuple[str, ...]):
        began = time.thread_time()
        if not cached:
            cached_declared.cache_clear()
        misses = cached_declared.cache_info().misses
        found = cached_declared(group, path)
        counts[0] += 1
        counts[1] += cached_declared.cache_info().misses - misses
        counts[2] += time.thread_time() - began
        return found

    registry.declared = counting
    try:
        yield counts
    finally:
        registry.declared = cached_declared


def part_registry_cache(tmp: Path, base: float, trials: int, rounds: int) -> None:
    """A `trials`-trial scale run's driver CPU per result (suite, plan and fit), with method and
    task lookups cached and with every lookup scanning the entry points again; interleaved,
    cached first in odd rounds, uncached first in even ones."""
    per: dict[bool, list[float]] = {True: [], False: []}
    scans: dict[bool, list[float]] = {True: [], False: []}
    for i in range(rounds):
        for cached in ((True, False) if i % 2 == 0 else (False, True)):
            probe = Probe(1)
            with registry_scans(cached) as counts:
                cpu, wall = time.process_time(), time.time()
                chosen, exps = scale_suite(trials)
                run_suite(chosen, exps, base, tmp, callbacks=(probe,))
                cpu, wall = time.process_time() - cpu, time.time() - wall
            per[cached].append(cpu / probe.n * 1e3)
            scans[cached].append(counts[2] / probe.n * 1e3)
            print(f"round {i + 1}, lookups {'cached' if cached else 'uncached'}: {probe.n} "
                  f"results in {wall:.0f} s, driver CPU {cpu:.1f} s = {per[cached][-1]:.2f} ms "
                  f"per result; {counts[0]} lookups, {counts[1]} entry-point scans, "
                  f"{counts[2] * 1e3:.0f} ms in them = {scans[cached][-1]:.3f} ms per result",
                  flush=True)

    def text(xs: list[float], digits: int = 2) -> str:
        return (f"median {statistics.median(xs):.{digits}f} ms (range {min(xs):.{digits}f}-"
                f"{max(xs):.{digits}f})")

    before, after = statistics.median(per[False]), statistics.median(per[True])
    print(f"registry cache, {trials} trials x {rounds} rounds: driver CPU per result uncached "
          f"(before) {text(per[False])}, cached (after) {text(per[True])}; before / after "
          f"{before / after:.3f}, {before - after:.2f} ms per result. Within the lookups "
          f"themselves: uncached {text(scans[False], 3)}, cached {text(scans[True], 3)} "
          f"per result", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["suite", "before", "scale", "reduced"], action="append")
    parser.add_argument("--base", type=float, default=1.5, help="seconds per black-box epoch")
    parser.add_argument("--scale-base", type=float, default=0.05,
                        help="seconds per epoch in the scale part")
    parser.add_argument("--scale-trials", type=int, default=5000,
                        help="trials in the scale part (100 searches)")
    parser.add_argument("--compare-registry-cache", type=int, default=0, metavar="ROUNDS",
                        help="scale: instead, ROUNDS runs with method and task lookups cached "
                        "and ROUNDS scanning the entry points on every lookup, interleaved")
    parser.add_argument("--profile", action="store_true", help="scale: cProfile the driver over "
                        "the results 5-10%% and 90-95%% (the 10%% figure then includes it)")
    parser.add_argument("--trials", type=int, default=30, help="trials per search (suite)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per search (suite)")
    parser.add_argument("--families", type=int, default=5, help="optimizer families (suite)")
    parser.add_argument("--inits", type=int, default=10, help="online initializations (suite)")
    parser.add_argument("--cheap", action="store_true", help="model-based searches propose "
                        "like random search (caps kept): the driver's time is the scheduler's")
    parser.add_argument("--slots", type=int, default=SLOTS, help="logical CPUs")
    parser.add_argument("--spans", help="append each run's trial spans to this file (JSON lines)")
    args = parser.parse_args()
    global SPANS_OUT
    SPANS_OUT = args.spans
    check_sleeper()
    # 64 logical CPUs on 2 real cores: Ray's prestarting of idle workers for queued actors
    # (then killed as surplus) would keep the 2 cores busy starting processes.
    ray.init(address="local", num_cpus=args.slots, include_dashboard=False, log_to_driver=False,
             _system_config={"enable_worker_prestart": False})
    tmp = Path(tempfile.mkdtemp(prefix="ohobench-scheduling-"))
    try:
        for part in args.part or ["suite", "before", "scale"]:
            {"suite": lambda: part_suite(tmp, args.base, args),
             "before": lambda: part_before(tmp, args.base),
             "reduced": lambda: part_reduced(tmp, args.base),
             "scale": lambda: part_registry_cache(
                 tmp, args.scale_base, args.scale_trials, args.compare_registry_cache)
             if args.compare_registry_cache else part_scale(
                 tmp, args.scale_base, args.scale_trials, args.profile)}[part]()
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
