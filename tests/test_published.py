"""The published tables (results/published/) are what `ohobench report` and `ohobench horizon`
make of the committed records, so they cannot drift from their data. Each table names the runs
it was made from (its `Runs:` line) and, when not the default, how compute was counted."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import cli
from bench.analysis import verdict

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


def csv_texts(folder: Path) -> dict[str, str]:
    """The CSV tables a published directory holds, by name: the command that writes a table
    also writes them, and they must come out the same too (the README test reads them)."""
    return {p.name: p.read_text() for p in sorted(folder.glob("*.csv"))}


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
    committed, tables = path.read_text(), csv_texts(path.parent)
    runs, flags = made_from(committed)
    path.unlink()
    assert cli.main(["report", *runs, *flags]) == 0
    assert path.read_text() == committed and csv_texts(path.parent) == tables


@pytest.mark.skipif(not STUDIES, reason="no horizon study published yet")
@pytest.mark.parametrize("name", STUDIES)
def test_horizon_reproduces_the_published_study(published_copy, name, capsys):
    path = published_copy / name
    committed, tables = path.read_text(), csv_texts(path.parent)
    runs, flags = made_from(committed)
    budgets = sorted(pd.read_csv(path.with_suffix(".csv"))["epochs"].unique())
    path.unlink()
    args = ["horizon", *runs, "--horizons", ",".join(map(str, budgets)),
            "--out", str(path.parent.relative_to(published_copy.parent.parent)), *flags]
    assert cli.main(args) == 0
    assert path.read_text() == committed and csv_texts(path.parent) == tables


VERDICTS = sorted(str(p.relative_to(PUBLISHED)) for p in PUBLISHED.glob("*/verdict.md"))


@pytest.mark.skipif(not VERDICTS, reason="no verdict published yet")
@pytest.mark.parametrize("name", VERDICTS)
def test_verdict_reproduces_the_published_verdicts(published_copy, name, capsys):
    """The equal-compute replays and the bootstraps are seeded: the same records give the
    same verdict table, to the last digit."""
    path = published_copy / name
    committed, tables = path.read_text(), csv_texts(path.parent)
    runs, flags = made_from(committed)
    path.unlink()
    out = str(path.parent.relative_to(published_copy.parent.parent))
    assert cli.main(["verdict", *runs, "--out", out, *flags]) == 0
    assert path.read_text() == committed and csv_texts(path.parent) == tables


README = PUBLISHED.parent.parent / "README.md"


def readme_results() -> str:
    text = README.read_text()
    start = text.index("\n## Results")
    return text[start:text.index("\n## ", start + 5)]


def markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each markdown table in `text`: (header cells, rows of cells)."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|")):
            block = []
            for row in lines[i:]:
                if not row.startswith("|"):
                    break
                block.append([c.strip() for c in row.strip().strip("|").split("|")])
            tables.append((block[0], [r for r in block[2:]]))
    return tables


def test_every_number_of_the_readme_results_is_the_published_verdicts():
    """Each table of the README's Results shows rows of the verdict it cites, cell for cell as
    `ohobench verdict` prints them (bench.analysis.verdict.displayed, displayed_across),
    under the same column names; the verdict table shows every row. The figures it shows are
    published."""
    section = readme_results()
    figures = re.findall(r"\(results/published/([^)]+\.png)\)", section)
    assert figures and all((PUBLISHED / f).is_file() for f in figures)
    cited = {Path(f).parent for f in figures if f.endswith("/equal-compute.png")}
    assert len(cited) == 1, "one verdict: the directory of the equal-compute figure"
    where = PUBLISHED / cited.pop()
    shown = verdict.displayed(pd.read_csv(where / "verdict.csv"))
    across = (verdict.displayed_across(pd.read_csv(where / "across-tasks.csv"))
              if (where / "across-tasks.csv").is_file() else None)
    tables = markdown_tables(section)
    assert tables
    for header, rows in tables:
        source = across if header[0] == "entry" else shown
        assert source is not None and set(header) <= set(source.columns), header
        keys = [k for k in ("task", "online", "budget", "entry") if k in header]
        assert keys, header
        for row in rows:
            cells = dict(zip(header, row, strict=True))
            match = source[np.logical_and.reduce([source[k] == cells[k] for k in keys])]
            assert len(match) == 1, cells
            assert {h: match.iloc[0][h] for h in header} == cells
        if source is shown:
            assert len(rows) == len(shown), "every verdict row is shown"
