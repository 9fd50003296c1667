"""`ohobench run`: a whole suite as one Ray Tune experiment. Every (task, method, family,
repetition) search of the suite (bench/experiment.py) is in flight at once, within its own cap,
budget and scheduler (bench/multiplex.py), so trials of any experiment start as soon as
resources free up, and Ray workers are reused across experiments.

A black-box method's repetition is an independent search of `trials` trials; an online
method's repetition is one trial from one initialization, drawn from the same ranges. Online
methods share their initializations (and model seeds) per repetition, so they are compared
paired.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import ray
from ray import tune

from bench import accounting, checkpoints, compute, journal, probes, ray_internals, results, tasks
from bench.datasets import DataSource
from bench.errors import ConfigError, RunInterrupted
from bench.experiment import Experiment, plan
from bench.interrupt import SigintWatch
from bench.journal import path_of as journal_path
from bench.multiplex import SuiteScheduler, SuiteSearcher
from bench.ray_adapter import PROGRESS_ENV, RecordCollector, SearchAdapter
from bench.runlock import RunLock
from bench.suite import Suite
from bench.trial import ray_trial
from bench.vocabulary import POPULATION

# The Ray Tune experiment of a run, under its storage path; "suite-retryN" hold the searches
# that a resume started over (round N).
TUNE_NAME = "suite"
CHECKPOINTS_KEPT = 3  # per trial, while it runs (Ray's CheckpointConfig.num_to_keep)


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
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
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


def run(suite: Suite, mode: str = "lines", resume: Path | None = None,
        trainable: Callable | None = None) -> Path:
    """Run every experiment of `suite` into a new run directory; with `resume`, continue the
    interrupted run in that directory: Ray Tune's snapshot of the suite is restored (every
    search from its saved state) and the trials its journals show ended are replayed, not
    retrained; then the experiments whose search raised start over (`retry`). `mode`:
    progress display (bench/progress.py). `trainable` replaces bench.trial.ray_trial
    (benchmarks/scheduling.py sleeps instead of training).

    Raises RunInterrupted, after journaling the trials cut short as interrupted, when a
    Ctrl-C (bench/interrupt.py) or anything else ended the run before every search used its
    budget: run.json is then not marked finished, and `--resume` continues the run."""
    probes.check_address(suite.address)
    probes.check_paths(suite, new_run=resume is None)
    if suite.download:  # once, before Ray starts, not in every trial at once
        tasks.fetch(suite.tasks, DataSource.resolve(suite.data_dir, True), say(mode))
    lock = RunLock()  # one driver per run directory
    if resume is not None:
        lock.take(resume)  # before Ray starts
    started_ray = start_ray(suite)
    try:
        probes.check_storage(suite)
        probes.check_resources(suite)
        try:
            run_dir, info = open_run(suite, resume)
        except OSError as exc:
            raise ConfigError(f"cannot write {exc.filename!r}: {exc.strerror}") from None
        lock.take(run_dir)
        say(mode)(f"ohobench: run directory {run_dir}")
        try:
            run_experiments(suite, run_dir, info, mode, resume is not None, trainable)
        except OSError as exc:  # e.g. a full disk: journals and run.json are kept consistent
            raise RunInterrupted(run_dir, f"cannot write {str(exc.filename or run_dir)!r}: "
                                 f"{exc.strerror or exc}") from None
    finally:
        lock.release()
        if started_ray:
            ray.shutdown()
    return run_dir


def run_experiments(suite: Suite, run_dir: Path, info: dict, mode: str, resume: bool,
                    trainable: Callable | None) -> None:
    """Fit the suite, then write its records and mark the run finished; on a Ctrl-C, journal
    the trials cut short and leave the run resumable."""
    experiments = plan(suite)
    (run_dir / "journal").mkdir(exist_ok=True)
    earlier = {e.name for e in experiments if journal_path(run_dir, e.name).exists()}
    again = to_start_over(run_dir, experiments) if resume else []
    rest = [e for e in experiments if e.name not in {a.name for a in again}]
    with SigintWatch() as sigint:
        try:
            if not resume or not budgets_spent(run_dir, rest):
                fit(suite, rest, run_dir, info["storage"], mode, resume, trainable)
            if again and not sigint.count:
                retry(suite, again, run_dir, info, mode, trainable)
        except KeyboardInterrupt:  # a second Ctrl-C: Tune's own clean-up cut short
            if not sigint.count:
                raise
        sigint.hold()  # what follows is short, and must not be cut
        cut = sum(journal.mark_interrupted(journal_path(run_dir, e.name)) for e in experiments)
        if sigint.count or not budgets_spent(run_dir, experiments):
            info.setdefault("interrupted", []).append(time.time())
            results.write_json(info, run_dir / results.RUN_JSON)
            raise RunInterrupted(
                run_dir, f"interrupted; {cut} trial(s) cut short will train again" if
                sigint.count else "stopped before every search used its budget",
                130 if sigint.count else 1)
        if not info.get("compute"):  # FLOPs per training: the report's default unit
            info["compute"] = compute.as_rows(compute.costs_for(suite))
        finish_run(run_dir, info, experiments, earlier)


def open_run(suite: Suite, resume: Path | None) -> tuple[Path, dict]:
    """A new run directory and its run.json, or those of the run to resume."""
    if resume is None:
        run_dir = run_dir_for(suite)
        run_dir.mkdir(parents=True)
        info = {"schema": results.RUN_SCHEMA, **suite.record(),
                "environment": results.environment(),
                "started": time.time(), "finished": None, "experiments": [], "resumed": []}
    else:
        run_dir, info = resume, results.read_run(resume, what="--resume")
        info.setdefault("resumed", []).append(time.time())
        info["finished"] = None  # a finished run whose searches raised is resumed to retry them
        info.update(suite.record())  # what this ohobench resolves from the run's suite
    info["storage"] = storage_path(suite, run_dir)
    info["slots"] = slots(suite)
    results.write_json(info, run_dir / results.RUN_JSON)
    return run_dir, info


def budgets_spent(run_dir: Path, experiments: list[Experiment]) -> bool:
    """Whether every search used its budget."""
    return all(budget_spent(exp, journal.read(journal_path(run_dir, exp.name)))
               for exp in experiments)


def budget_spent(exp: Experiment, kept: journal.Journal) -> bool:
    """Whether the search used its budget: all its trials ended, and as many as its trial
    budget (a time budget, or the search raising, may end it with fewer)."""
    short = exp.budget_seconds is None and len(kept.summaries) < exp.budget
    return not kept.interrupted and (not short or kept.search_error is not None)


def to_start_over(run_dir: Path, experiments: list[Experiment]) -> list[Experiment]:
    """What a resume starts over from scratch: the experiments whose search raised (e.g. a
    plugin's bug, fixed since), those whose earlier start-over was cut short, and those whose
    journal lost an event (a line that is not JSON, an epoch missing): the epochs it held
    train again rather than go missing from the table."""
    again = []
    for exp in experiments:
        path = journal_path(run_dir, exp.name)
        journal.repair_tail(path)
        kept = journal.read(path)
        if kept.search_error is not None or (kept.retried and not budget_spent(exp, kept)) \
                or kept.damage():
            again.append(exp)
    return again


def retry(suite: Suite, again: list[Experiment], run_dir: Path, info: dict, mode: str,
          trainable: Callable | None) -> None:
    """Start `again` over, each with a fresh search from its seed, in a Ray Tune experiment of
    their own (the run's snapshot holds their searches as they failed). Their journals so far
    go to journal/retried/, named by round; the new ones start with a `retry` event listing the
    errors of all earlier rounds, which the experiment's row in run.json keeps."""
    info.setdefault("retries", []).append({"time": time.time(),
                                           "experiments": [e.name for e in again]})
    results.write_json(info, run_dir / results.RUN_JSON)
    round_ = len(info["retries"])
    aside = run_dir / "journal" / "retried"
    aside.mkdir(exist_ok=True)
    for exp in again:
        path = journal_path(run_dir, exp.name)
        kept = journal.read(path)
        damage = kept.damage()
        why = (f"its journal lost events ({path.name}: {damage}); its trials train again"
               if damage else f"its search raised ({kept.search_error})"
               if kept.search_error is not None else "its earlier start-over was cut short")
        say(mode)(f"ohobench: starting {exp.name} over: {why}")
        path.rename(aside / f"{exp.name}.round{round_}.jsonl")
        errors = kept.earlier_search_errors + [e for e in [kept.search_error] if e]
        journal.append(path, {"event": "retry", "errors": errors}, durable=True)
    fit(suite, again, run_dir, info["storage"], mode, False, trainable,
        tune_name=f"{TUNE_NAME}-retry{round_}")


def finish_run(run_dir: Path, info: dict, experiments: list[Experiment], earlier: set[str]
               ) -> None:
    """The records table and run.json of a run whose searches all used their budget (or
    raised: `search_error` in their experiment's row)."""
    rows = []
    info["experiments"] = []
    for exp in experiments:
        exp_row, records = accounting.experiment_result(run_dir, exp, exp.name in earlier)
        info["experiments"].append(exp_row)
        rows += records
    results.write_table(results.table(rows), run_dir)
    info["finished"] = time.time()
    stamps = (r["timestamp"] for r in rows if r.get("timestamp"))  # how long each session went
    info["scheduling"] = accounting.utilization(info, stamps)
    info["checkpoints"] = checkpoints.drop(info["storage"])
    results.write_json(info, run_dir / results.RUN_JSON)
    print(accounting.scheduling_line(info["scheduling"]), flush=True)  # even with --quiet


def say(mode: str) -> Callable[[str], None]:
    return (lambda _msg: None) if mode == "quiet" else (lambda msg: print(msg, flush=True))


def slots(suite: Suite) -> int:
    """Trials the cluster can run at once with the suite's per-trial resources."""
    have = ray.cluster_resources()
    n = have.get("CPU", 0) / suite.cpus_per_trial
    if suite.gpus_per_trial:
        n = min(n, have.get("GPU", 0) / suite.gpus_per_trial)
    return max(int(n + 1e-9), 1)


def fit(suite: Suite, experiments: list[Experiment], run_dir: Path, storage: str, mode: str,
        resume: bool, trainable: Callable | None, callbacks: tuple = (),
        tune_name: str = TUNE_NAME, make_config: Callable | None = None) -> None:
    """One Tuner for the whole suite: a SuiteSearcher over the experiments' searches and a
    SuiteScheduler over their own schedulers (bench/multiplex.py); with `resume`, the one
    restored from its snapshot, if any. `callbacks`: more Ray Tune callbacks, `make_config`:
    what a trial's Tune config is made by (default `tune_config`); benchmarks/scheduling.py
    measures the driver with a callback and hands its sleepers plain configs."""
    replay = {(e.name, i): kept for e in experiments
              for i, kept in journal.read(journal_path(run_dir, e.name)).replay().items()}
    trainable = tune.with_resources(
        tune.with_parameters(trainable or ray_trial, replay=replay),
        {"cpu": suite.cpus_per_trial, "gpu": suite.gpus_per_trial})
    # Tune asks a custom searcher for one pending trial at a time unless told more: enough to
    # fill every slot at once; and every member of a population, which trains in step.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(slots(suite) + sum(
        e.budget for e in experiments if e.scheduler.name in POPULATION))
    os.environ[PROGRESS_ENV] = mode  # read by RecordCollector, also when restored from a pickle
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Those snapshots come often when epochs are short, and Tune would warn on every one.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The journals are the records: no per-trial result.json, progress.csv, TensorBoard files.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    path = f"{storage.rstrip('/')}/{tune_name}"
    # Tune's result grid (and a restore) looks for the per-trial files the journals replace;
    # it would warn once per trial that they are missing.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    ray_internals.tolerate_deleted_checkpoints()
    ray_internals.snapshot_before_deleting()
    if resume and tune.Tuner.can_restore(path):
        say(mode)(f"ohobench: resuming; {len(replay)} trial(s) had ended")
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        searcher = SuiteSearcher(experiments, {
            e.name: SearchAdapter(e.search(), partial(make_config or tune_config, e),
                                  journal_path(run_dir, e.name)) for e in experiments})
        scheduler = SuiteScheduler(searcher, {e.name: own for e in experiments
                                              if (own := own_scheduler(e)) is not None},
                                   {e.name: journal_path(run_dir, e.name) for e in experiments})
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=-1, reuse_actors=True,
            trial_dirname_creator=trial_dirname),
            run_config=tune.RunConfig(
                name=tune_name, storage_path=storage, verbose=0,
                callbacks=[RecordCollector(run_dir / "journal", experiments, mode),
                           *callbacks],
                failure_config=tune.FailureConfig(max_failures=suite.max_failures),
                # Each trial's latest epochs only (bench/checkpoints.py): what a restarted
                # attempt continues from. Tune snapshots the experiment whenever a trial has
                # saved num_to_keep - 1 checkpoints since the last snapshot
                # (snapshot_before_deleting); 3 halves those snapshots against 2.
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=checkpoints_kept(experiments))))
    tuner.fit()


