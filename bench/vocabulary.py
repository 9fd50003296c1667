"""The words every module shares, each spelled in one place: the kinds of method, the
no-scheduler value, and how an entry of a comparison is named.

An entry is (task, method, optimizer). Its name joins the method, the scheduler its searches
ran under (none for fifo) and the optimizer family its trials trained with (none for online
methods, which train with their own rule): `oho`, `random · fixed`, `random · asha · fixed`.
"""

from __future__ import annotations

ONLINE = "online"  # a method kind, and the `optimizer` recorded for online methods' trials
BLACK_BOX = "black-box"
FIFO = "fifo"  # the scheduler that stops nothing
POPULATION = ("pbt", "pb2")  # schedulers whose search is one population trained in step
LEGACY_NO_SCHEDULER = "-"  # `scheduler` in tables from before schedulers were a choice
SEPARATOR = " · "
TIME_ATTR = "epoch"  # reported by every trial (bench/trial.py): schedulers count in epochs


def scheduled(scheduler: str | None) -> bool:
    """Whether a search ran under a scheduler of its own (anything but fifo)."""
    return scheduler not in (None, FIFO, LEGACY_NO_SCHEDULER)


def method_label(method: str, scheduler: str | None) -> str:
    """The report's `method` of an entry: a search under a scheduler other than fifo is an
    entry of its own, `optuna-tpe · asha`. Idempotent."""
    if not scheduled(scheduler) or method.endswith(f"{SEPARATOR}{scheduler}"):
        return method
    return f"{method}{SEPARATOR}{scheduler}"


def entry_label(method: str, optimizer: str | None) -> str:
    """An entry's name from the report's method (`method_label`) and its optimizer family."""
    if optimizer in (None, ONLINE, LEGACY_NO_SCHEDULER):
        return method
    return f"{method}{SEPARATOR}{optimizer}"


def entry_name(method: str, optimizer: str | None, scheduler: str | None = FIFO) -> str:
    """An entry's name from the suite's words: `method`, `method · family`,
    `method · scheduler · family`."""
    return entry_label(method_label(method, scheduler), optimizer)


def kind_of(optimizer: str) -> str:
    """ONLINE or BLACK_BOX, from a record's optimizer."""
    return ONLINE if optimizer == ONLINE else BLACK_BOX
