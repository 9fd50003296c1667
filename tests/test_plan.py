"""The typed plan: a suite's options parsed once, at `suite.build`, and stored resolved in
run.json (schema 3), which older runs reach through one migration."""

import json

from bench import experiment, results, suite
from methods import base

VALUES = {"tasks": ["digits"], "methods": ["random", "oho", "rtho"], "repetitions": 2,
          "schedulers": ["fifo", "asha"], "space": {"wd": [0.0, 2e-3]},
          "options": {"oho": {"meta_lr": 2e-5}}}


def test_options_are_parsed_once_at_build_and_never_by_the_plan(monkeypatch):
    calls = []
    real = base.parse_options
    monkeypatch.setattr(suite, "parse_options", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    monkeypatch.setattr(base, "parse_options", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    chosen = suite.build(VALUES)
    assert sorted(calls) == ["options.oho", "options.random", "options.rtho"]  # one task
    calls.clear()
    exps = experiment.plan(chosen)
    assert calls == []
    oho = [e for e in exps if e.method == "oho"]
    assert {id(e.options) for e in oho} == {id(chosen.options_for("oho", "digits"))}
    assert oho[0].options.meta_lr == 2e-5 and oho[0].options.wd_max == 2e-3  # bound: the range
    assert {e.scheduler.max_t for e in exps if e.scheduler.name == "asha"} == {
        chosen.epochs_for("digits")}


def test_run_json_stores_what_the_suite_resolved_per_task(tmp_path):
    chosen = suite.build(VALUES)
    record = chosen.record()
    json.dumps(record)  # plain JSON
    assert suite.build(results.suite_values(record)) == chosen  # the suite reads back
    digits = record["tasks"]["digits"]
    assert (digits["epochs"], digits["batch_size"], digits["val_batch_size"]) == (
        chosen.epochs_for("digits"), 32, 32)
    assert digits["options"]["oho"]["meta_lr"] == 2e-5
    assert digits["options"]["oho"]["wd_max"] == 2e-3
    assert digits["schedulers"]["asha"]["max_t"] == chosen.epochs_for("digits")
    assert set(digits["schedulers"]) == {"fifo", "asha"}


def test_a_schema_2_run_json_is_migrated_once_on_reading(tmp_path):
    old = {"schema": 2, "suite": {"tasks": ["digits", "not-installed"], "epochs": None,
                                  "batch_size": 16, "val_batch_size": None, "seed": 3}}
    (tmp_path / results.RUN_JSON).write_text(json.dumps(old))
    info = results.read_run(tmp_path)
    assert info["schema"] == results.RUN_SCHEMA == 3
    assert info["tasks"]["digits"]["epochs"] == suite.build({}).epochs_for("digits")
    assert info["tasks"]["digits"]["batch_size"] == info["tasks"]["digits"]["val_batch_size"] == 16
    assert info["tasks"]["not-installed"]["epochs"] is None  # a plugin task: as written
    from bench.analysis import runs
    assert runs.definition(info, "digits") == {
        "seed": 3, "epochs": info["tasks"]["digits"]["epochs"], "batch_size": 16,
        "val_batch_size": 16}
