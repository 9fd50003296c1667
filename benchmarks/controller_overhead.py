"""How much slower per training step is the `controller` method than plain SGD training of its
largest child?

Run from the repository root:

    python benchmarks/controller_overhead.py --threads 1

Models: the digits task's MLP 64-64-64-10 on its real data (batch 32, widths 16/32/64) and an
MNIST-shaped MLP 784-128-128-128-10 on generated data (batch 100, widths 32/64/128). The
baseline is `methods.sgd.SGD` on the task's full model (the largest child with its relu),
through `ctx.loss` as the harness calls it. Every configuration trains its own copy of the
parameters from the same initialization on the same batches (sliced before timing), with a
`StepContext` built as `bench.harness.train` builds it; after a warm-up, `--rounds`
interleaved rounds of `--steps` steps (alternating which goes first); ratio = median ms/step
of the controller / median ms/step of SGD in the same round set. Targets: <= 2x with
response = none, <= 4x with ift and 5 Neumann terms (at the default every_k = 10). Rows
`[largest only]` (widths = the largest alone) always sample the largest child: the cost of the
machinery alone, since a sampled smaller child trains faster than the largest. Rows
`[every_k=1]`: a policy step (and response gradient) at every training step. A measurement,
not a test: it exits 0 either way.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from online_overhead import (  # benchmarks/, on sys.path when run as a script
    MNIST,
    Runner,
    interleaved,
    prepared,
)

import bench.tasks
from methods.base import parse_options
from methods.controller import ControllerMethod, ControllerOptions
from methods.sgd import SGD

WARMUP = 20  # steps before timing


MODELS = {"digits": (bench.tasks.DIGITS, (16, 32, 64)), "mnist": (MNIST, (32, 64, 128))}


def configs(widths: tuple[int, ...]) -> list[tuple[str, dict, float | None]]:
    """(label, controller options, target)."""
    big = (max(widths),)
    return [("none", {"response": "none"}, 2.0),
            ("one-step", {"response": "one-step"}, None),
            ("ift K=5", {"response": "ift", "neumann_terms": 5}, 4.0),
            ("none [largest only]", {"response": "none", "widths": big}, None),
            ("ift K=5 [largest only]", {"response": "ift", "widths": big}, None),
            ("none [every_k=1]", {"response": "none", "every_k": 1}, None),
            ("one-step [every_k=1]", {"response": "one-step", "every_k": 1}, None),
            ("ift K=5 [every_k=1]", {"response": "ift", "every_k": 1}, None)]


def time_table(key: str, args, device: torch.device) -> None:
    task, widths = MODELS[key]
    splits, trainee, batches = prepared(task, device)
    bs = task.batch_size
    print(f"\nmodel={key}: {task.description}; batch={bs} widths={widths} device={device} "
          f"threads={torch.get_num_threads()} steps={args.steps} rounds={args.rounds}")
    print(f"{'config':<28}{'ms/step':>9}{'sgd ms':>8}{'ratio':>8}{'target':>9}  verdict")
    method = ControllerMethod()
    for label, given, target in configs(widths):
        if args.configs and label not in args.configs:
            continue
        options, problems = parse_options(ControllerOptions, {"widths": widths, **given}, label)
        problems = problems or method.problems_for(options, task)
        if problems:
            print(f"{label:<28}skipped: {'; '.join(problems)}")
            continue
        runners = {"sgd": Runner(SGD(), trainee.initial_params(), trainee, splits, batches,
                                 device),
                   label: Runner(method.update_rule(options), trainee.initial_params(), trainee,
                                 splits, batches,
                                 device)}
        times = interleaved(runners, args.steps, args.rounds, WARMUP)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med[label] / med["sgd"]
        verdict = "-" if target is None else ("PASS" if ratio <= target else "FAIL")
        tgt = f"<= {target:g}x" if target else ""
        print(f"{label:<28}{med[label] * 1e3:>9.3f}{med['sgd'] * 1e3:>8.3f}{ratio:>7.2f}x"
              f"{tgt:>9}  {verdict}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    ap.add_argument("--steps", type=int, default=100, help="steps per round (a multiple of "
                    "every_k keeps each round's share of policy steps exact)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: leave)")
    ap.add_argument("--models", default="digits,mnist", help=f"from {','.join(MODELS)}")
    ap.add_argument("--configs", type=lambda v: [c.strip() for c in v.split(",")],
                    help="only these rows, by label (default: all)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    for key in (k.strip() for k in args.models.split(",")):
        time_table(key, args, device)


if __name__ == "__main__":
    main()
