import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import ConfigError
from methods import all_methods


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.fixture
def suite_file(tmp_path):
    def write(text):
        path = tmp_path / "suite.toml"
        path.write_text(text)
        return str(path)
    return write


@pytest.mark.parametrize("argv, expected", [
    (["--task", "mnist"], "unknown task 'mnist'; valid: cifar10-resnet18, digits"),
    (["--method", "tpe"], "unknown method 'tpe'; valid: " + ", ".join(sorted(all_methods()))),
    (["--epochs", "0"], "epochs: must be >= 1, got 0"),
    (["--trials", "0"], "trials: must be >= 1, got 0"),
    (["--repetitions", "-1"], "repetitions: must be >= 1, got -1"),
    (["--train-eval-size", "-5"], "train_eval_size: must be >= 0 (0 = the whole training split)"),
    (["--device", "tpu"], "device: 'tpu' is not one of auto, cpu, cuda"),
    (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
    (["--suite", "/nonexistent/suite.toml"], "cannot read suite file '/nonexistent/suite.toml'"),
])
def test_bad_run_flags_get_one_line_and_exit_2(capsys, tmp_path, argv, expected):
    code, err = run_cli(capsys, "run", "--out", str(tmp_path / "out"), *argv)
    assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize("text, expected", [
    ('epochs = 3\nbudget = 4\n', "unknown key 'budget'; valid: name, tasks"),
    ('[space]\nlr = [0.5, 0.001]\n', "lr: range [0.5, 0.001] is empty or inverted"),
    ('[space]\nlr = [0.0, 0.1]\n', "learning rate must be positive"),
    ('[space]\nmomentum = [0.0, 1.5]\n', "momentum must lie in [0, 1), got range [0.0, 1.5]"),
    ('[space]\nbeta2 = [0.9, 0.99]\n', "unknown hyperparameter 'beta2'; valid: lr, momentum, wd"),
    ('optimizers = ["fixed", "sgdr"]\n',
     "unknown optimizer 'sgdr'; valid: adam, cosine, exp, fixed, step"),
    ('[space.adam]\nlr = [1e-4, 1e-2]\n', "space.adam: 'adam' is not an optimizer family"),
    ('optimizers = ["adam"]\n[space.adam]\nbeta1 = [0.5, 1.0]\n',
     "space (digits, adam): beta1: Adam's beta1 must lie in [0, 1)"),
    ('budget_seconds = 0\n', "budget_seconds: must be a positive number of seconds"),
    ('[options.hd]\nbetta = 1\n', "options.hd: unknown option 'betta'; valid: beta, lr_min"),
    ('methods = ["oho"]\n[options.oho]\nwd_max = 0.0\n',
     "options.oho.wd_max: must be a finite number > 0"),
    ('methods = ["oho"]\n[options.oho]\nwd_max = 1e-4\n',
     "wd_max: 0.0001 is below the top of the initial wd range (0.001)"),
    ('methods = ["rtho"]\n[options.rtho]\nlr_max = 1e-7\n',
     "options.rtho.lr_max: must be > lr_min = 1e-06, got 1e-07"),
    ('methods = ["marthe"]\n[options.marthe]\nclip = inf\n',
     "options.marthe.clip: must be a finite number, got inf"),
    ('methods = ["hd"]\n[options.hd]\nbeta = inf\n',
     "options.hd.beta: must be a finite number, got inf"),
    ('methods = ["hd", "random", "hd"]\n', "methods: 'hd' is named twice; name each method once"),
    ('methods = ["oho"]\n[options.oho]\nclip = -1.0\n',
     "options.oho.clip: must be a finite number >= 0, got -1.0"),
    ('methods = ["hd"]\n[options.hd]\nlr_max = 1e-9\n',
     "options.hd.lr_max: must be a finite number > lr_min = 1e-06"),
    ('epochs = "many"\n', "epochs: expected int, got 'many'"),
    ('epochs = [\n', "is not valid TOML"),
    ('schedulers = ["asha"]\n[scheduler.asha]\ngrace_period = 0\n',
     "scheduler.asha.grace_period: must be >= 1, got 0"),
    ('schedulers = ["asha"]\n[scheduler.asha]\nreduction_factor = 1\n',
     "scheduler.asha.reduction_factor: must be >= 2, got 1"),
    ('schedulers = ["hyperband"]\n[scheduler.hyperband]\nreduction_factor = 1\n',
     "scheduler.hyperband.reduction_factor: must be >= 2, got 1"),
    ('schedulers = ["hyperband"]\n[scheduler.hyperband]\nreduction_factor = 2.5\n',
     "scheduler.hyperband.reduction_factor: expected int, got 2.5"),
    ('epochs = 4\nschedulers = ["asha"]\n[scheduler.asha]\nmax_t = 5\n',
     "scheduler.asha.max_t: 5 is more than the trials' 4 epochs; give at most the epochs"),
    ('epochs = 4\nschedulers = ["asha"]\n[scheduler.asha]\ngrace_period = 5\n',
     "scheduler.asha.grace_period: 5 epochs is more than max_t = 4, so no trial could be "
     "stopped"),
    ('schedulers = ["asha"]\n[scheduler.asha]\nrungs = 3\n',
     "scheduler.asha: unknown option 'rungs'; valid: grace_period, reduction_factor, brackets, "
     "max_t"),
    ('[scheduler.asha]\ngrace_period = 2\n',
     "scheduler.asha: scheduler 'asha' is not in this suite's schedulers (fifo)"),
    ('schedulers = ["fifo"]\n[scheduler.median]\nx = 1\n',
     "scheduler.median: unknown scheduler 'median'; valid: asha, fifo, hyperband"),
    ('methods = ["random", "asha"]\n[options.asha]\nreduction_factor = 2\n',
     "method 'asha' is now the scheduler asha"),
])
def test_bad_suite_files_are_named(capsys, suite_file, text, expected):
    code, err = run_cli(capsys, "run", "--suite", suite_file(text))
    assert code == 2 and expected in err and len(err.splitlines()) == 1


def test_every_problem_is_listed_at_once(capsys, suite_file):
    code, err = run_cli(capsys, "run", "--suite", suite_file("trials = 0\nfoo = 1\n"),
                        "--task", "nope")
    assert code == 2 and all(p in err for p in ("trials", "'foo'", "'nope'"))


def test_address_without_a_cluster_fails_fast(capsys):
    start = time.monotonic()
    code, err = run_cli(capsys, "run", "--address", "127.0.0.1:1")
    assert code == 2 and "no Ray cluster answers" in err
    assert time.monotonic() - start < 10


def test_report_on_a_non_run_directory(capsys, tmp_path):
    code, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and "is not a run directory" in err


def test_console_script_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--method", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ohobench: error: unknown method 'nope'")


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--suite", "--address", "--gpus-per-trial", "--trials"))


