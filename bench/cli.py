"""ohobench command line: list, run, report, horizon, verdict, calibrate, status."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import textwrap
from pathlib import Path

from bench.errors import ConfigError, RunInterrupted, SearchesErrored
from bench.progress import auto_mode

RUN_FLAGS = {  # flag -> (suite key, type, help)
    "--name": ("name", str, "run name, used in the run directory's name"),
    "--task": ("tasks", str, "task to run (repeatable); see `ohobench list`"),
    "--method": ("methods", str, "method to run (repeatable); see `ohobench list`"),
    "--optimizer": ("optimizers", str, "optimizer family black-box trials train with "
                    "(repeatable): fixed, adam, step, exp, cosine"),
    "--scheduler": ("schedulers", str, "scheduler black-box searches run under (repeatable; "
                    "each its own entry): fifo (default), asha, hyperband, pbt, pb2; online "
                    "methods: fifo"),
    "--repetitions": ("repetitions", int, "independent searches / initializations per method"),
    "--trials": ("trials", int, "black-box budget: trials per repetition"),
    "--budget-seconds": ("budget_seconds", float, "black-box budget: wall-clock seconds per "
                         "repetition (running trials are stopped; their time counts)"),
    "--max-failures": ("max_failures", int, "retries of a trial that raises (default 0)"),
    "--epochs": ("epochs", int, "epochs per trial (default: the task's)"),
    "--batch-size": ("batch_size", int, "training batch size (default: the task's)"),
    "--val-batch-size": ("val_batch_size", int,
                         "validation batch size for hypergradients (default: batch size)"),
    "--train-eval-size": ("train_eval_size", int, "training examples evaluated per epoch, a "
                          "fixed random subset (default 0: all)"),
    "--seed": ("seed", int, "suite seed: data split, searches and model initializations"),
    "--purpose": ("purpose", str, "development (default) or evaluation: a published study, "
                  "which refuses the development seeds (bench/seeds.py)"),
    "--device": ("device", str, "auto, cpu, cuda or cuda:N"),
    "--max-concurrent": ("max_concurrent", int, "trials of one search at once, at most "
                       "--trials (0: 4 for a model-based search, others as resources allow)"),
    "--cpus-per-trial": ("cpus_per_trial", float, "CPUs reserved per trial"),
    "--gpus-per-trial": ("gpus_per_trial", float, "GPUs per trial; fractions share a GPU"),
    "--amp": ("amp", bool, "bf16 autocast of training losses on CUDA (black-box methods; "
              "tasks mnist-cnn, cifar10-resnet18)"),
    "--data-dir": ("data_dir", str, "dataset files, e.g. DIR/MNIST/raw/ (default: "
                   "$OHOBENCH_DATA, else ./data)"),
    "--download": ("download", bool, "download missing dataset files (never otherwise)"),
    "--target": ("target", float, "test-loss target (default: median final test loss)"),
    "--out": ("out", str, "directory that holds run directories"),
    "--address": ("address", str, "existing Ray cluster, HOST:PORT or auto"),
    "--storage": ("storage", str, "where Ray Tune keeps snapshots and trial files: a path "
                  "every node reaches, or a URI such as s3://bucket/dir (default: RUN_DIR/ray; "
                  "required on a cluster of several nodes)"),
}
RESUME_FLAGS = ("address", "storage", "data_dir")  # what --resume may change: where it runs
LIST_FLAGS = ("tasks", "methods", "optimizers", "schedulers")
COMPUTE = {"default": "flops", "choices": ("flops", "calibrated", "measured"),
           "help": "the compute clock of time-to-target: flops (default: SGD-epochs counted in "
                   "FLOPs, the same on every machine), calibrated (SGD-epochs from steps timed "
                   "side by side on the run's device: `ohobench calibrate`) or measured "
                   "(training seconds as measured; they move with the machine's load). Files "
                   "get -calibrated or -measured"}
REACH = {"default": "sustained", "choices": ("sustained", "first-touch"),
         "help": "when a target counts as reached: sustained (default: from the first moment "
                 "the choice's test loss stays at or below it to the end) or first-touch (its "
                 "first dip below it)"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ohobench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("list", help="list tasks and methods")
    run = sub.add_parser("run", help="run a benchmark suite through Ray Tune",
                         description="Run a suite. Flags override the suite file. With no "
                         "arguments: the quick benchmark (digits; random search vs hd and oho).")
    run.add_argument("--suite", help="suite TOML file (see suites/)")
    for flag, (key, typ, text) in RUN_FLAGS.items():
        if typ is bool:  # a switch; None when absent, so that the suite file's value stands
            run.add_argument(flag, dest=key, action="store_const", const=True, help=text)
            continue
        repeat = key in LIST_FLAGS
        run.add_argument(flag, dest=key, type=typ, help=text,
                         action="append" if repeat else "store")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run: finished "
                     "trials are kept, the others rerun, and searches that raised start over "
                     "(also in a finished run); the suite comes from RUN_DIR/run.json")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--dry-run", action="store_true", help="check the suite and print its "
                     "estimated cost (each method timed for a few steps here); run nothing")
    rep = sub.add_parser("report", help="summarize one or more run directories",
                         description="Print the comparison table and write it as CSV and "
                         "Markdown into the (first) run directory; several runs are combined "
                         "into one table (summary-combined.*).")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                     help="a run directory (printed at the end of `ohobench run`)")
    rep.add_argument("--target", type=float, help="test-loss target (default: the runs', "
                     "else the median final test loss over all methods of a task)")
    rep.add_argument("--plots", action="store_true",
                     help="also write figures (PNG and PDF) into RUN_DIR/figures/")
    rep.add_argument("--compute", **COMPUTE)
    rep.add_argument("--reach", **REACH)
    hor = sub.add_parser("horizon", help="the horizon study: each entry at several epoch "
                         "budgets", description="Final test loss and time-to-target of every "
                         "entry at each epoch budget, from runs of that budget or, where exact, "
                         "from the first epochs of a longer run (bench.analysis.horizon). "
                         "Writes horizon.csv, horizon.md and horizon.png/.pdf into --out.")
    hor.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    hor.add_argument("--horizons", required=True, help="epoch budgets, e.g. 10,30,100")
    hor.add_argument("--out", help="where to write (default: the first RUN_DIR)")
    hor.add_argument("--compute", **COMPUTE)
    ver = sub.add_parser("verdict", help="online methods against black-box searches at equal "
                         "compute, with verdicts", description="Each online method against "
                         "the best black-box entry at equal compute and at the search's full "
                         "budget: difference of medians, P(improvement), both with 95% "
                         "intervals, a verdict and the difference this n could detect "
                         "(bench.analysis.verdict). Random search and ASHA are replayed from the "
                         "pool of random search's trials. Writes verdict.md, verdict.csv, "
                         "equal-compute.csv and equal-compute.png/.pdf into --out.")
    ver.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ver.add_argument("--out", help="where to write (default: the first RUN_DIR)")
    ver.add_argument("--compute", default="flops", choices=("flops", "calibrated"),
                     help="the compute unit (default flops: SGD-epochs counted in FLOPs)")
    ver.add_argument("--budgets", default="1,2,4,8", help="budgets in runs of each online "
                     "method, e.g. 1,2,4,8 (the search's full budget is always added)")
    ver.add_argument("--searches", type=int, default=10_000,
                     help="replayed searches per budget (random search, ASHA, Hyperband)")
    ver.add_argument("--every-entry", action="store_true", help="verdicts against every "
                     "black-box entry at every budget, not the best one at 1x and full")
    cal = sub.add_parser("calibrate", help="count and time every training of a run",
                         description="Count the FLOPs of every training of a run (an online "
                         "method, or a black-box optimizer family) and time its steps side by "
                         "side, interleaved, on this machine's device; store both in the run's "
                         "run.json (`--compute calibrated` reads the timings).")
    cal.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    cal.add_argument("--device", help="auto (the default), cpu, cuda or cuda:N")
    cal.add_argument("--flops-only", action="store_true", help="count FLOPs only and time "
                     "nothing (what a run from before counts were stored needs, so that "
                     "reports read the counts instead of counting again)")
    sta = sub.add_parser("status", help="how far a run has come",
                         description="Per entry of a run, read from its journals while it runs "
                         "or after it stopped: trials ended and training now, epochs and "
                         "SGD-epochs done against the plan; then whether a driver runs it, the "
                         "pace over the last hour (or since its latest resume) and, at that pace, "
                         "the time left (bench/status.py).")
    sta.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    return parser


def warn_broken_plugins() -> None:
    """A plugin that fails to load is named in one line; only a run that uses it fails."""
    # methods and tasks import torch (seconds): kept off `ohobench --help` and bad flags
    import methods
    from bench import registry, tasks

    for line in registry.warnings(methods.all_methods(), tasks.all_tasks()):
        print(line, file=sys.stderr)


def cmd_list() -> None:
    # methods, tasks and schedulers import torch (seconds): kept off `ohobench --help`
    import methods
    from bench import space, tasks
    from bench.schedulers import SCHEDULERS
    from methods import optimizers

    warn_broken_plugins()
    print("tasks:")
    for name, task in sorted(tasks.all_tasks().items()):
        ranges = ", ".join(f"{k} {space.describe(d)}" for k, d in task.space.items())
        optional = ", ".join(f"{k} {space.describe(d)}" for k, d in task.optional_space.items())
        print(f"  {name:18s} {task.description}\n  {'':18s} space: {ranges}"
              + (f"; a suite's [space] may add: {optional}" if optional else ""))
    print("optimizer families (black-box trials train with them; `optimizers` in a suite; "
          "ranges shown for 20 epochs):")
    for name, family in optimizers.FAMILIES.items():
        extra = ", ".join(f"{k} {space.describe(d)}" for k, d in family.extra(20).items())
        lr = f"; lr {space.describe(family.lr)}" if family.lr else ""
        print(f"  {name:18s} {family.description}{lr}{'; ' + extra if extra else ''}")
    print("schedulers (black-box searches run under each; `schedulers` in a suite, options "
          "with their defaults in `[scheduler.NAME]`; max_t=0: the trials' epochs):")
    for name, options_type in SCHEDULERS.items():
        print(f"  {name:18s} {options_type.description}")
        if options := option_defaults(options_type):
            print(textwrap.fill(options, width=100, initial_indent=" " * 21,
                                subsequent_indent=" " * 23, break_on_hyphens=False))
    print("methods (options with their defaults; `[options.NAME]` in a suite):")
    for name, m in sorted(methods.all_methods().items()):
        tuned = ", ".join(m.tunes) if m.tunes else "the task's space"
        print(f"  {name:18s} [{m.kind.value}] {m.description}; tunes: {tuned}")
        if options := option_defaults(m.options_type):
            print(textwrap.fill(options, width=100, initial_indent=" " * 21,
                                subsequent_indent=" " * 23, break_on_hyphens=False))


def option_defaults(options_type: type) -> str:
    """name=default for every option; None bounds read as the suite's range they default to."""
    parts = []
    for f in dataclasses.fields(options_type):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value is None and f.name in options_type.BOUNDS:
            value = f"top of the {options_type.BOUNDS[f.name]} range"
        parts.append(f"{f.name}={value}")
    return ", ".join(parts)


