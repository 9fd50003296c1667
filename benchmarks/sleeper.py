"""The sleeping trainable of benchmarks/scheduling.py, in a module that imports neither torch nor
bench: Ray ships `sleepy` to every worker by reference, so a worker imports this module, and
with it only what Ray Tune's function trainable imports anyway (about 190 MB max RSS here,
against about 800 MB with bench.ray_adapter, which imports torch through methods.base).

A trial's config must not bring bench back either: the driver hands each trial its
TrialConfig as a `types.SimpleNamespace` of the same fields (scheduling.plain_config), which a
worker unpickles without importing bench.experiment, and the method options stay None. The
result a trial reports is built here as bench.ray_adapter.tune_result builds it (the driver
checks that the two agree: scheduling.check_sleeper).

Trials: black-box epochs last base x U(0.5, 1.5) seconds (from the trial's seed), online ones
3x as long; the validation loss falls with epochs and depends on the hyperparameters, so ASHA
has something to stop. Each record also says which worker process ran the trial, its max RSS
so far, and whether torch or bench had been imported there.
"""

from __future__ import annotations

import math
import os
import random
import resource
import sys
import time

ONLINE = "online"  # bench.vocabulary.ONLINE: the `optimizer` of an online trial


def sleepy(config: dict, replay=None, base: float = 1.5) -> None:
    """The trainable (`functools.partial(sleepy, base=...)`): sleeps through `spec.epochs`
    epochs and reports a record shaped like the harness's after each."""
    from ray import tune

    spec = config["spec"]
    rng = random.Random(spec.seed)
    per_epoch = base * (3.0 if spec.optimizer == ONLINE else 1.0) * rng.uniform(0.5, 1.5)
    quality = sum(abs(math.log10(v)) for v in spec.hparams.values()
                  if isinstance(v, int | float) and v > 0) + rng.random()
    start = time.time()
    for epoch in range(1, spec.epochs + 1):
        time.sleep(per_epoch)
        loss = quality / epoch
        record = {"task": spec.task, "method": spec.method, "optimizer": spec.optimizer,
                  "scheduler": spec.scheduler, "repetition": spec.repetition,
                  "trial": spec.trial, "seed": spec.seed, "epoch": epoch,
                  "trial_start": start, "timestamp": time.time(),
                  "train_seconds": per_epoch, "train_seconds_cum": per_epoch * epoch,
                  "eval_seconds": 0.0, "train_loss": loss, "val_loss": loss, "test_loss": loss,
                  "diverged": False, **worker_facts()}
        tune.report(tune_result(record))


def worker_facts() -> dict:
    """The worker process: its id, its max RSS so far (KiB), and whether torch or any module
    of bench or methods is imported in it."""
    ours = ("bench", "methods")
    return {"worker_pid": os.getpid(),
            "worker_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "worker_torch": "torch" in sys.modules,
            "worker_bench": any(m.split(".")[0] in ours for m in sys.modules)}


def tune_result(record: dict, replayed: bool = False) -> dict:
    """What bench.ray_adapter.tune_result makes of a record (the record inside a tuple)."""
    return {"val_loss": record["val_loss"], "epoch": record["epoch"],
            "diverged": record["diverged"], "collapsed": record.get("collapsed", False),
            "trial_start": record["trial_start"], "record": (record,), "replayed": replayed}