def test_dry_run_prints_the_estimate_and_runs_nothing(capsys, tmp_path):
    code = main(["run", "--out", str(tmp_path / "out"), "--dry-run", "--task", "digits",
                 "--method", "random", "--method", "oho", "--trials", "3", "--repetitions", "2",
                 "--epochs", "5", "--scheduler", "fifo", "--scheduler", "asha"])
    out = capsys.readouterr().out
    assert not code, out
    assert "random · fixed" in out and "\ndigits             oho " in out and "total:" in out
    assert "random · asha · fixed" in out and "oho · asha" not in out  # online: fifo only
    assert not (tmp_path / "out").exists()


def test_the_estimate_scales_the_timed_steps_to_the_suite(tmp_path):
    from bench import estimate, suite

    s = suite.build({"tasks": ["digits", "mnist-mlp"], "methods": ["random", "hd"],
                     "trials": 3, "repetitions": 2, "epochs": 5, "train_eval_size": 100,
                     "data_dir": str(tmp_path)}, need_data=False)  # no MNIST here: random data
    costs = {(c.task, c.label): c for c in estimate.estimate(s)}
    assert set(costs) == {("digits", "random · fixed"), ("digits", "hd"),
                          ("mnist-mlp", "random · fixed"), ("mnist-mlp", "hd")}
    random, hd = costs[("mnist-mlp", "random · fixed")], costs[("mnist-mlp", "hd")]
    assert (random.trials, hd.trials, random.epochs) == (6, 2, 5)
    assert random.steps_per_epoch == 500 and random.eval_examples == 100 + 10_000 + 10_000
    assert "random data" in random.data and costs[("digits", "hd")].data == "its data"
    assert random.step_seconds > 0 and random.eval_seconds_per_example > 0
    assert random.seconds == pytest.approx(6 * 5 * (500 * random.step_seconds
                                                   + 20_100 * random.eval_seconds_per_example))
    assert "total:" in estimate.format_estimate(list(costs.values()), slots=2)


@pytest.mark.parametrize("path", sorted(str(p) for p in
                                        (Path(__file__).parents[1] / "suites").glob("*.toml")))
def test_every_shipped_suite_file_is_valid(path):
    from bench import suite

    suite.build(suite.read_toml(path), where=path, need_data=False)  # raises on any problem


