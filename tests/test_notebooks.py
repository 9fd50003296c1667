"""Both notebooks open on a fresh clone: with nothing under results/ but what is committed they
read the published study (bench.analysis.notebook.PUBLISHED_RUNS) and draw every figure the
README shows and every comparison figure, executed with nbclient (kernel python3: ipykernel of this
environment) in a copy of what a fresh clone holds. A run of one's own under results/ comes
first, OHOBENCH_RUN_DIRS before both. And they are committed executed against the published
study, outputs kept (`tox -e notebooks` regenerates them), so the repository shows the figures."""

import base64
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from bench.analysis import notebook, verdict

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PUBLISHED = [Path("results", "published", name) for name in notebook.PUBLISHED_RUNS]
TABLES = REPO / "results" / "published" / notebook.PUBLISHED_TABLES
PILOT = Path("results", "published", "pilot-mnist")  # one run: a run of one's own in a test
NAMES = ["compare", "online_dynamics"]
PNG = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 3_000_000  # a committed notebook, outputs included
FRESH = f"reading {', '.join(map(str, PUBLISHED))} (no run of your own under results/)"
OWN = "20260101-000000-mine"


def clone(root: Path) -> Path:
    """What a fresh clone holds that the notebooks read: pyproject.toml (how they find the
    repository's root), notebooks/, and under results/ only what is committed there and read
    (README.md, published/; stability/ holds no run directory)."""
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(NOTEBOOKS, root / "notebooks",
                    ignore=shutil.ignore_patterns("html", ".ipynb_checkpoints"))
    (root / "results").mkdir()
    shutil.copy(REPO / "results" / "README.md", root / "results")
    shutil.copytree(REPO / "results" / "published", root / "results" / "published")
    return root


def execute(root: Path, name: str, env: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """Notebook `name` of the clone at `root` executed in its directory (as Jupyter and
    nbconvert do), OHOBENCH_RUN_DIRS unset unless `env` sets it, plus a last cell printing the
    kernel's sys.prefix."""
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this process' environment
        mp.delenv("OHOBENCH_RUN_DIRS", raising=False)
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        NotebookClient(nb, timeout=240, kernel_name="python3",
                       resources={"metadata": {"path": str(root / "notebooks")}}).execute()
    return nb


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """Both notebooks executed on a fresh clone."""
    root = clone(tmp_path_factory.mktemp("clone"))
    return {name: execute(root, name) for name in NAMES}


def outputs(nb: nbformat.NotebookNode) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def images(nb: nbformat.NotebookNode) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in outputs(nb)
            if "image/png" in o.get("data", {})]


def text(nb: nbformat.NotebookNode, cell: int | None = None) -> str:
    """Printed text and text/plain results, of one code cell (by index among code cells) or
    of all."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    found = outputs(nb) if cell is None else code[cell].outputs
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in found)


def html(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))


def skipped(nb: nbformat.NotebookNode) -> list[str]:
    return [line for line in text(nb).splitlines() if line.startswith("skipped")]


def check_ran(nb: nbformat.NotebookNode, reading: str, images_at_least: int) -> None:
    """No error; the first code cell's first line says what it reads; real PNGs."""
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert text(nb, 0).splitlines()[0] == reading
    pngs = images(nb)
    assert len(pngs) >= images_at_least
    for png in pngs:
        assert png.startswith(PNG) and len(png) > 5000


def test_compare_notebook_on_a_fresh_clone_shows_the_published_study(fresh):
    nb = fresh["compare"]
    check_ran(nb, FRESH, 8)
    assert text(nb, -1).strip() == sys.prefix  # the kernel is this environment's python
    # equal-compute, across tasks, final test loss, time-to-target, anytime, performance
    # profile, target sweep, best-of-k: every comparison figure but categorical choices (the
    # search space is lr and wd)
    assert skipped(nb) == ["skipped categorical-choices: no categorical hyperparameter was "
                           "recorded"]
    assert len(images(nb)) == 8
    shown = html(nb)
    assert "ttt_median" in shown and "skopt-gp" in shown  # the summary
    assert "time-to-target in SGD-epochs" in text(nb)
    # the README's tables, every cell: read from the published verdict's CSV files
    assert "verdict.csv" in text(nb)
    for name, cells in (("verdict", verdict.displayed),
                        ("across-tasks", verdict.displayed_across),
                        ("verdict-paired", verdict.displayed_paired)):
        for cell in cells(pd.read_csv(TABLES / f"{name}.csv")).to_numpy().ravel():
            assert f">{cell}<" in shown, (name, cell)


def test_online_notebook_on_a_fresh_clone_shows_the_published_study(fresh):
    nb = fresh["online_dynamics"]
    check_ran(nb, FRESH, 3)
    assert text(nb, -1).strip() == sys.prefix
    # hp trajectories, influence norms, layerwise trade-off (oho K = 1, oho-layerwise K = 4)
    assert len(images(nb)) == 3
    assert skipped(nb) == ["skipped perturbation-recovery: no method was run with "
                           "perturb_epochs"]
    assert "hp_lr_3" in text(nb) and "rtho" in text(nb)  # last-epoch table, every method


def test_a_run_of_ones_own_comes_first_and_the_variable_before_it(tmp_path):
    """A copy of the pilot as a run of one's own: compare reads it and computes its verdict
    as `ohobench verdict` does, every cell of the pilot's published verdict.csv; with
    OHOBENCH_RUN_DIRS set, the notebook reads what it names."""
    root = clone(tmp_path)
    mine = root / "results" / OWN
    mine.mkdir()
    for name in ("run.json", "records.parquet"):
        shutil.copy(root / PILOT / name, mine)
    nb = execute(root, "compare")
    check_ran(nb, f"reading results/{OWN} (the newest run of your own under results/)", 7)
    assert "verdict.csv" not in text(nb)  # computed, not read
    assert skipped(nb)[0] == ("skipped across-tasks: an aggregate over tasks needs two tasks "
                              "or more")
    shown = html(nb)
    published = verdict.displayed(pd.read_csv(REPO / PILOT / "verdict.csv"))
    for cell in published.to_numpy().ravel():
        assert f">{cell}<" in shown, cell
    assert ">inconclusive at n = 5<" in shown

    nb = execute(root, "online_dynamics", {"OHOBENCH_RUN_DIRS": str(root / PILOT)})
    check_ran(nb, f"reading {PILOT} (from OHOBENCH_RUN_DIRS)", 3)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_executed_on_the_published_study(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.stat().st_size < MAX_BYTES
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "RUN_DIRS" in code[0].source and "OHOBENCH_RUN_DIRS" in code[0].source
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # in one go
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert text(nb, 0).splitlines()[0].startswith(FRESH.split(" (")[0] + " (")
    assert images(nb) and all(png.startswith(PNG) for png in images(nb))
    raw = path.read_text()
    assert str(REPO) not in raw and os.path.expanduser("~") + os.sep not in raw  # no local path
