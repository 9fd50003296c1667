"""A throwaway installed distribution that registers a method and a task by entry points."""

import textwrap
from pathlib import Path

MODULE = '''
import dataclasses

from bench import tasks
from methods.base import Method, MethodKind
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


# Use the built-in object, not tasks.get(): the registry is loading this module right now.
TASK = dataclasses.replace(tasks.DIGITS, name="digits-small",
                           description="test plugin: digits with a 64-16-10 MLP",
                           make_model=lambda: tasks.mlp((64, 16, 10)))
'''

ENTRY_POINTS = """
[ohobench.methods]
halving = ohobench_demo_plugin:HalvingMethod

[ohobench.tasks]
digits-small = ohobench_demo_plugin:TASK
"""


def make(root: Path) -> Path:
    (root / "ohobench_demo_plugin").mkdir(parents=True)
    (root / "ohobench_demo_plugin" / "__init__.py").write_text(textwrap.dedent(MODULE))
    info = root / "ohobench_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ohobench-demo-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root
