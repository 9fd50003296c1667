"""Every figure on two small real runs (digits, 3 epochs, trained without Ray), and the report
command that writes them."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench import analysis, results
from bench.analysis import dynamics, plots
from bench.analysis.figkit import Skip
from bench.cli import main
from bench.suite import Suite
from bench.trial import run_trial

EPOCHS = 3
PERTURBED = {"perturb_epochs": [2], "perturb_lr": 0.2}
FIGURES = ["final-test-loss", "time-to-target", "anytime", "performance-profile", "target-sweep",
           "best-of-k",
           "categorical-choices", "hp-trajectories", "layerwise-tradeoff",
           "perturbation-recovery", "influence-norms"]


def make_run(run_dir, methods, options, reps=2):
    """A run directory as `ohobench run` writes it: random search with three trials per
    repetition (one lr too large to learn) and a categorical `tag` (recorded, not used),
    online methods one trial per repetition."""
    suite = Suite(name="tiny", methods=tuple(methods), repetitions=reps, trials=3,
                  epochs=EPOCHS, device="cpu", options=options)
    rows, experiments = [], []
    for method in methods:
        online = method != "random"
        for rep in range(reps):
            start = time.time()
            lrs = [0.05 * (rep + 1)] if online else [0.01, 0.3, 0.1 * (rep + 1)]
            for trial, lr in enumerate(lrs):
                tag = {} if online else {"tag": "ab"[trial % 2]}
                rows += [dict(r, experiment_start=start) for r in run_trial({
                    "task": "digits", "method": method,
                    "hparams": {"lr": lr, "wd": 1e-4, **tag},
                    "seed": 10 * rep + trial, "epochs": EPOCHS, "device": "cpu",
                    "options": options.get(method, {}), "repetition": rep, "trial": trial})]
            experiments.append({"task": "digits", "method": method,
                                "optimizer": "online" if online else "fixed",
                                "repetition": rep})
    results.write_table(results.table(rows), run_dir)
    results.write_json({"suite": suite.as_dict(), "experiments": experiments},
                       run_dir / results.RUN_JSON)
    return run_dir


def make_two_runs(root: Path) -> tuple[Path, Path]:
    """Run a (random, hd, oho perturbed) and run b (oho with two groups), in that order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster for these small models on a shared CPU
    try:
        a = make_run(root / "20260101-000000-a", ["random", "hd", "oho"], {"oho": PERTURBED})
        b = make_run(root / "20260101-000001-b", ["oho"], {"oho": {"groups": 2}})
    finally:
        torch.set_num_threads(threads)
    return a, b


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_two_runs(tmp_path_factory.mktemp("runs"))


def test_figures_without_data_are_skipped_with_a_note(runs, tmp_path):
    df, meta = analysis.load_runs(runs[:1])
    random_only = df[df["method"] == "random"].dropna(axis=1, how="all")
    lines = analysis.write_figures(random_only, tmp_path, meta["options"])
    skipped = {line.split()[1].rstrip(":") for line in lines if line.startswith("skipped")}
    assert skipped == {"performance-profile", "hp-trajectories", "layerwise-tradeoff",
                       "perturbation-recovery", "influence-norms"}
    assert not (tmp_path / "influence-norms.png").exists()
    with pytest.raises(Skip, match="same number of hyperparameter groups"):
        dynamics.plot_layerwise(df, analysis.final_losses(df))  # run a alone: K = 1 only


def test_layer_groups_are_counted(runs):
    df, _ = analysis.load_runs(runs)
    k = dynamics.groups_of(df).set_index("method")["groups"].to_dict()
    assert k == {"hd": 1, "oho[perturb_epochs=[2], perturb_lr=0.2]": 1, "oho[groups=2]": 2}


def test_report_command_writes_tables_and_every_figure(runs, capsys):
    a, b = runs
    assert main(["report", str(a), str(b), "--plots"]) == 0
    out = capsys.readouterr().out
    assert "oho[groups=2]" in out and out.count("\nwrote ") == len(FIGURES)
    md = (a / "summary-combined.md").read_text()
    assert md.count("\n| digits |") == 4 and "| --- |" in md
    assert len(pd.read_csv(a / "summary-combined.csv")) == 4
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (a / "figures-combined" / f"{name}.{ext}").stat().st_size > 1000
    assert main(["report", str(b)]) == 0  # one run: summary.*, and no figures unasked
    assert "| oho |" in (b / "summary.md").read_text() and not (b / "figures").exists()


