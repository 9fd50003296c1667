"""Both notebooks run end to end with nbclient (kernel python3: ipykernel of this environment)
against small real runs (digits, 3 epochs, trained without Ray), and are committed without
outputs."""

import base64
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.test_plots import make_two_runs

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["compare", "online_dynamics"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Directory `runs` holding a (random, hd, oho perturbed) and b (oho with two groups)."""
    root = tmp_path_factory.mktemp("runs")
    make_two_runs(root)
    return root


def execute(name: str, run_dirs: list[Path], monkeypatch) -> nbformat.NotebookNode:
    """The notebook executed with OHOBENCH_RUN_DIRS = run_dirs, plus a last cell printing the
    kernel's sys.prefix."""
    monkeypatch.setenv("OHOBENCH_RUN_DIRS", os.pathsep.join(map(str, run_dirs)))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


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
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in found)


def check_ran(nb: nbformat.NotebookNode, run_dirs: list[Path]) -> None:
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert text(nb, -1).strip() == sys.prefix  # the kernel is this environment's python
    resolved = text(nb, 0)  # the first code cell shows RUN_DIRS
    assert all(f"'{d}'" in resolved for d in run_dirs), resolved
    for png in images(nb):
        assert png.startswith(PNG) and len(png) > 5000


def test_compare_notebook_shows_every_figure_and_the_table(runs, monkeypatch):
    a, b = sorted(runs.iterdir())
    nb = execute("compare", [a, b], monkeypatch)
    check_ran(nb, [a, b])
    assert "skipped" not in text(nb)
    # final test loss, time-to-target, anytime, performance profile
    assert len(images(nb)) == 4
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))
    assert "ttt_median" in html and "oho[groups=2]" in html and "iqm_lo" in html
    assert "mean rank, seconds to target" in html


def test_online_notebook_draws_what_a_run_has_and_notes_the_rest(runs, monkeypatch):
    b = sorted(runs.iterdir())[-1]
    nb = execute("online_dynamics", [runs], monkeypatch)  # a directory of runs: its newest
    check_ran(nb, [b])
    shown = text(nb)
    assert len(images(nb)) == 2  # hp trajectories and influence norms of oho[groups=2]
    assert "skipped perturbation-recovery: no method was run with perturb_epochs" in shown
    assert "skipped layerwise-tradeoff" in shown and "hp_lr_1" in shown  # last-epoch table


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "RUN_DIRS" in code[0].source and "OHOBENCH_RUN_DIRS" in code[0].source
