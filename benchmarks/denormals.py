"""Do denormal floats slow a collapsed trial down? An MNIST MLP forward+backward, timed with
normal weights and with weights decayed into the denormal range (|w| < 1.2e-38 in float32),
with torch's flush-to-zero off and on. Thread CPU time, one torch thread, interleaved rounds.

    python benchmarks/denormals.py
"""

from __future__ import annotations

import copy
import statistics
import time

import torch


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return (time.thread_time() - start) / n


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    normal = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                 torch.nn.Linear(128, 128), torch.nn.ReLU(),
                                 torch.nn.Linear(128, 128), torch.nn.ReLU(),
                                 torch.nn.Linear(128, 10))
    tiny = copy.deepcopy(normal)
    with torch.no_grad():
        for p in tiny.parameters():
            p.mul_(1e-39)  # as after a long decay toward zero
    x, y = torch.randn(100, 784), torch.randint(0, 10, (100,))
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(5):
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            for name, model in (("normal", normal), ("denormal", tiny)):
                times.setdefault((name, flush), []).append(step_seconds(model, x, y, 20))
    torch.set_flush_denormal(False)
    base = statistics.median(times[("normal", False)])
    for (name, flush), ts in times.items():
        med = statistics.median(ts)
        print(f"{name:9s} weights, flush_denormal={flush!s:5s}: {med * 1e3:7.2f} ms per step "
              f"(range {min(ts) * 1e3:.2f}-{max(ts) * 1e3:.2f}), {med / base:5.2f}x normal")


if __name__ == "__main__":
    main()