def test_report_into_an_unwritable_place_is_one_line(runs, capsys):
    b = runs[1]
    (b / "figures").write_text("a file where the figures directory would go")
    try:
        assert main(["report", str(b), "--plots"]) == 2
    finally:
        (b / "figures").unlink()
    err = capsys.readouterr().err.strip()
    assert "cannot write the report into" in err and len(err.splitlines()) == 1


def test_categorical_choices_are_plotted_as_categories(runs):
    df, _ = analysis.load_runs(runs[:1])
    assert list(df.loc[df["method"] == "random", "hp_tag"].unique()) == ["a", "b"]
    fig = plots.plot_categorical_choices(df)
    ax, = [a for a in fig.axes if a.get_visible()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert ax.get_xlabel() == "tag"
    with pytest.raises(Skip, match="no categorical hyperparameter"):
        plots.plot_categorical_choices(df.drop(columns="hp_tag"))


def test_best_of_k_draws_random_search_against_the_other_entries(runs):
    df, _ = analysis.load_runs(runs[:1])
    fig = plots.plot_best_of_k(df, analysis.final_losses(df))
    ax, = [a for a in fig.axes if a.get_visible()]
    curve = analysis.best_of_k(df[df["method"] == "random"], [1, 2, 3])
    line, = [ln for ln in ax.get_lines() if ln.get_label() == "random · fixed"]
    assert list(line.get_xdata()) == [1, 2, 3]  # a pool of 6 trials: k up to half of it
    assert list(line.get_ydata()) == list(curve["median"])
    labels = {ln.get_label() for ln in ax.get_lines()}
    assert {"hd (median final)", "trials per search"} <= labels
    budget, = [ln for ln in ax.get_lines() if ln.get_label() == "trials per search"]
    assert list(budget.get_xdata()) == [3, 3]
    with pytest.raises(Skip, match="no random search"):
        plots.plot_best_of_k(df[df["method"] != "random"], analysis.final_losses(df))


def test_many_repetitions_are_drawn_as_thin_lines_and_their_median():
    """Past dynamics.MANY_REPETITIONS a legend entry per repetition would bury the axes: the
    lines are grey, the median per epoch is drawn over them, and the legend has the two."""
    reps, epochs = dynamics.MANY_REPETITIONS + 2, 60
    df = pd.DataFrame([{"task": "t", "method": "oho", "optimizer": "online", "repetition": r,
                        "trial": 0, "epoch": e, "hp_lr": 0.1 * (1 + r) / e}
                       for r in range(reps) for e in range(1, epochs + 1)])
    fig = dynamics.plot_hp_trajectories(df)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one repetition",
                                                                    "median per epoch"]
    assert ax.get_legend().get_title().get_text() == f"{reps} repetitions"
    median = next(line for line in ax.get_lines() if line.get_label() == "median per epoch")
    expected = df.groupby("epoch")["hp_lr"].median().to_numpy()
    assert list(median.get_ydata()) == pytest.approx(list(expected))
    few = dynamics.plot_hp_trajectories(df[df["repetition"] < 3]).axes[0]
    assert [t.get_text() for t in few.get_legend().get_texts()] == ["0", "1", "2"]


def test_a_figure_made_twice_is_the_same_and_leaves_numpys_generator_alone():
    """seaborn jitters strip plots with numpy's global generator: seeded per figure, so a
    committed figure does not change when made again, and the caller's stream goes on."""
    reps = pd.DataFrame({"task": "t", "method": "m", "optimizer": "fixed", "repetition": range(8),
                         "final_test_loss": [0.1 + 0.01 * i for i in range(8)]})
    np.random.seed(5)
    expected = np.random.uniform(size=3)
    np.random.seed(5)
    drawn = [plots.plot_final_loss(reps, {"t": 0.12}) for _ in range(2)]
    assert np.array_equal(np.random.uniform(size=3), expected)
    offsets = [[c.get_offsets().data.tolist() for c in f.axes[0].collections] for f in drawn]
    assert offsets[0] == offsets[1] and offsets[0]


def test_points_at_one_compute_are_drawn_side_by_side():
    """oho and oho-layerwise cost the same per run: on the equal-compute figure their points
    sit apart, around their compute; a point alone stays where it is."""
    from bench.analysis.figkit import side_by_side

    x = side_by_side(np.array([467.5, 100.0, 467.5, 470.0]))
    assert x[1] == 100.0
    near = np.sort(x[[0, 2, 3]])
    assert (np.diff(near) / near[:-1] > 0.03).all()
    assert np.exp(np.log(near).mean()) == pytest.approx(np.exp(np.log([467.5, 467.5, 470]).mean()))
