"""The results of a run: a tidy Parquet table (one row per task, method, repetition, trial,
epoch) and a JSON of the run's config, environment and experiments. Both are written atomically.

    import pandas as pd; df = pd.read_parquet("results/RUN/records.parquet")
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from bench import journal
from bench.errors import ConfigError
from bench.vocabulary import ONLINE, POPULATION

TABLE, RUN_JSON = "records.parquet", "run.json"
KEY = ["task", "method", "optimizer", "scheduler", "repetition", "trial", "epoch"]
# Identity columns that older tables lack, and what they read as there: the optimizer family
# ("-": before families existed) and the scheduler ("-": before it was a choice of its own).
ADDED = {"optimizer": "-", "scheduler": "-"}
# What differs between two runs of the same seed: clock times and durations.
TIMING = frozenset({"experiment_start", "trial_start", "attempt_start", "timestamp",
                    "train_seconds", "train_seconds_cum", "retry_seconds", "search_seconds",
                    "eval_seconds", "compute", "trial_compute"})
COLUMNS = KEY + [
    "seed", "trial_id", "status", "node", "node_id", "device", "step",
    "experiment_start", "trial_start", "attempt_start", "timestamp",  # unix seconds
    "train_seconds", "train_seconds_cum", "retry_seconds", "search_seconds", "compute",
    "trial_compute", "eval_seconds", "train_loss", "train_acc", "val_loss", "val_acc",
    "test_loss", "test_acc", "diverged", "collapsed", "lr_floored", "train_eval_size",
]  # then hp_<name> (hyperparameter values) and method diagnostics such as hg_lr


def table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows to the tidy table, in sequential-compute order, with `search_seconds`: training
    seconds of the repetition's earlier-started trials plus this trial's so far. A population
    (PBT, PB2) trains in step instead: see `in_step`."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = with_identity(df)
    trial = KEY[:-1]  # a repetition is an experiment: (task, method, family, scheduler, rep)
    population = df["scheduler"].isin(POPULATION)
    df = pd.concat([one_by_one(df[~population], trial),
                    *([in_step(df[population], trial)] if population.any() else [])])
    df = df.sort_values([*trial[:-1], "search_seconds"], kind="stable").reset_index(drop=True)
    df["compute"] = df["search_seconds"]  # the clock reports read: measured seconds here
    df["trial_compute"] = df["train_seconds_cum"] + lost_seconds(df)  # the trial's own
    extra = sorted(c for c in df.columns if c not in COLUMNS)
    hps = [c for c in extra if c.startswith("hp_")]
    ordered = [c for c in COLUMNS if c in df.columns] + hps + [c for c in extra if c not in hps]
    return df[ordered]


def one_by_one(df: pd.DataFrame, trial: list[str]) -> pd.DataFrame:
    """A search's trials as if run one after another, in the order they started."""
    df = df.sort_values([*trial[:-1], "trial_start", "trial", "epoch"], kind="stable")
    # A trial's failed attempts (retried after an error) cost training time too.
    spent = df["train_seconds_cum"] + lost_seconds(df)
    totals = spent.groupby([df[k] for k in trial], sort=False).max()  # in start order
    spent_before = totals.groupby(level=trial[:-1], sort=False).cumsum() - totals
    df["search_seconds"] = spent + df.join(spent_before.rename("before"), on=trial)["before"]
    return df


def in_step(df: pd.DataFrame, trial: list[str]) -> pd.DataFrame:
    """A population's members epoch by epoch, every member's epoch and failed attempts
    counted. A member's `train_seconds_cum` is its own training: one that copied another's
    checkpoint reported that member's seconds as well."""
    df = df.sort_values([*trial[:-1], "epoch", "trial"], kind="stable")
    members = [df[k] for k in trial]
    lost = lost_seconds(df)
    lost = lost - lost.groupby(members).shift(fill_value=0.0)
    df["train_seconds_cum"] = df["train_seconds"].groupby(members).cumsum()
    df["search_seconds"] = (df["train_seconds"] + lost).groupby(
        [df[k] for k in trial[:-1]]).cumsum()
    return df


def lost_seconds(df: pd.DataFrame) -> pd.Series:
    """Per record, the training seconds its trial had lost to failed attempts before it."""
    if "retry_seconds" in df:
        return df["retry_seconds"].fillna(0.0)
    return pd.Series(0.0, index=df.index)


def trainings(df: pd.DataFrame) -> pd.Series:
    """What each record's epoch trained with: its online method, or `black-box · FAMILY`,
    whichever search or scheduler chose the hyperparameters (bench.compute counts each)."""
    return df["method"].where(df["optimizer"] == ONLINE, "black-box · " + df["optimizer"])


def at_epoch_costs(df: pd.DataFrame, costs: pd.Series) -> pd.DataFrame:
    """`df` (one run, or runs combined without shared searches) with its `compute` clock
    counted in another unit: every epoch of a training at its cost in `costs` (per task and
    `trainings`, e.g. SGD-epochs from bench.compute), each search's compute
    cumulated anew. Attempts lost to failures or interruptions are not counted. The measured
    seconds and the wall-clock stay as they were."""
    if df.empty:
        return df
    keys = pd.MultiIndex.from_arrays([df["task"], trainings(df)])
    per_epoch = pd.Series(costs.reindex(keys).to_numpy(dtype=float), index=df.index)
    missing = df.loc[per_epoch.isna(), ["task", "method", "optimizer"]].drop_duplicates()
    if len(missing):
        raise ValueError(f"no cost for {missing.to_dict('records')}")
    kept = ["train_seconds", "train_seconds_cum", "retry_seconds", "search_seconds",
            "experiment_start"]
    out = df.assign(**{f"measured_{c}": df[c] for c in kept if c in df},
                    train_seconds=per_epoch, train_seconds_cum=per_epoch * df["epoch"],
                    retry_seconds=0.0)
    out = recount(out)
    out["compute"] = out["search_seconds"]
    out["trial_compute"] = out["train_seconds_cum"]
    for c in kept:
        if f"measured_{c}" in out:
            out[c] = out.pop(f"measured_{c}")
    return out