def cmd_run(args: argparse.Namespace) -> None:
    # bench.suite imports torch (seconds): kept off `ohobench --help` and bad flags
    from bench import suite

    flags = {key: getattr(args, key) for key, *_ in RUN_FLAGS.values()
             if getattr(args, key) is not None}
    resume = None
    if args.resume is not None:
        resume, values = resumable(args.resume, args.suite, flags)
        where = str(resume / "run.json")
    else:
        values = suite.read_toml(args.suite) if args.suite else {}
        where = args.suite or "suite"
    values.update(flags)
    chosen = suite.build(values, where=where, need_data=not args.dry_run)
    if args.dry_run:
        # the estimator (the trial code, timed here): only --dry-run needs it
        from bench import estimate

        print(f"suite {chosen.name!r} is valid; estimating its cost ...", flush=True)
        print(estimate.format_estimate(estimate.estimate(chosen), estimate.local_slots(chosen)))
        return
    # Ray (~1.5 s): loaded once the suite is valid, so that a bad one is refused without it
    from bench import runner

    run_dir = runner.run(chosen, auto_mode(args.quiet), resume)
    print_report(run_dir, chosen.target)
    print(f"\nresults: {run_dir}\n  table: {run_dir / 'records.parquet'}"
          f"\n  report again: ohobench report {run_dir}")
    if errored := search_errors([run_dir]):
        raise SearchesErrored(errored)


