import os
import subprocess
import sys

import pytest

import methods
from bench import tasks
from bench.trial import run_trial
from tests import plugin_dist


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    root = plugin_dist.make(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    return root


def test_entry_points_register_a_method_and_a_task(plugin):
    assert methods.get("halving").kind is methods.MethodKind.ONLINE
    assert tasks.get("digits-small").name == "digits-small"
    records = run_trial({"task": "digits-small", "method": "halving", "seed": 0, "epochs": 3,
                         "hparams": {"lr": 0.4, "wd": 0.0}, "device": "cpu"})
    assert [r["hp_lr"] for r in records] == [0.4, 0.2, 0.1]


def test_plugins_show_up_in_ohobench_list(plugin):
    env = dict(os.environ, PYTHONPATH=str(plugin))
    out = subprocess.run([sys.executable, "-m", "bench.cli", "list"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "halving" in out and "[online] test plugin" in out and "digits-small" in out
