"""The published tables (results/published/) are what `ohobench report` and `ohobench horizon`
make of the committed records, so they cannot drift from their data."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import cli

PUBLISHED = Path(__file__).resolve().parent.parent / "results" / "published"
RUNS = sorted(d.name for d in PUBLISHED.glob("*") if (d / "records.parquet").is_file())
STUDIES = sorted(d.name for d in PUBLISHED.glob("*") if (d / "horizon.md").is_file())


@pytest.fixture
def published_copy(tmp_path, monkeypatch):
    """results/published/ copied under tmp_path, the working directory: the commands see the
    same relative paths as when the tables were made, and the repository is not touched."""
    shutil.copytree(PUBLISHED, tmp_path / "results" / "published")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "results" / "published"


@pytest.mark.skipif(not RUNS, reason="nothing published yet")
@pytest.mark.parametrize("name", RUNS)
def test_report_reproduces_the_published_summary(published_copy, name, capsys):
    committed = (published_copy / name / "summary.md").read_text()
    (published_copy / name / "summary.md").unlink()
    assert cli.main(["report", f"results/published/{name}"]) == 0
    assert (published_copy / name / "summary.md").read_text() == committed


@pytest.mark.skipif(not STUDIES, reason="no horizon study published yet")
@pytest.mark.parametrize("name", STUDIES)
def test_horizon_reproduces_the_published_study(published_copy, name, capsys):
    out = published_copy / name
    committed = (out / "horizon.md").read_text()
    runs = re.findall(r"`([^`]+)`", committed.split("\n\n")[1])
    budgets = sorted(pd.read_csv(out / "horizon.csv")["epochs"].unique())
    (out / "horizon.md").unlink()
    args = ["horizon", *runs, "--horizons", ",".join(map(str, budgets)),
            "--out", f"results/published/{name}"]
    assert cli.main(args) == 0
    assert (out / "horizon.md").read_text() == committed