def resumable(run_dir: str, suite_file: str | None, flags: dict) -> tuple[Path, dict]:
    """The run directory to resume and its suite, or one line saying why not."""
    # pandas (0.5-1 s): kept off `ohobench --help`
    from bench import results

    if not run_dir:
        raise ConfigError("--resume: give the run directory to continue (RUN_DIR, as printed "
                          "by `ohobench run`)")
    path = Path(run_dir).resolve()
    changed = [f"--{k.replace('_', '-')}" for k in flags if k not in RESUME_FLAGS]
    if suite_file:
        changed.insert(0, "--suite")
    if changed:
        raise ConfigError(f"--resume continues {run_dir!r} with its own suite; drop "
                          f"{', '.join(changed)} (only --address, --storage and --data-dir "
                          "may change)")
    info = results.read_run(path, what="--resume")
    if not isinstance(info.get("suite"), dict):
        raise ConfigError(f"--resume {run_dir!r}: not a run directory ({results.RUN_JSON} "
                          "holds no suite table)")
    if info.get("finished") and not search_errors([path]):
        raise ConfigError(f"--resume {run_dir!r}: this run finished; see `ohobench report "
                          f"{run_dir}`")
    return path, results.suite_values(info)


def print_report(run_dirs: Path | str | list, target: float | None,
                 plots: bool = False, unit: str = "flops", reach: str = "sustained") -> None:
    """Print the summary of one run, or of several combined, and write it (summary.csv,
    summary.md; summary-combined.* for several runs; -measured or -calibrated for those units)
    and with `plots` the figures (figures/, figures-combined/, ...) into the first run
    directory."""
    # pandas, scipy and torch (seconds): kept off `ohobench --help` and bad flags
    from bench import analysis, compute, report
    from bench.analysis import writers

    dirs = [Path(d) for d in (run_dirs if isinstance(run_dirs, list | tuple) else [run_dirs])]
    df, meta = analysis.load_runs(dirs, target, unit)
    say_unfinished([str(d) for d in dirs], "report", meta["unfinished"])
    if df.empty:
        print("\nno trial finished an epoch, so there is nothing to compare (a time budget "
              "shorter than Ray's start-up and one epoch?)")
        return
    suffix = ("-combined" if len(dirs) > 1 else "") + writers.unit_suffix(unit)
    out = dirs[0]
    figures_dir = out / f"figures{suffix}"
    writable(out, figures_dir if plots else None)
    table = report.summary(df, target or meta["targets"], meta["overhead"], reach,
                           meta["raised"])
    errored = search_errors(dirs)
    notes = "".join(f"\n- {line}" for line in errored)
    writers.write_summary(out, suffix, dirs, table, unit, reach, errored)
    print(f"\nfinal test loss over repetitions (choice by validation loss) and time-to-target "
          f"in {compute.UNIT_NAMES[unit]}:")
    print(report.format_summary(table))
    if errored:
        print("searches that raised and ended early (their ended trials are above):" + notes)
    if plots:
        # matplotlib and seaborn (~1 s): only --plots draws
        from bench.analysis import plots as figures

        targets = dict(zip(table["task"], table["target"], strict=False))
        for line in figures.write_figures(df, figures_dir, meta["options"], targets):
            print(line)


