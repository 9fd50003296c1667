"""The CUDA path: hypergradients, trials of every method, and agreement with the CPU.

Skipped without a CUDA device (CI has none). `OHOBENCH_TEST_DEVICE=cpu` runs the same checks on
the CPU, which is how they are checked on a machine without a GPU.
"""

import math
import os

import numpy as np
import pytest
import torch

import methods
from bench import tasks
from bench.testing.reference import problem, run_rule, shared_hypergradients, true_hypergradients
from bench.trial import run_trial
from methods.base import MethodKind
from methods.online import layer_groups

DEVICE = os.environ.get("OHOBENCH_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA device")
FROZEN = {"meta_lr": 0.0, "meta_lr_wd": 0.0, "meta_lr_momentum": 0.0}
HPARAMS = {"lr": 0.3, "wd": 0.05}
REL = 1e-6


def rule_for(method: str, **options):
    m = methods.get(method)
    opts = m.options_type(**{**FROZEN, **options})
    assert not opts.problems()
    return m.update_rule(opts)


@pytest.mark.parametrize("method,options", [
    ("oho", {"groups": 1}), ("oho", {"groups": 2}), ("oho", {"groups": 2, "hvp_chunk": 1}),
    ("oho-layerwise", {"groups": 0, "influence": "exact"}),
    ("rtho", {"groups": 1, "hyper_every": 3}),
    ("marthe", {"groups": 1, "discount": 1.0})])
def test_forward_hypergradients_on_the_device_equal_unrolled_autodiff(method, options):
    """Forward-mode hypergradients computed on the device (float64; the CUDA default batches
    every scalar's HVP into one, hvp_chunk 1 does not) equal autodiff of the unrolled run on
    the device, and the CPU's own hypergradients."""
    found = {}
    for device in dict.fromkeys([DEVICE, "cpu"]):
        model, params, batches, val = problem("relu", 6, device=device)
        state, _ = run_rule(rule_for(method, **options), model, params, batches, val, HPARAMS)
        found[device] = dict(zip(state.hypers.tuned, state.hypergrads, strict=True))
    model, params, batches, val = problem("relu", 6, device=DEVICE)
    group_of, n = layer_groups(list(params), options.get("groups", 0))
    want = true_hypergradients(model, params, batches, val,
                               {k: [v] * n for k, v in HPARAMS.items()}, group_of)
    for (kind, group), got in found[DEVICE].items():
        assert math.isfinite(got)
        assert got == pytest.approx(want[kind][group], rel=REL), (kind, group)
        assert got == pytest.approx(found["cpu"][(kind, group)], rel=1e-9), (kind, group)


def test_shared_influence_on_the_device_equals_autodiff_of_its_objective():
    model, params, batches, val = problem("tanh", 6, device=DEVICE)
    state, _ = run_rule(rule_for("oho-layerwise", influence="shared"), model, params, batches,
                        val, HPARAMS)
    group_of, n = layer_groups(list(params), 0)
    want = shared_hypergradients(model, params, batches, val,
                                 {k: [v] * n for k, v in HPARAMS.items()}, group_of)
    for (kind, group), got in zip(state.hypers.tuned, state.hypergrads, strict=True):
        assert got == pytest.approx(want[kind][group], rel=REL), (kind, group)


def trial(method: str, device: str, **extra) -> list[dict]:
    config = {"task": "digits", "method": method, "hparams": {"lr": 0.05, "wd": 1e-4},
              "seed": 3, "epochs": 2, "device": device, **extra}
    return run_trial(config)


@pytest.mark.parametrize("method", [m for m, spec in methods.all_methods().items()
                                    if spec.kind is MethodKind.ONLINE] + ["random"])
def test_every_method_trains_on_the_device(method):
    records = trial(method, DEVICE)
    assert len(records) == 2
    for r in records:
        assert r["device"].startswith(DEVICE)
        assert np.isfinite([r["train_loss"], r["val_loss"], r["test_loss"]]).all()
        assert not (r["diverged"] or r["collapsed"])
    assert records[-1]["val_loss"] < math.log(10)  # below chance: it learned


@pytest.mark.parametrize("optimizer", ["fixed", "adam", "cosine"])
def test_families_train_on_the_device(optimizer):
    records = trial("random", DEVICE, optimizer=optimizer)
    assert records[-1]["device"].startswith(DEVICE) and records[-1]["val_loss"] < math.log(10)


@pytest.mark.parametrize("method", ["random", "oho", "oho-layerwise"])
def test_a_float64_trial_on_the_device_follows_the_cpu(method):
    """Same seeds, same batch order (drawn on the CPU): the device's float64 run follows the
    CPU's to rounding, epoch by epoch, hyperparameters included."""
    runs = {d: trial(method, d, dtype="float64") for d in dict.fromkeys([DEVICE, "cpu"])}
    keys = ["train_loss", "val_loss", "test_loss"] + [k for k in runs["cpu"][-1]
                                                      if k.startswith("hp_")]
    for on_device, on_cpu in zip(runs[DEVICE], runs["cpu"], strict=True):
        for k in keys:
            assert on_device[k] == pytest.approx(on_cpu[k], rel=1e-7), k


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 autocast is for CUDA devices")
def test_amp_trains_a_black_box_trial_on_cuda():
    shape, gen = tasks.get("mnist-cnn").shape, torch.Generator().manual_seed(0)

    def draw(n: int):
        return torch.randn(n, *shape.example, generator=gen), torch.randint(10, (n,), generator=gen)

    splits = tasks.Splits(*draw(1000), *draw(500), *draw(500))
    records = run_trial({"task": "mnist-cnn", "method": "random", "hparams": {"lr": 0.05},
                         "seed": 0, "epochs": 1, "amp": True, "device": "cuda"}, splits=splits)
    assert records[0]["device"].startswith("cuda") and np.isfinite(records[0]["test_loss"])


@pytest.mark.parametrize("method", ["random", "oho", "t1t2", "controller"])
def test_a_trial_on_the_device_continues_from_its_checkpoint(method, tmp_path):
    """Saved on the device and read back: the model's tensors come back there, the generators'
    states and the controller's policy on the CPU, and the continued run follows the first."""
    from bench import checkpoints

    config = {"task": "digits", "method": method, "hparams": {"lr": 0.05, "wd": 1e-4},
              "seed": 3, "epochs": 3, "device": DEVICE}
    saved = []

    def save(state):
        checkpoints.save(tmp_path, state)
        saved.append(checkpoints.load(tmp_path))

    first = run_trial(config, checkpoint=save)
    state = saved[0]["train"]
    assert {p.device.type for p in state.params.values()} == {DEVICE}
    assert state.rngs["batch"].device.type == "cpu"
    continued = run_trial(config, resume=saved[0])
    for a, b in zip(first, continued, strict=True):
        for k in ["train_loss", "val_loss", "test_loss"] + [k for k in a if k.startswith("hp_")]:
            assert a[k] == pytest.approx(b[k], rel=1e-6), k
