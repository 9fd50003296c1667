"""One driver per run directory: the driver holds an exclusive lock on RUN_DIR/.lock while it
runs, and a second driver (`--resume` of a run still running) is refused in one line. The lock
is the kernel's (flock), so it goes with the process that held it: the file a killed driver
leaves behind, naming its dead pid, does not block a resume."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from bench.errors import ConfigError

LOCK = ".lock"


class RunLock:
    def __init__(self):
        self.fd: int | None = None

    def take(self, run_dir: Path) -> None:
        """Hold the lock of `run_dir` (nothing if already held), or refuse in one line."""
        if self.fd is not None:
            return
        path = Path(run_dir) / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ConfigError(f"cannot lock {str(run_dir)!r}: cannot write {str(path)!r} "
                              f"({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"{str(run_dir)!r} is being run by another ohobench driver "
                              f"({holder}); let it end or stop it, then --resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # and with it the lock
            self.fd = None


def holder(run_dir: Path) -> str | None:
    """Who runs `run_dir` now ("pid N on HOST"), or None when no driver holds its lock."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 200).decode(errors="replace").strip() or "a driver"
    finally:
        os.close(fd)  # and with it a lock just taken
    return None
