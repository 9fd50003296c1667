import pytest

from bench.results import TIMING
from bench.trial import run_trial


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.fixture
def digits_trial():
    def run(method="random", epochs=2, **overrides):
        config = {"task": "digits", "method": method, "hparams": {"lr": 0.1, "wd": 1e-4},
                  "seed": 3, "epochs": epochs, "device": "cpu", **overrides}
        return run_trial(config)
    return run
