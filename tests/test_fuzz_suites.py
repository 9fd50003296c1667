"""A seeded fuzz of the shipped suite files: value-level mutations, each checked as
`ohobench run --suite F --dry-run` checks it. Every case ends in a clean refusal (exit 2, one
line per problem, no traceback) or is accepted, within a few seconds: no traceback, no hang.
The cost estimate itself (which trains a few steps per method) is replaced by planning the
suite's experiments, the part a mutated count could make endless."""

import copy
import math
import random
import time
import tomllib
from pathlib import Path

import pytest

from bench import cli, estimate, suite
from bench.experiment import plan

SUITES = sorted((Path(__file__).parents[1] / "suites").glob("*.toml"))
CASES = 200
VALUES = [0, -1, 1, 2**63, 9223372036854775808, 10**12, 0.5, -0.0, math.nan, math.inf, "",
          "x" * 300, "oho", "fifo", "auto", True, False, [], [1, "a"], ["oho", "oho"], {},
          {"lr": [1, 2]}, [1e-3, 0.5], [0.5, 1e-3], ["a", "b"], {"x": {"y": 1}}, "é\u2603"]


def paths(values, prefix=()):
    """Every key path to a value in a (nested) table."""
    for k, v in values.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from paths(v, (*prefix, k))


def mutate(values, rng):
    out = copy.deepcopy(values)
    path = rng.choice(list(paths(out)))
    table = out
    for k in path[:-1]:
        table = table[k]
    if rng.random() < 0.1:
        del table[path[-1]]
    else:
        table[path[-1]] = copy.deepcopy(rng.choice(VALUES))
    return out


def test_mutated_suites_are_refused_in_lines_or_accepted_never_a_traceback(
        monkeypatch, capsys):
    rng = random.Random(20261207)
    monkeypatch.setattr(estimate, "estimate", lambda chosen: plan(chosen) and [])
    monkeypatch.setattr(estimate, "format_estimate", lambda costs, slots: "estimated")
    originals = {p: tomllib.loads(p.read_text()) for p in SUITES}
    outcomes = {0: 0, 2: 0}
    for case in range(CASES):
        source = SUITES[case % len(SUITES)]
        mutated = mutate(originals[source], rng)
        monkeypatch.setattr(suite, "read_toml", lambda _path, v=mutated: copy.deepcopy(v))
        start = time.monotonic()
        code = cli.main(["run", "--suite", str(source), "--dry-run"])
        seconds = time.monotonic() - start
        err = capsys.readouterr().err
        assert code in outcomes, (source.name, mutated, err)
        assert "Traceback" not in err and seconds < 5, (source.name, mutated, seconds)
        if code == 2:
            assert err.startswith("ohobench: error: "), err
        outcomes[code] += 1
    assert outcomes[2] > CASES // 2  # most mutations are refused ...
    assert outcomes[0] > 0  # ... and some are harmless


@pytest.mark.parametrize("text, expected", [
    (b'\xff\xfe name = "x"\n', "is not UTF-8 text (byte 0xff at offset 0)"),
    (b'methods = [1, "a"]\n[options.oho]\nmeta_lr = 1e-5\n', "methods: expected a list of "
     "names (strings), got [1, 'a']"),
    (b"repetitions = 9223372036854775807\n", "repetitions: 9223372036854775807 is more than"),
    (b'name = "' + b"a" * 300 + b'"\n', "name: 300 characters is too long"),
])
def test_what_the_fuzz_found_is_refused_in_one_line(tmp_path, capsys, text, expected):
    path = tmp_path / "suite.toml"
    path.write_bytes(text)
    assert cli.main(["run", "--suite", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
