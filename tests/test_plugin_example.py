"""The example plugin package (examples/ohobench-plugin-example) as its users get it: built and
installed non-editable into a folder of its own, then its own tests, written with the
conformance kit (hd-momentum's exactness check against unrolled autodiff included), and a tiny
`ohobench run` of its four parts. This process never imports it: the built-ins' tests see no
plugin."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "ohobench-plugin-example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(a copy of the example's sources, the environment that sees it installed). pip builds
    a wheel (fetching setuptools for an isolated build) and installs it into `site`."""
    tmp = tmp_path_factory.mktemp("plugin-example")
    source = tmp / "source"  # the build writes build/ and *.egg-info beside the sources
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(tmp / "site"), str(source)], check=True)
    return source, dict(os.environ, PYTHONPATH=str(tmp / "site"))


def test_the_example_installs_as_a_package_with_its_entry_points(installed):
    _, env = installed
    site = Path(env["PYTHONPATH"])
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == [
        "ohobench_example"]
    listed = subprocess.run([sys.executable, "-m", "bench.cli", "list"], env=env,
                            capture_output=True, text=True, check=True)
    assert listed.stderr == ""  # no plugin skipped
    for line in ("wine  ", "sobol  ", "lr-cosine-warm  ", "hd-momentum  "):
        assert any(row.strip().startswith(line) for row in listed.stdout.splitlines()), line


# The kit's checks that do not apply to the example's parts, reported as skips with a reason.
EXPECTED_SKIPS = {"sobol is not model_based", "lr-cosine-warm does not claim exact hypergradients"}


def test_the_examples_own_tests_pass(installed):
    """Every test passes, hd-momentum's exactness check against unrolled autodiff among them,
    and the only skips are the kit's checks that do not apply, each with its reason."""
    source, env = installed
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider"],
                          cwd=source, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ("TestHDMomentum::test_exact_hypergradients_match_autodiff_of_the_unrolled_run "
            "PASSED") in proc.stdout, proc.stdout[-3000:]
    assert "TestHDMomentum::test_a_trial_resumed_from_its_checkpoint" in proc.stdout
    reasons = [line.split(": ", 1)[1] for line in proc.stdout.splitlines()
               if line.startswith("SKIPPED [")]
    assert len(reasons) == len(EXPECTED_SKIPS) and all(
        any(r.startswith(e) for r in reasons) for e in EXPECTED_SKIPS), reasons


def test_ohobench_runs_the_examples_search_rules_and_task(installed, tmp_path):
    """Through Ray, with the task's optional `activation` dimension added by the suite: the
    string choices reach the model and the records."""
    _, env = installed
    (tmp_path / "suite.toml").write_text("""
tasks = ["wine"]
methods = ["sobol", "lr-cosine-warm", "hd-momentum"]
trials = 2
repetitions = 1
epochs = 2
[space]
activation = ["relu", "tanh"]
""")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--suite", str(tmp_path / "suite.toml"),
         "--quiet", "--out", str(tmp_path / "results")], env=env, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir, = (tmp_path / "results").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    trials = {e["method"]: [t["status"] for t in e["trials"]] for e in info["experiments"]}
    assert trials == {"sobol": ["completed"] * 2, "lr-cosine-warm": ["completed"],
                      "hd-momentum": ["completed"]}
    df = pd.read_parquet(run_dir / "records.parquet")
    assert set(df.task) == {"wine"} and len(df) == 4 * 2  # 4 trials of 2 epochs
    hd = df[df.method == "hd-momentum"]  # its tuned momentum and hypergradients are recorded
    assert hd.hp_momentum.between(0, 0.99).all() and hd.hg_momentum.notna().all()
    # Two Sobol points split every dimension in halves: one relu trial, one tanh.
    assert sorted(df[df.method == "sobol"].groupby("trial").hp_activation.first()) == [
        "relu", "tanh"]
    assert df.hp_activation.isin(["relu", "tanh"]).all()
