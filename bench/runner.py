"""`ohobench run`: every (task, method, repetition) of a suite as one Ray Tune experiment.

A black-box method's repetition is an independent search of `trials` trials; an online
method's repetition is one trial from one initialization, drawn from the same ranges. Online
methods share their initializations (and model seeds) per repetition, so they are compared
paired.
"""

from __future__ import annotations

import logging
import math
import os
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

import methods as method_registry
from bench import results
from bench.suite import Suite, check_address
from bench.trial import ONLINE
from methods.base import MethodKind, parse_options

# Trials a model-based search runs at once when the suite sets no limit (max_concurrent = 0):
# each proposal then sees all results but those of at most 3 running trials.
MODEL_BASED_CONCURRENT = 4


def derive_seed(*parts: int | str) -> int:
    """A stable 31-bit seed from the suite seed and names (no dependence on PYTHONHASHSEED)."""
    ints = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0] >> 1)


def run_dir_for(suite: Suite) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(suite.out) / f"{stamp}-{suite.name}"
    n = 1
    while path.exists():
        n += 1
        path = Path(suite.out) / f"{stamp}-{suite.name}-{n}"
    return path.resolve()


def start_ray(suite: Suite) -> bool:
    """Connect to `suite.address`, or start a local instance sized to this machine.
    Returns whether we started it (and so must stop it)."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Let Tune queue as many trials as can run at once (it queues one for a search algorithm).
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(os.cpu_count() or 1))
    if ray.is_initialized():
        return False
    if suite.address:
        ray.init(address=suite.address, logging_level=logging.WARNING, log_to_driver=False)
        return False
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=True)
    return True


def run(suite: Suite, progress: Callable[[str], None] = print) -> Path:
    check_address(suite.address)
    import ray

    run_dir = run_dir_for(suite)
    run_dir.mkdir(parents=True)
    info = {"suite": suite.as_dict(), "environment": results.environment(),
            "started": time.time(), "finished": None, "experiments": []}
    results.write_json(info, run_dir / results.RUN_JSON)
    progress(f"ohobench: run directory {run_dir}")
    started_ray = start_ray(suite)
    rows: list[dict] = []
    try:
        for task, method, optimizer, rep in experiments(suite):
            exp, records = run_experiment(suite, task, method, optimizer, rep, run_dir, progress)
            rows += records
            info["experiments"].append(exp)
            results.write_table(results.table(rows), run_dir)
            results.write_json(info, run_dir / results.RUN_JSON)
        info["finished"] = time.time()
        results.write_json(info, run_dir / results.RUN_JSON)
    finally:
        if started_ray:
            ray.shutdown()
    return run_dir


def experiments(suite: Suite) -> list[tuple[str, str, str | None, int]]:
    """(task, method, optimizer family, repetition) in run order; online methods have no
    family (None): they train with their own rule."""
    return [(task, method, optimizer, rep) for task in suite.tasks for method in suite.methods
            for optimizer in suite.families_for(method) for rep in range(suite.repetitions)]


def run_experiment(suite: Suite, task: str, method_name: str, optimizer: str | None,
                   repetition: int, run_dir: Path, progress: Callable[[str], None]
                   ) -> tuple[dict, list[dict]]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from bench.ray_adapter import RecordCollector, SearchAdapter
    from bench.trial import ray_trial

    method = method_registry.get(method_name)
    options, _ = parse_options(method.options_type, suite.options.get(method_name, {}),
                               method_name)
    is_online = method.kind is MethodKind.ONLINE
    budget = 1 if is_online else suite.trials
    # Online methods share initializations per repetition; each search is independent.
    search_seed = (derive_seed(suite.seed, task, "init", repetition) if is_online else
                   derive_seed(suite.seed, task, method_name, optimizer, repetition))
    search = method.search(suite.space_for(task, optimizer), search_seed, budget, options)
    family = {} if is_online else {"optimizer": optimizer}

    def make_config(index: int, hparams: dict) -> dict:
        return {"task": task, "method": method_name, **family, "hparams": hparams,
                "seed": derive_seed(suite.seed, task, "model", repetition, index),
                "epochs": suite.epochs_for(task), "data_seed": suite.seed,
                "device": suite.device, "batch_size": suite.batch_size,
                "val_batch_size": suite.val_batch_size,
                "options": suite.options.get(method_name, {}), "repetition": repetition,
                "trial": index}

    what = method_name if is_online else f"{method_name} · {optimizer}"
    label = f"{task} · {what} · rep {repetition + 1}/{suite.repetitions}"
    collector = RecordCollector(progress, label, budget)
    resources = {"cpu": suite.cpus_per_trial, "gpu": suite.gpus_per_trial}
    name = "__".join([task, method_name, *family.values(), f"rep{repetition}"])
    stopping = method.early_stopping(options)
    scheduler = None if stopping is None else ASHAScheduler(
        time_attr="training_iteration", metric="val_loss", mode="min",
        max_t=suite.epochs_for(task), grace_period=stopping.grace_period,
        reduction_factor=stopping.reduction_factor)
    searcher, concurrent = limit_concurrency(SearchAdapter(search, make_config), method,
                                             suite.max_concurrent)
    tuner = tune.Tuner(
        tune.with_resources(ray_trial, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=budget, reuse_actors=True,
            max_concurrent_trials=concurrent,
            time_budget_s=None if is_online else suite.budget_seconds),
        run_config=tune.RunConfig(
            name=name, storage_path=str(run_dir / "ray"), verbose=0, callbacks=[collector],
            failure_config=tune.FailureConfig(max_failures=suite.max_failures)),
    )
    start = time.time()
    tuner.fit()
    end = time.time()
    for record in collector.records:
        record["experiment_start"] = start
    trials = sorted(collector.trials.values(), key=lambda t: t["trial"])
    return {"task": task, "method": method_name, "optimizer": optimizer or ONLINE,
            "repetition": repetition, "name": name,
            "start": start, "end": end, "wall_seconds": end - start,
            "scheduling_overhead_per_trial": overhead_per_trial(start, end, trials),
            "trials": trials}, collector.records


def limit_concurrency(searcher, method, max_concurrent: int):
    """(search algorithm, Tuner's max_concurrent_trials). A model-based search goes through
    Ray's ConcurrencyLimiter, capped at `max_concurrent` or MODEL_BASED_CONCURRENT when that is
    0; other searches are capped by the Tuner, at `max_concurrent` (0: none)."""
    from ray.tune.search import ConcurrencyLimiter

    if not method.model_based:
        return searcher, max_concurrent or None
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent or MODEL_BASED_CONCURRENT
                              ), None


def overhead_per_trial(start: float, end: float, trials: list[dict]) -> float:
    """Experiment wall-clock not covered by any trial's own run time, per trial: what Ray's
    scheduling, process start-up and result handling cost on top of the trials."""
    spans = sorted((t["start"], t["end"]) for t in trials if t["start"] and t["end"])
    if not trials:
        return math.nan
    busy, cur_start, cur_end = 0.0, None, None
    for s, e in spans:
        if cur_end is None or s > cur_end:
            busy += (cur_end - cur_start) if cur_end is not None else 0.0
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    busy += (cur_end - cur_start) if cur_end is not None else 0.0
    return max(end - start - busy, 0.0) / len(trials)