def search_errors(run_dirs: list[Path]) -> list[str]:
    """'experiment: error' for every search that raised, from the runs' run.json."""
    # pandas (0.5-1 s): kept off `ohobench --help`
    from bench import results

    lines = []
    for d in run_dirs:
        try:
            info = results.read_run(d)
        except ConfigError:
            continue
        for exp in info.get("experiments", []) if isinstance(info, dict) else []:
            if isinstance(exp, dict) and exp.get("search_error"):
                lines.append(f"{exp.get('name')}: {exp['search_error']}")
    return lines


def writable(out: Path, figures_dir: Path | None) -> None:
    """One line, not a traceback, when the report cannot be written."""
    try:
        if figures_dir is not None:
            figures_dir.mkdir(parents=True, exist_ok=True)
        for d in (out, figures_dir):
            if d is not None:
                with tempfile.TemporaryFile(dir=d):
                    pass
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {str(exc.filename or out)!r}: "
                          f"{exc.strerror or exc}") from None


def cmd_report(args: argparse.Namespace) -> None:
    if args.target is not None and not (args.target > 0 and math.isfinite(args.target)):
        raise ConfigError(f"--target must be a positive, finite test loss, got {args.target}")
    print_report(args.run_dirs, args.target, args.plots, args.compute, args.reach)


def parse_horizons(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"--horizons {text!r}: expected epoch budgets >= 1 separated by "
                          "commas, e.g. 10,30,100")
    return sorted(set(values))


def say_unfinished(run_dirs, what: str, trials: dict[str, int] | None = None) -> None:
    """One line per run that has not finished: what `what` covers of it (`trials`: per run,
    the trials ended, where known)."""
    # pandas and matplotlib (seconds): kept off `ohobench --help` and bad flags
    from bench.analysis import writers

    for run in writers.unfinished(run_dirs):
        ended = f"the {trials[run]} trial(s)" if trials and run in trials else "the trials"
        print(f"ohobench: {run} has not finished: this {what} covers {ended} it has ended so "
              "far, from its journals (`ohobench run --resume` continues it)")


