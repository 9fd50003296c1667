"""The published tables (results/published/) are what `ohobench report` and `ohobench horizon`
make of the committed records, so they cannot drift from their data. Each table names the runs
it was made from (its `Runs:` line) and, when not the default, how compute was counted."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import cli

PUBLISHED = Path(__file__).resolve().parent.parent / "results" / "published"
SUMMARIES = sorted(str(p.relative_to(PUBLISHED)) for p in PUBLISHED.glob("*/summary*.md"))
STUDIES = sorted(str(p.relative_to(PUBLISHED)) for p in PUBLISHED.glob("*/horizon*.md"))


@pytest.fixture
def published_copy(tmp_path, monkeypatch):
    """results/published/ copied under tmp_path, the working directory: the commands see the
    same relative paths as when the tables were made, and the repository is not touched."""
    shutil.copytree(PUBLISHED, tmp_path / "results" / "published")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "results" / "published"


UNITS = {"SGD-epochs (calibrated)": "calibrated", "training seconds": "measured"}


def made_from(text: str) -> tuple[list[str], list[str]]:
    """(the runs a published table names, the flags its compute and target rule need)."""
    runs = re.findall(r"`([^`]+)`", re.search(r"^Runs: (.*)$", text, re.M).group(1))
    unit = re.search(r"^Compute: (.*?): ", text, re.M).group(1)
    flags = ["--compute", UNITS[unit]] if unit in UNITS else []
    return runs, flags + (["--reach", "first-touch"] if "first dips below" in text else [])


@pytest.mark.skipif(not SUMMARIES, reason="nothing published yet")
@pytest.mark.parametrize("name", SUMMARIES)
def test_report_reproduces_the_published_summary(published_copy, name, capsys):
    path = published_copy / name
    committed = path.read_text()
    runs, flags = made_from(committed)
    path.unlink()
    assert cli.main(["report", *runs, *flags]) == 0
    assert path.read_text() == committed


@pytest.mark.skipif(not STUDIES, reason="no horizon study published yet")
@pytest.mark.parametrize("name", STUDIES)
def test_horizon_reproduces_the_published_study(published_copy, name, capsys):
    path = published_copy / name
    committed = path.read_text()
    runs, flags = made_from(committed)
    budgets = sorted(pd.read_csv(path.with_suffix(".csv"))["epochs"].unique())
    path.unlink()
    args = ["horizon", *runs, "--horizons", ",".join(map(str, budgets)),
            "--out", str(path.parent.relative_to(published_copy.parent.parent)), *flags]
    assert cli.main(args) == 0
    assert path.read_text() == committed


VERDICTS = sorted(str(p.relative_to(PUBLISHED)) for p in PUBLISHED.glob("*/verdict.md"))


@pytest.mark.skipif(not VERDICTS, reason="no verdict published yet")
@pytest.mark.parametrize("name", VERDICTS)
def test_verdict_reproduces_the_published_verdicts(published_copy, name, capsys):
    """The equal-compute replays and the bootstraps are seeded: the same records give the
    same verdict table, to the last digit."""
    path = published_copy / name
    committed = path.read_text()
    runs, flags = made_from(committed)
    path.unlink()
    out = str(path.parent.relative_to(published_copy.parent.parent))
    assert cli.main(["verdict", *runs, "--out", out, *flags]) == 0
    assert path.read_text() == committed


README = PUBLISHED.parent.parent / "README.md"


def readme_results_rows() -> list[list[str]]:
    """The rows of the table in the README's Results section, as cells."""
    text = README.read_text()
    section = text[text.index("\n## Results"):text.index("\n## ", text.index("\n## Results") + 5)]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ")]
    return rows[1:]  # the header's cells; "| --- |" lines do not start with "| " + a name


def test_every_number_of_the_readme_results_is_the_published_verdicts():
    """Each row of the README's Results table is a row of the published verdict.csv it cites,
    at the precision shown; the figure it shows is published."""
    text = README.read_text()
    cited = re.findall(r"\(results/published/([^)]+)/equal-compute\.png\)", text)
    assert cited and all((PUBLISHED / c / "equal-compute.png").is_file() for c in cited)
    verdicts = pd.read_csv(PUBLISHED / cited[0] / "verdict.csv")
    rows = [r for r in readme_results_rows() if r[0] != "---"]
    assert len(rows) == len(verdicts) > 0
    for online, budget, o_med, b_med, diff, p, verdict_text, detectable in rows:
        label, _, compute = budget.partition(" (")
        row = verdicts[(verdicts["online"] == online) & (verdicts["budget"] == label)]
        assert len(row) == 1, (online, budget)
        r = row.iloc[0]
        assert compute.rstrip(")") == f"{r['compute']:,.0f}"
        assert (o_med, b_med) == (f"{r['online_median']:.4f}", f"{r['black_box_median']:.4f}")
        assert diff == f"{r['difference']:+.4f}" and p == f"{r['p_improvement']:.2f}"
        assert verdict_text == r["verdict"] and detectable == f"{r['detectable']:.4f}"
