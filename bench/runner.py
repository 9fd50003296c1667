"""`ohobench run`: every (task, method, repetition) of a suite as one Ray Tune experiment.

A black-box method's repetition is an independent search of `trials` trials; an online
method's repetition is one trial from one initialization, drawn from the same ranges. Online
methods share their initializations (and model seeds) per repetition, so they are compared
paired.
"""

from __future__ import annotations

import json
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
from bench import journal, results
from bench.errors import ConfigError
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
        try:
            ray.init(address=suite.address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise ConfigError(
                f"--address {suite.address!r}: cannot connect ({str(exc).splitlines()[0]}). "
                "A cluster started with `ray start` uses token authentication: set "
                "RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token) here "
                "as on its nodes") from None
        return False
    # address="local": a new instance even when a cluster runs on this machine (--address
    # is how to use one).
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    return True


def run(suite: Suite, progress: Callable[[str], None] = print,
        resume: Path | None = None) -> Path:
    """Run every experiment of `suite` into a new run directory; with `resume`, continue the
    interrupted run in that directory: finished experiments are kept, an unfinished one is
    restored from Ray Tune's snapshot (its finished trials are kept, not retrained)."""
    check_address(suite.address)
    if suite.download:  # once, before Ray starts, not in every trial at once
        from bench import tasks
        from bench.datasets import DataSource

        tasks.fetch(suite.tasks, DataSource.resolve(suite.data_dir, True), progress)
    import ray

    started_ray = start_ray(suite)
    try:
        check_storage(suite)
        if resume is None:
            run_dir = run_dir_for(suite)
            run_dir.mkdir(parents=True)
            info = {"suite": suite.as_dict(), "environment": results.environment(),
                    "started": time.time(), "finished": None, "experiments": [], "resumed": []}
        else:
            run_dir, info = resume, json.loads((resume / results.RUN_JSON).read_text())
            info.setdefault("resumed", []).append(time.time())
        info["storage"] = storage_path(suite, run_dir)
        results.write_json(info, run_dir / results.RUN_JSON)
        progress(f"ohobench: run directory {run_dir}")
        finished = {e["name"] for e in info["experiments"]}
        rows = [r for e in info["experiments"]
                for r in experiment_records(run_dir, e["name"])[0]]
        for task, method, optimizer, rep in experiments(suite):
            if experiment_name(task, method, optimizer, rep) in finished:
                continue
            exp, records = run_experiment(suite, task, method, optimizer, rep, run_dir,
                                          progress, info["storage"], resume is not None)
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


def storage_path(suite: Suite, run_dir: Path) -> str:
    """Where Ray Tune keeps experiment snapshots and trial files: RUN_DIR/ray, or the run's
    folder under `suite.storage` (a path every node reaches, or a URI such as s3://...)."""
    if suite.storage is None:
        return str(run_dir / "ray")
    return f"{suite.storage.rstrip('/')}/{run_dir.name}"


def check_storage(suite: Suite) -> None:
    """A cluster of several nodes needs storage that all of them reach."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and suite.storage is None:
        raise ConfigError(f"this Ray cluster has {len(nodes)} nodes: give --storage, a path "
                          "every node can reach (e.g. on NFS) or a URI such as "
                          "s3://bucket/ohobench, for Ray Tune's snapshots and trial files")


def experiment_name(task: str, method: str, optimizer: str | None, repetition: int) -> str:
    return "__".join([task, method, *([optimizer] if optimizer else []), f"rep{repetition}"])


def journal_path(run_dir: Path, name: str) -> Path:
    return run_dir / "journal" / f"{name}.jsonl"


def experiment_records(run_dir: Path, name: str) -> tuple[list[dict], journal.Journal]:
    """(records of the trials of experiment `name` that ended, its journal); records carry the
    experiment's start time."""
    kept = journal.read(journal_path(run_dir, name))
    records = kept.ended_records()
    for record in records:
        record["experiment_start"] = kept.start
    return records, kept


def experiments(suite: Suite) -> list[tuple[str, str, str | None, int]]:
    """(task, method, optimizer family, repetition) in run order; online methods have no
    family (None): they train with their own rule."""
    return [(task, method, optimizer, rep) for task in suite.tasks for method in suite.methods
            for optimizer in suite.families_for(method) for rep in range(suite.repetitions)]


def run_experiment(suite: Suite, task: str, method_name: str, optimizer: str | None,
                   repetition: int, run_dir: Path, progress: Callable[[str], None],
                   storage: str | None = None, resume: bool = False
                   ) -> tuple[dict, list[dict]]:
    """One Ray Tune experiment. With `resume`, an experiment that Ray Tune can restore from
    `storage` continues where it stopped; the trials its journal shows ended are replayed."""
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
                "options": suite.options_for(method_name, task), "repetition": repetition,
                "trial": index, **suite.trial_keys()}

    what = method_name if is_online else f"{method_name} · {optimizer}"
    label = f"{task} · {what} · rep {repetition + 1}/{suite.repetitions}"
    name = experiment_name(task, method_name, optimizer, repetition)
    journal_file = journal_path(run_dir, name)
    journal_file.parent.mkdir(parents=True, exist_ok=True)
    kept = journal.read(journal_file)
    start = kept.start  # a resumed experiment's wall-clock spans the time it was down
    if start is None:
        start = time.time()
        journal.append(journal_file, {"event": "start", "time": start}, durable=True)
    collector = RecordCollector(progress, label, budget, journal_file)
    resources = {"cpu": suite.cpus_per_trial, "gpu": suite.gpus_per_trial}
    storage = storage or str(run_dir / "ray")
    stopping = method.early_stopping(options)
    scheduler = None if stopping is None else ASHAScheduler(
        time_attr="training_iteration", metric="val_loss", mode="min",
        max_t=suite.epochs_for(task), grace_period=stopping.grace_period,
        reduction_factor=stopping.reduction_factor)
    searcher, concurrent = limit_concurrency(SearchAdapter(search, make_config, journal_file),
                                             method, suite.max_concurrent)
    trainable = tune.with_resources(tune.with_parameters(ray_trial, replay=kept.replay()),
                                    resources)
    path = f"{storage.rstrip('/')}/{name}"
    if resume and tune.Tuner.can_restore(path):
        progress(f"  [{label}] resuming: {len(kept.summaries)} trial(s) had ended")
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=budget, reuse_actors=True,
            max_concurrent_trials=concurrent,
            time_budget_s=None if is_online else suite.budget_seconds),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=0, callbacks=[collector],
            failure_config=tune.FailureConfig(max_failures=suite.max_failures)))
    tuner.fit()
    end = time.time()
    records, ended = experiment_records(run_dir, name)
    trials = ended.trials()
    return {"task": task, "method": method_name, "optimizer": optimizer or ONLINE,
            "repetition": repetition, "name": name, "resumed": kept.start is not None,
            "start": start, "end": end, "wall_seconds": end - start,
            "scheduling_overhead_per_trial": overhead_per_trial(start, end, trials),
            "searcher_seconds_per_trial": (ended.searcher_seconds / len(trials) if trials
                                           else math.nan),
            "trials": trials}, records


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
