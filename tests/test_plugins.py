import os
import subprocess
import sys

import pytest

import methods
from bench import tasks
from bench.trial import run_trial
from tests import fake_plugins


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    root = fake_plugins.install_test_plugins(tmp_path / "site")
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


def test_a_plugin_that_fails_to_import_costs_only_the_runs_that_name_it(tmp_path):
    root = fake_plugins.install_broken_plugin(tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=str(root))

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "bench.cli", *argv], env=env,
                              capture_output=True, text=True)

    listed = cli("list")
    assert listed.returncode == 0 and "random" in listed.stdout
    assert listed.stderr.strip() == (
        "ohobench: skipped plugin 'broken-search' from ohobench-broken-plugin "
        "(ohobench_broken_plugin:Method) failed to load: ImportError: this plugin needs a "
        "package that is not installed")
    named = cli("run", "--method", "broken-search", "--out", str(tmp_path / "out"))
    assert named.returncode == 2 and "Traceback" not in named.stderr
    assert named.stderr.strip().splitlines()[-1].startswith(
        "ohobench: error: plugin 'broken-search' from ohobench-broken-plugin")
    assert not (tmp_path / "out").exists()
    other = cli("run", "--method", "random", "--dry-run", "--trials", "1", "--repetitions", "1",
                "--epochs", "1")
    assert other.returncode == 0 and "random · fixed" in other.stdout