def recount(df: pd.DataFrame) -> pd.DataFrame:
    """`df`, whose trials' epochs or seconds were changed, as a table again: each search's
    compute cumulated anew (`table`), wall-clock dropped (it no longer matches)."""
    out = table(df.drop(columns=["search_seconds"], errors="ignore").to_dict("records"))
    out["experiment_start"] = math.nan
    return out


def interim_table(run_dir: Path) -> pd.DataFrame:
    """The table of a run that has not finished (records.parquet is written at its end): the
    records of the trials ended so far, from its journals."""
    return table([row for path in sorted((Path(run_dir) / "journal").glob("*.jsonl"))
                  for row in journal.ended_rows(path)[0]])


def write_table(df: pd.DataFrame, run_dir: Path) -> Path:
    return _atomic(run_dir / TABLE, lambda tmp: df.to_parquet(tmp, index=False))


def write_json(obj: Any, path: Path) -> Path:
    text = json.dumps(obj, indent=2, default=str, allow_nan=True)
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


# run.json's format: 1, the runs before it carried a version (read as they are); 2 adds
# `schema` itself and `compute` (bench.compute's counts); 3 adds `tasks`, what the suite
# resolved per task (bench.suite.Suite.record).
RUN_SCHEMA = 3


def read_run(run_dir: str | Path, what: str = "run") -> dict[str, Any]:
    """A run directory's run.json, migrated to RUN_SCHEMA; one line (ConfigError) when it
    cannot be read, is not an ohobench run's, or comes from a newer ohobench. The one reader
    of run.json: resume, report, horizon, verdict and calibrate all go through it."""
    path = Path(run_dir) / RUN_JSON
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {str(run_dir)!r}: not a run directory (cannot read "
                          f"{RUN_JSON}: {getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("suite", {}), dict):
        raise ConfigError(f"{what} {str(run_dir)!r}: not a run directory ({RUN_JSON} holds no "
                          "suite table: it is not an ohobench run's)")
    schema = info.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= RUN_SCHEMA:
        raise ConfigError(f"{what} {str(run_dir)!r}: {RUN_JSON} has schema {schema!r}, and this "
                          f"ohobench reads schemas 1 to {RUN_SCHEMA}; read it with the ohobench "
                          "that wrote it, or a newer one")
    if schema < 3:  # 1 -> 2: nothing to change (`compute` is optional); 2 -> 3: `tasks`
        info["tasks"] = task_definitions(info.get("suite", {}))
    return dict(info, schema=RUN_SCHEMA)


def task_definitions(suite: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Schema 2 -> 3: each task's epochs and batch sizes from the suite's keys, defaults from
    the task registry (a plugin task not installed here: as written); the options as the suite
    wrote them (schema 2 did not store the resolved ones)."""
    # bench.tasks imports torch: only an old run.json (schema 2) needs the task registry
    from bench import tasks

    out = {}
    for task in suite.get("tasks") or []:
        try:
            declared = tasks.get(task)
        except ConfigError:
            declared = None
        epochs = suite.get("epochs") or getattr(declared, "epochs", None)
        batch = suite.get("batch_size") or getattr(declared, "batch_size", None)
        out[task] = {"epochs": epochs, "batch_size": batch,
                     "val_batch_size": suite.get("val_batch_size") or batch,
                     "options": suite.get("options", {}), "schedulers": suite.get("scheduler", {})}
    return out


def suite_values(info: dict[str, Any]) -> dict[str, Any]:
    """The suite keys a run.json holds, for `bench.suite.build` (resume, calibrate, counts)."""
    return {k: v for k, v in info.get("suite", {}).items() if v is not None}


def load(run_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    run_dir = Path(run_dir)
    df = with_identity(pd.read_parquet(run_dir / TABLE))
    return df, read_run(run_dir)


def with_identity(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with every identity column of KEY: those an older table (or row) lacks are
    inserted after `method`, or filled, with their ADDED value (a table without `method` is
    left to be refused)."""
    if "method" not in df:
        return df
    if "compute" not in df and "search_seconds" in df:  # a table from before units
        df["compute"] = df["search_seconds"]
        df["trial_compute"] = df["train_seconds_cum"] + lost_seconds(df)
    at = df.columns.get_loc("method") + 1
    for column, value in ADDED.items():
        if column not in df:
            df.insert(at, column, value)
        elif df[column].isna().any():
            df[column] = df[column].fillna(value)
        at = df.columns.get_loc(column) + 1
    return df


def _atomic(path: Path, write) -> Path:
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`.
    The file gets the umask's usual mode (mkstemp's would be 0600: unreadable to colleagues)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # e.g. from pyarrow: name it
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path


PACKAGES = ("ohobench", "torch", "torchvision", "ray", "optuna", "scikit-optimize",
            "scikit-learn", "numpy", "pandas", "pyarrow", "seaborn")


def environment() -> dict[str, Any]:
    """Package versions, machine and git commit, for the run's JSON."""
    # torch (seconds), for the GPU's name only: reading results needs none
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "cuda": torch.version.cuda if gpu else None,
        "packages": versions,
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() if out.returncode == 0 else None
    return f"{commit}-dirty" if commit and dirty else commit


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    return _atomic(path, lambda tmp: df.to_csv(tmp, index=False))
