"""Test fixture, not an example: fake installed distributions (a package and a hand-written
dist-info on a folder put on PYTHONPATH) whose plugins misbehave on purpose, for the tests of
the registry and of fault containment: a method that raises in a trial, a search that raises,
an entry point that fails to import. A real plugin is a package with a pyproject.toml:
examples/ohobench-plugin-example."""

import textwrap
from pathlib import Path

MODULE = '''
import dataclasses
import os
import pathlib
import time

from bench import tasks
from methods.base import Method, MethodKind, Options
from methods.random_search import RandomSearch
from methods.sgd import SGD


class Halving(SGD):
    """SGD whose learning rate halves at the start of every epoch after the first."""

    def init(self, params, hparams):
        state = super().init(params, hparams)
        state.epoch = 1
        return state

    def step(self, state, params, batch, ctx):
        if ctx.epoch != state.epoch:
            state.lr, state.epoch = state.lr / 2, ctx.epoch
        return super().step(state, params, batch, ctx)


class HalvingMethod(Method):
    name = "halving"
    kind = MethodKind.ONLINE
    description = "test plugin: SGD whose lr halves every epoch"
    tunes = ("lr",)

    def update_rule(self, options):
        return Halving()


@dataclasses.dataclass(frozen=True)
class FlakyOptions(Options):
    marker_dir: str = ""  # where attempts are counted, one file per trial seed
    fail_attempts: int = 1  # attempts that raise (in their second epoch) before one succeeds
    pid_dir: str = ""  # if set, each attempt writes its process id there, for a test to kill
    step_sleep: float = 0.0  # seconds slept per step, to make a trial last


class Flaky(SGD):
    """SGD that raises in the second epoch of its first `fail_attempts` attempts."""

    def __init__(self, options):
        self.options = options

    def init(self, params, hparams):
        state = super().init(params, hparams)
        marker = pathlib.Path(self.options.marker_dir) / f"attempts-{hparams['lr']}"
        attempt = int(marker.read_text()) + 1 if marker.exists() else 1
        marker.write_text(str(attempt))
        self.fail = attempt <= self.options.fail_attempts  # not state: a retry restores that
        self.epochs = None  # with pid_dir: a file listing the epochs this attempt trains
        if self.options.pid_dir:
            pid = pathlib.Path(self.options.pid_dir) / f"pid-{hparams['lr']}-attempt{attempt}"
            pid.write_text(str(os.getpid()))
            self.epochs = pid.with_name(f"epochs-{hparams['lr']}-attempt{attempt}")
        return state

    def step(self, state, params, batch, ctx):
        if self.fail and ctx.epoch == 2:
            raise RuntimeError("flaky plugin: injected failure")
        if self.epochs is not None and ctx.epoch != getattr(self, "epoch", None):
            self.epoch = ctx.epoch
            with self.epochs.open("a") as fh:
                fh.write(f"{ctx.epoch}\\n")
        time.sleep(self.options.step_sleep)
        return super().step(state, params, batch, ctx)


class FlakyMethod(Method):
    name = "flaky"
    kind = MethodKind.ONLINE
    description = "test plugin: SGD that raises in epoch 2 of its first attempts"
    options_type = FlakyOptions

    def update_rule(self, options):
        return Flaky(options)


class FailingSearch(RandomSearch):
    """Random search that raises in its second suggest (a plugin's bug), unless
    $FAILING_SEARCH_FIXED is set (the bug fixed)."""

    def suggest(self):
        if self.suggested == 1 and not os.environ.get("FAILING_SEARCH_FIXED"):
            raise ValueError("failing-search: injected bug\\nsecond line")
        return super().suggest()


class FailingSearchMethod(Method):
    name = "failing-search"
    kind = MethodKind.BLACK_BOX
    description = "test plugin: random search that raises in its second suggest"

    def search(self, space, seed, budget, options):
        return FailingSearch(space, seed, budget)


# Use the built-in object, not tasks.get(): the registry is loading this module right now.
TASK = dataclasses.replace(tasks.DIGITS, name="digits-small",
                           description="test plugin: digits with a 64-16-10 MLP",
                           make_model=lambda: tasks.mlp((64, 16, 10)))
'''

ENTRY_POINTS = """
[ohobench.methods]
halving = ohobench_test_plugins:HalvingMethod
flaky = ohobench_test_plugins:FlakyMethod
failing-search = ohobench_test_plugins:FailingSearchMethod

[ohobench.tasks]
digits-small = ohobench_test_plugins:TASK
"""


BROKEN_MODULE = 'raise ImportError("this plugin needs a package that is not installed")\n'
BROKEN_ENTRY_POINTS = "[ohobench.methods]\nbroken-search = ohobench_broken_plugin:Method\n"


def fake_distribution(root: Path, package: str, module: str, entry_points: str) -> Path:
    """An installed-looking distribution under `root`: one package and its dist-info."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(module)
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    name = package.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


def install_broken_plugin(root: Path) -> Path:
    """A distribution whose method entry point fails to import."""
    return fake_distribution(root, "ohobench_broken_plugin", BROKEN_MODULE, BROKEN_ENTRY_POINTS)


def install_test_plugins(root: Path) -> Path:
    """halving, flaky and failing-search (methods) and digits-small (a task)."""
    return fake_distribution(root, "ohobench_test_plugins", textwrap.dedent(MODULE), ENTRY_POINTS)
