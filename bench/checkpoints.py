"""A trial's checkpoint: one file, written at the end of every epoch, from which a restarted
trial continues exactly where it was (bench.harness.TrainState: parameters, buffers, the update
rule's state, every random generator, the epoch and step, the records so far).

A checkpoint is a dict: `phase` ("search", or "retrain" for a method's follow-up), `first`
(the first phase's records, once the follow-up runs), `trial_start` and `train` (the phase's
TrainState). Ray Tune carries it between attempts (bench/trial.py: `ray_trial`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FILE = "trial.pt"


def save(folder: Path, checkpoint: dict[str, Any]) -> Path:
    """Write `checkpoint` to folder/trial.pt, atomically (a reader never sees half a file)."""
    path = Path(folder) / FILE
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)
    return path


def load(folder: Path) -> dict[str, Any]:
    """What `save` wrote, each tensor on the device it was saved from: the model's on the
    trial's device, random generator states and a controller's policy on the CPU (Ray shows a
    trial its GPUs as cuda:0 onward, wherever it runs). Our own file: pickle is trusted."""
    return torch.load(Path(folder) / FILE, weights_only=False)


def drop(storage: str) -> dict:
    """Remove every checkpoint file under a finished run's Ray storage, which Ray keeps after
    the trials end though nothing continues from them; what they took up. Remote storage (a
    URI) is left as is."""
    if "://" in storage:
        return {"bytes": None, "removed": False}
    found = list(Path(storage).rglob(FILE))
    size = sum(p.stat().st_size for p in found)
    for path in found:
        path.unlink(missing_ok=True)
    return {"bytes": size, "files": len(found), "removed": True}
