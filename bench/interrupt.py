"""Ctrl-C during a run. The first SIGINT ends Ray Tune's run gracefully: it stops starting
trials, snapshots the experiment (trials still running stay unfinished there, so that
`--resume` reruns them) and stops the trials. A second SIGINT raises KeyboardInterrupt, which
cuts that short; the journals and the last snapshot still make the run resumable.

Tune's own SIGINT handler is turned off (TUNE_DISABLE_SIGINT_HANDLER) so that the runner knows
the run was interrupted; the first SIGINT is handed to the handler Tune installs for SIGUSR1,
which is the same graceful stop."""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

# Tune's own lines about a stop signal: how to restore its experiment in Python, and how to
# skip its snapshot; the first SIGINT prints ohobench's instead.
TUNE_LOGGER = "ray.tune.tune"
TUNE_LINES = ("Stop signal received", "Experiment has been interrupted")
STOPPING = (b"\nohobench: stopping; the trials running are cut short and will train again "
            b"with --resume (Ctrl-C again to stop at once)\n")


def not_tunes_own(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(TUNE_LINES)


class SigintWatch:
    """Counts SIGINTs while active (a context manager); restores the handlers on exit."""

    def __init__(self):
        self.count = 0
        self._saved: dict = {}

    def __enter__(self) -> SigintWatch:
        self._saved = {"env": os.environ.get("TUNE_DISABLE_SIGINT_HANDLER"),
                       signal.SIGINT: signal.getsignal(signal.SIGINT),
                       signal.SIGUSR1: signal.getsignal(signal.SIGUSR1)}
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        # Tune installs its graceful handler for SIGUSR1 when its run loop starts; until then
        # (and after an earlier run in this process) there is none to hand the signal to.
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGINT, self._on_sigint)
        logging.getLogger(TUNE_LOGGER).addFilter(not_tunes_own)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger(TUNE_LOGGER).removeFilter(not_tunes_own)
        env = self._saved.pop("env")
        if env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = env
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def hold(self) -> None:
        """Ignore SIGINT until exit (a short write that must not be cut)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _on_sigint(self, sig: int, frame: FrameType | None) -> None:
        self.count += 1
        graceful = signal.getsignal(signal.SIGUSR1)
        if self.count == 1 and callable(graceful):
            os.write(2, STOPPING)  # not print: it may have been interrupted mid-line
            graceful(signal.SIGUSR1, frame)
            return
        raise KeyboardInterrupt
