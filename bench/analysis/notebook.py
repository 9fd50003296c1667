"""What the notebooks share: which runs they read, and how they show a figure.

    from bench.analysis import notebook
    runs = notebook.choose_runs()     # OHOBENCH_RUN_DIRS, else your newest run, else published
    print(runs.reading(runs.dirs))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import seaborn as sns

from bench.analysis.figkit import Skip
from bench.analysis.runs import is_run_dir

# The published study (docs/paper-mnist.md), under results/published/: its run directories, and
# the directory where `ohobench verdict` wrote its tables.
PUBLISHED_RUNS = ("eval-mnist-pool", "eval-mnist-gp", "eval-mnist-online", "eval-digits-pool",
                  "eval-digits-online")
PUBLISHED_TABLES = "eval"
PUBLISHED_NAME = ("the evaluation of the OHO paper's MNIST comparison, with digits, on seeds "
                  "that tuned no default (docs/paper-mnist.md)")
ENV = "OHOBENCH_RUN_DIRS"


def repository_root(start: Path | None = None) -> Path:
    """The repository's root: the first of `start` (the working directory) and its parents
    that holds pyproject.toml and results/ (a kernel starts in notebooks/ or in the root)."""
    start = start or Path.cwd()
    return next((d for d in [start, *start.parents]
                 if (d / "pyproject.toml").is_file() and (d / "results").is_dir()), start)


def runs_in(folder: Path) -> list[Path]:
    """The run directories in `folder`, oldest first (their names start with a timestamp)."""
    return sorted(d for d in folder.iterdir() if is_run_dir(d)) if folder.is_dir() else []


def published_runs(root: Path) -> list[Path]:
    """The published study's run directories under the repository's root `root`."""
    return [root / "results" / "published" / name for name in PUBLISHED_RUNS]


def run_dir(path: str | Path, root: Path) -> Path:
    """A run directory as given (relative: from the working directory, else from `root`); a
    directory that holds run directories stands for its newest."""
    path = Path(path).expanduser()
    if not path.is_absolute() and not path.exists():
        path = root / path
    if is_run_dir(path):
        return path
    if found := runs_in(path):
        return found[-1]
    raise FileNotFoundError(f"{path} is not a run directory (run.json and records.parquet or "
                            "journal/) and holds none")


@dataclass(frozen=True)
class Runs:
    """The runs a notebook reads (`dirs`), why, and where the published study lies."""

    root: Path
    dirs: list[Path]
    why: str

    @property
    def published_tables(self) -> Path:
        return self.root / "results" / "published" / PUBLISHED_TABLES

    def is_published(self, dirs: list[Path]) -> bool:
        """Whether `dirs` are the published study's runs."""
        return [d.resolve() for d in dirs] == [d.resolve() for d in published_runs(self.root)]

    def shown(self, path: Path) -> str:
        """`path` relative to the repository's root where it lies under it."""
        path, root = Path(path).resolve(), self.root.resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    def reading(self, dirs: list[Path]) -> str:
        """What a notebook prints first: the runs it reads and why (`dirs` other than the
        chosen ones were set by hand)."""
        why = self.why if dirs == self.dirs else "set by hand in this cell"
        line = f"reading {', '.join(self.shown(d) for d in dirs)} ({why})"
        return line + (f"\nthe published study: {PUBLISHED_NAME}" if self.is_published(dirs)
                       else "")


def choose_runs(start: Path | None = None) -> Runs:
    """The paths in OHOBENCH_RUN_DIRS (os.pathsep between them), else the newest run of one's
    own under results/, else the published study."""
    root = repository_root(start)
    if named := [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]:
        return Runs(root, [run_dir(p, root) for p in named], f"from {ENV}")
    if own := runs_in(root / "results"):
        return Runs(root, own[-1:], "the newest run of your own under results/")
    return Runs(root, published_runs(root), "no run of your own under results/")


def show(name: str, draw, shown: set[str] | None = None) -> None:
    """Draw a figure (`draw()`) and display it, or print why the runs have no data for it;
    `name` joins `shown`."""
    from IPython.display import display  # in a notebook's kernel only (ipykernel brings it)

    if shown is not None:
        shown.add(name)
    try:
        with sns.axes_style("whitegrid"):
            fig = draw()
    except Skip as why:
        print(f"skipped {name}: {why}")
    else:
        display(fig)