def cmd_horizon(args: argparse.Namespace) -> None:
    budgets = parse_horizons(args.horizons)
    # pandas, scipy and torch (seconds): loaded once the flags are good
    from bench.analysis import horizon, writers

    tables = horizon.at_horizons(args.run_dirs, budgets, args.compute)
    say_unfinished(args.run_dirs, "horizon study")
    missing = [h for h in budgets if h not in tables]
    if missing:
        raise ConfigError(f"no run of at least {missing[0]} epochs among the runs given; "
                          "each budget needs a run of that many epochs or more")
    table = horizon.horizon_table(tables)
    out = Path(args.out or args.run_dirs[0])
    name = "horizon" + writers.unit_suffix(args.compute)
    writable(out, out)
    writers.write_horizon(out, name, args.run_dirs, table, args.compute)
    print(horizon.displayed(table).to_string(index=False))
    print(horizon.targets_note(table))
    print(f"wrote {out / name}.md, .csv, .png and .pdf")


MAX_SEARCHES = 1_000_000


def parse_multiples(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < v < math.inf for v in values):
        raise ConfigError(f"--budgets {text!r}: expected positive multiples of one online run "
                          "separated by commas, e.g. 1,2,4,8")
    return sorted(set(values))


def cmd_verdict(args: argparse.Namespace) -> None:
    multiples = parse_multiples(args.budgets)
    if not 1 <= args.searches <= MAX_SEARCHES:
        raise ConfigError(f"--searches {args.searches}: give 1 to {MAX_SEARCHES:,}")
    # pandas, scipy and torch (seconds): loaded once the flags are good
    from bench import analysis
    from bench.analysis import verdict, writers

    df, meta = analysis.load_runs(args.run_dirs, unit=args.compute)
    say_unfinished(args.run_dirs, "verdict", meta["unfinished"])
    settings = verdict.Settings(searches=args.searches, multiples=multiples,
                                every_entry=args.every_entry)
    curves, verdicts = verdict.analyse(df, settings)
    out = Path(args.out or args.run_dirs[0])
    writable(out, out)
    suffix = writers.unit_suffix(args.compute)
    pairs = verdict.paired(df)
    aggregate, profile = verdict.across_tasks(df, verdict.references(curves))
    writers.write_verdict(out, suffix, args.run_dirs, args.compute, curves, verdicts, pairs,
                          aggregate, profile, meta["settings"])
    print(verdict.displayed(verdicts).to_string(index=False))
    if len(pairs):
        print(verdict.displayed_paired(pairs).to_string(index=False))
    across = ""
    if len(aggregate):  # several tasks: rliable's aggregate view
        print(verdict.displayed_across(aggregate).to_string(index=False))
        across = (f"; across-tasks{suffix}.csv, across-tasks-profile{suffix}.csv, "
                  f"across-tasks{suffix}.png and .pdf")
    print(f"wrote {out / f'verdict{suffix}.md'}, .csv, verdict-paired{suffix}.csv, "
          f"equal-compute{suffix}.csv, .png and .pdf{across}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    # torch and pandas (seconds): kept off `ohobench --help` and bad flags
    from bench import compute, results, suite

    if args.flops_only and args.device:
        raise ConfigError(f"--device {args.device}: --flops-only times nothing, so it runs on "
                          "no device; give one or the other")
    for d in args.run_dirs:
        path = Path(d) / results.RUN_JSON
        info = results.read_run(d, what="calibrate")
        chosen = suite.build(results.suite_values(info), where=str(path), need_data=False)
        print(f"{d}: counting {'' if args.flops_only else 'and timing '}every training ...",
              flush=True)
        costs = compute.costs_for(chosen, None if args.flops_only else args.device or "auto")
        info["compute"] = compute.as_rows(costs)
        results.write_json(info, path)
        for c in costs:
            timed = "" if args.flops_only else \
                f", {c.calibrated_sgd_epochs:6.2f} (timed on {c.device})"
            print(f"  {c.task:<14} {c.training:<28} {c.sgd_epochs:6.2f} SGD-epochs per epoch "
                  f"(FLOPs){timed}")


def cmd_status(args: argparse.Namespace) -> None:
    # the plan and the FLOP counts import torch (seconds): kept off `ohobench --help`
    from bench import status

    print("\n\n".join(status.describe(Path(d)) for d in args.run_dirs))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "list":
            cmd_list()
        elif args.command == "run":
            warn_broken_plugins()
            cmd_run(args)
        elif args.command == "horizon":
            cmd_horizon(args)
        elif args.command == "calibrate":
            cmd_calibrate(args)
        elif args.command == "verdict":
            cmd_verdict(args)
        elif args.command == "status":
            cmd_status(args)
        else:
            cmd_report(args)
    except ConfigError as exc:
        print(f"ohobench: error: {exc}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(f"ohobench: {exc}", file=sys.stderr)
        return exc.exit_code
    except SearchesErrored as exc:
        for line in exc.lines:
            print(f"ohobench: search errored: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ohobench: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