def tune_config(experiment: Experiment, index: int, hparams: dict) -> dict:
    """A trial's Ray Tune config: its TrialConfig, nested so that Tune's keys cannot clash, and
    the hyperparameters it trains with, which population-based training changes."""
    return {"spec": experiment.trial_config(index, hparams), "hparams": dict(hparams)}


def own_scheduler(experiment: Experiment):
    """The experiment's Ray Tune scheduler, over the hyperparameters that may change while a
    trial trains (PBT's): not the model's own, such as its width."""
    frozen = tasks.get(experiment.task).model_hparams
    return experiment.scheduler.build({k: d for k, d in experiment.space.items()
                                       if k not in frozen}, experiment.search_seed)


def checkpoints_kept(experiments: list[Experiment]) -> int:
    """Checkpoints kept per trial: CHECKPOINTS_KEPT; under population-based training, also
    the one a member copies, which its owner may have followed with `interval` more by the
    time the copying member starts (and one for the pause in between)."""
    intervals = [e.scheduler.interval for e in experiments if e.scheduler.name in POPULATION]
    return max([CHECKPOINTS_KEPT, *(i + 2 for i in intervals)])


def trial_dirname(trial) -> str:
    return f"{trial.config['spec'].experiment}_{trial.config['spec'].trial}_{trial.trial_id}"


def storage_path(suite: Suite, run_dir: Path) -> str:
    """Where Ray Tune keeps experiment snapshots and trial files: RUN_DIR/ray, or the run's
    folder under `suite.storage` (a path every node reaches, or a URI such as s3://...)."""
    if suite.storage is None:
        return str(run_dir / "ray")
    return f"{suite.storage.rstrip('/')}/{run_dir.name}"


