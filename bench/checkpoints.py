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


def load(folder: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What `save` wrote, its tensors on `device`. Our own file, so pickle is trusted here."""
    return torch.load(Path(folder) / FILE, map_location=device, weights_only=False)


def folder_bytes(root: Path) -> int:
    """Bytes of every checkpoint file under `root` (a run's Ray storage)."""
    return sum(p.stat().st_size for p in Path(root).rglob(FILE) if p.is_file())