@pytest.mark.parametrize("argv, expected", [
    (["--method", "random", "--method", "random"], "methods: 'random' is named twice"),
    (["--name", "/../../x"], "name: '/../../x' is not a plain name; use letters, digits"),
    (["--name", "a/b"], "name: 'a/b' is not a plain name"),
    (["--name", ""], "name: '' is not a plain name"),
    (["--seed", "-1"], "seed: must be 0 to 4294967295, got -1"),
    (["--out", "{tmp}/file"], "--out '{tmp}/file': '{tmp}/file' is a file, not a directory"),
    (["--out", "/proc/ohobench"], "--out '/proc/ohobench': cannot write in '/proc'"),
    (["--storage", "foo://x"], "--storage 'foo://x': unknown scheme 'foo://'; give a path"),
    (["--storage", "{tmp}/file/ray"], "--storage '{tmp}/file/ray': '{tmp}/file' is a file"),
    (["--storage", "/proc/ohobench"], "--storage '/proc/ohobench': cannot write in '/proc'"),
    (["--resume", ""], "--resume: give the run directory to continue"),
    (["--scheduler", "median"], "unknown scheduler 'median'; valid: asha, fifo, hyperband"),
    (["--method", "random", "--scheduler", "asha", "--scheduler", "asha"],
     "schedulers: 'asha' is named twice"),
    (["--method", "hd", "--method", "oho", "--scheduler", "fifo", "--scheduler", "asha"],
     "schedulers: asha applies to the trials of black-box searches only, and this suite's "
     "methods (hd, oho) are all online"),
    (["--method", "asha"], 'method \'asha\' is now the scheduler asha: random search under '
     'ASHA is methods = ["random"] with schedulers = ["asha"] (--method random --scheduler '
     'asha), its options in [scheduler.asha]'),
])
def test_bad_input_is_refused_before_anything_starts(capsys, tmp_path, argv, expected):
    import ray

    (tmp_path / "file").write_text("")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, err = run_cli(capsys, "run", "--out", str(tmp_path / "out"), *argv)
    assert code == 2 and expected.format(tmp=tmp_path) in err and len(err.splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # nothing created
    assert not ray.is_initialized()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only directory")
def test_a_read_only_output_directory_is_refused(capsys, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    code, err = run_cli(capsys, "run", "--out", str(tmp_path / "ro" / "out"))
    assert code == 2 and "cannot write in" in err and "Permission denied" in err


@pytest.mark.parametrize("text", ["{}", "[]", '{"suite": null}'])
def test_resume_of_a_run_json_without_a_suite_is_refused(capsys, tmp_path, text):
    (tmp_path / "run.json").write_text(text)
    code, err = run_cli(capsys, "run", "--resume", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1
    assert "not a run directory (run.json holds no suite table" in err


@pytest.mark.parametrize("run_json, columns, expected", [
    ("[]", {"task": ["digits"]}, "run.json holds no suite table: it is not an ohobench run's"),
    ("{}", {"a": [1.0], "b": ["x"]}, "its records.parquet lacks the columns task, method"),
])
def test_report_of_a_foreign_run_is_refused(capsys, tmp_path, run_json, columns, expected):
    import pandas as pd

    (tmp_path / "run.json").write_text(run_json)
    pd.DataFrame(columns).to_parquet(tmp_path / "records.parquet")
    code, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and expected in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("target", ["inf", "nan", "0"])
def test_report_target_must_be_positive_and_finite(capsys, tmp_path, target):
    code, err = run_cli(capsys, "report", str(tmp_path), "--target", target)
    expected = f"--target must be a positive, finite test loss, got {float(target)}"
    assert code == 2 and expected in err


def test_address_auto_naming_a_stale_cluster_fails_fast(capsys, tmp_path, monkeypatch):
    from bench import probes

    (tmp_path / "ray_current_cluster").write_text("127.0.0.1:1\n")  # its cluster was killed
    monkeypatch.setattr(probes, "RAY_CURRENT_CLUSTER", tmp_path / "ray_current_cluster")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    start = time.monotonic()
    code, err = run_cli(capsys, "run", "--address", "auto")
    assert code == 2 and len(err.splitlines()) == 1
    assert "--address auto: the cluster at 127.0.0.1:1 (named in " in err
    assert "does not answer" in err
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("argv, expected", [
    (["--cpus-per-trial", "inf"], "cpus_per_trial: must be a finite number > 0, got inf"),
    (["--gpus-per-trial", "inf"], "gpus_per_trial: must be a finite number >= 0, got inf"),
])
def test_infinite_resources_are_refused(capsys, argv, expected):
    code, err = run_cli(capsys, "run", *argv)
    assert code == 2 and expected in err


def test_resources_no_node_has_are_refused_naming_what_the_cluster_has(capsys, tmp_path):
    import ray

    code, err = run_cli(capsys, "run", "--cpus-per-trial", "1000", "--out", str(tmp_path / "o"))
    err = err.splitlines()[-1]  # Ray's own warnings may come first
    assert code == 2 and "--cpus-per-trial 1000 --gpus-per-trial 0: no node of this Ray " in err
    assert f"at most {os.cpu_count()} CPUs and 0 GPUs" in err
    assert not (tmp_path / "o").exists() and not ray.is_initialized()


def test_gpus_no_node_has_are_refused(monkeypatch):
    import ray

    from bench import probes, suite

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 8.0}}])
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    with pytest.raises(ConfigError, match="at most 8 CPUs and 0 GPUs"):
        probes.check_resources(suite.build({"gpus_per_trial": 1.0}))
    probes.check_resources(suite.build({"cpus_per_trial": 8.0}))  # fits
