"""Compute in SGD-epochs (bench.compute): FLOPs counted through the trial's own code path."""

import json
import math

import pytest
import torch

from bench import cli, compute, harness, results, tasks
from bench.experiment import TrialConfig


@pytest.fixture(scope="module")
def digits():
    return tasks.get("digits").load_splits(0)


def config(method, optimizer, **kw):
    return TrialConfig(task="digits", method=method, optimizer=optimizer, seed=0, epochs=1,
                       hparams={"lr": 0.1, "wd": 1e-4}, **kw)


def test_one_plain_sgd_epoch_is_one_sgd_epoch(digits):
    cost = compute.count(config("random", "fixed"), digits)
    assert cost.sgd_epochs == 1.0 and cost.step_ratio == 1.0
    assert cost.step_flops > 0 and cost.eval_flops_per_epoch > 0


def test_an_oho_step_costs_what_its_hypergradient_needs(digits):
    """Global OHO's step: the training forward and backward with its graph kept, one
    Hessian-vector product per tuned hyperparameter (lr, wd), and a validation forward and
    backward for the hyper-step: 2 HVPs' worth, each an f+b plus its double backward. The
    counted ratio lies on that floor; plain SGD's step is one f+b."""
    task = tasks.get("digits")
    cost = compute.count(config("oho", "online"), digits)
    model = harness.make_model(task, 0, torch.device("cpu"), torch.float32)
    trainee = harness.Trainee(task, model)
    params = trainee.initial_params()
    batch = (digits.x_train[:cost.batch_size], digits.y_train[:cost.batch_size])
    weights = list(params.values())

    def forward_backward():
        torch.autograd.grad(trainee.loss(params, batch), weights)

    def hvp():
        grads = torch.autograd.grad(trainee.loss(params, batch), weights, create_graph=True)
        torch.autograd.grad(grads, weights, [torch.ones_like(w) for w in weights])

    fb, h = compute.count_flops(forward_backward), compute.count_flops(hvp)
    assert cost.sgd_step_flops == fb
    assert 2 < h / fb < 3  # a double backward: more than one f+b again, less than two
    assert cost.step_ratio == pytest.approx(2 * h / fb, rel=0.01)
    assert cost.sgd_epochs == pytest.approx(cost.step_ratio)


def test_a_rule_that_hypersteps_every_tenth_step_is_counted_at_its_average(digits):
    every = compute.count(config("rtho", "online"), digits)
    assert 1.0 < every.step_ratio < compute.count(config("oho", "online"), digits).step_ratio


def test_records_carry_their_cumulative_compute_in_sgd_epochs(digits):
    rows = [dict(task="digits", method=m, optimizer=o, repetition=0, trial=t, epoch=e,
                 trial_start=float(t), train_seconds_cum=3.0 * e, val_loss=1.0, test_loss=1.0)
            for m, o, trials in (("random", "fixed", 2), ("oho", "online", 1))
            for t in range(trials) for e in (1, 2, 3)]
    costs = [compute.count(config("random", "fixed"), digits),
             compute.count(config("oho", "online"), digits)]
    df = results.at_epoch_costs(results.table(rows), compute.costs_series(costs, "flops"))
    oho = df[df["method"] == "oho"]
    assert oho["trial_compute"].tolist() == pytest.approx([costs[1].sgd_epochs * e
                                                           for e in (1, 2, 3)])
    random = df[df["method"] == "random"].sort_values("compute")
    assert random["compute"].tolist() == pytest.approx([1, 2, 3, 4, 5, 6])
    with pytest.raises(compute.ConfigError, match="ohobench calibrate"):
        compute.costs_series(costs, "calibrated")


def test_calibrate_times_every_training_side_by_side(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(compute, "CALIBRATION_ROUNDS", 1)
    monkeypatch.setattr(compute, "calibrate", lambda configs, splits_of: {
        (c.task, compute.training_of(c.method, c.optimizer)): (2e-3, 1e-3) for c in configs})
    suite = {"tasks": ["digits"], "methods": ["random", "hd"], "trials": 1, "repetitions": 1,
             "epochs": 1}
    results.write_json({"suite": suite}, tmp_path / results.RUN_JSON)
    assert cli.main(["calibrate", str(tmp_path), "--device", "cpu"]) == 0
    saved = compute.run_costs(json.loads((tmp_path / results.RUN_JSON).read_text()))
    assert {c.training for c in saved} == {"black-box · fixed", "hd"}
    assert all(c.device == "cpu" and c.calibrated_sgd_epochs == 2.0 for c in saved)
    assert "SGD-epochs per epoch" in capsys.readouterr().out


def test_calibrate_flops_only_stores_the_counts_and_times_nothing(tmp_path, capsys,
                                                                  monkeypatch):
    """A run from before counts were stored gets them, so reports stop counting again."""
    monkeypatch.setattr(compute, "calibrate", lambda *a: pytest.fail("timed"))
    suite = {"tasks": ["digits"], "methods": ["hd"], "trials": 1, "repetitions": 1, "epochs": 1}
    results.write_json({"suite": suite}, tmp_path / results.RUN_JSON)
    assert cli.main(["calibrate", str(tmp_path), "--flops-only"]) == 0
    info = json.loads((tmp_path / results.RUN_JSON).read_text())
    saved = compute.run_costs(info)
    assert [c.training for c in saved] == ["hd"] and saved[0].step_flops > 0
    assert math.isnan(saved[0].calibrated_sgd_epochs) and "timed" not in capsys.readouterr().out
    assert cli.main(["calibrate", str(tmp_path), "--flops-only", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: --flops-only times nothing" in err[0]


def test_an_evaluation_suite_refuses_a_development_seed(tmp_path, capsys):
    suite = tmp_path / "eval.toml"
    suite.write_text('purpose = "evaluation"\nseed = 0\nmethods = ["random"]\n')
    assert cli.main(["run", "--suite", str(suite), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "seed: 0 is a development seed" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["run", "--suite", str(suite), "--purpose", "research", "--dry-run"]) == 2
    assert "purpose: 'research' is not one of development, evaluation" in \
        capsys.readouterr().err


def test_the_dry_run_states_the_cost_in_sgd_epochs(capsys):
    args = ["run", "--method", "random", "--method", "oho", "--trials", "2",
            "--repetitions", "1", "--epochs", "3", "--purpose", "evaluation", "--seed", "7",
            "--dry-run"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "training compute: " in out and "SGD-epochs" in out
    line = next(s for s in out.splitlines() if "random · fixed" in s)
    assert line.split()[-1] == "6"  # 2 trials x 3 epochs x 1.00
