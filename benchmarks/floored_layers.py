"""Is an lr at its floor late in training OHO's form of early stopping, or a loss?

    python benchmarks/floored_layers.py [--layerwise FILE] [--global FILE]

Reads the stability runs of oho-layerwise (shared influence) and global oho at the same
initializations (results/stability/mnist-*.jsonl: repetition r is the same draw in both).
Per layerwise run whose lr sat at its floor: the epoch it got there, which layer group, the
test loss then and at the end, and the same initialization under global OHO; then the final
test loss of layerwise minus global, floored runs against the others. Per floored group: how
often its last hypergradient of an epoch was positive (pushing its lr down) before the floor,
against the other groups'. A measurement: exit 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent / "results" / "stability"


def runs(path: Path) -> dict[int, list[dict]]:
    return {(r := json.loads(line))["repetition"]: r["records"]
            for line in path.read_text().splitlines() if line.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layerwise", type=Path, default=ROOT / "mnist-oho-layerwise.jsonl")
    ap.add_argument("--global", dest="global_", type=Path, default=ROOT / "mnist-oho.jsonl")
    args = ap.parse_args()
    layerwise, global_ = runs(args.layerwise), runs(args.global_)
    gaps = {True: [], False: []}
    for rep in sorted(layerwise):
        rec, other = layerwise[rep], global_.get(rep)
        if other is None:
            continue
        floored = [r["epoch"] for r in rec if r.get("lr_floored")]
        gaps[bool(floored)].append(rec[-1]["test_loss"] - other[-1]["test_loss"])
        if not floored:
            continue
        e = floored[0]
        groups = sorted(int(k.rsplit("_", 1)[1]) for k in rec[0] if k.startswith("hp_lr_"))
        low = min(groups, key=lambda k: rec[e - 1][f"hp_lr_{k}"])
        hg = np.array([r[f"hg_lr_{low}"] for r in rec[:e]])
        rest = np.array([[r[f"hg_lr_{k}"] for k in groups if k != low] for r in rec[:e]])
        print(f"rep {rep}: group {low}'s lr at its floor from epoch {e} ({len(floored)} epochs "
              f"flagged); layerwise test loss then {rec[e - 1]['test_loss']:.4f}, at the end "
              f"{rec[-1]['test_loss']:.4f}; global oho, same init: {other[e - 1]['test_loss']:.4f}"
              f" then, {other[-1]['test_loss']:.4f} at the end; hg_lr > 0 before the floor: "
              f"group {low} {np.mean(hg > 0):.0%} of epochs, the others {np.mean(rest > 0):.0%}")
    for floored, values in gaps.items():
        if values:
            print(f"{'floored' if floored else 'not floored'} runs ({len(values)}): final test "
                  f"loss, layerwise minus global, median {statistics.median(values):+.4f}, "
                  f"range {min(values):+.4f} to {max(values):+.4f}")


if __name__ == "__main__":
    main()
