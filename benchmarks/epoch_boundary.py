"""Epoch-boundary cost of the training DataLoader: this tree against a baseline source tree.

    python benchmarks/epoch_boundary.py [--steps 50] [--repeats 3] [--workers 2] [--batch-size 128]
        [--baseline-src OLD/src] [--out DIR]

Simulates one center-out session (`neuropoyo simulate --animals 1 --days 1 --tasks center_out
--trials 100`; about 5 steps per epoch at batch 128), then runs `neuropoyo train` on it with the
tree's small model (demo.yaml in older trees, models/cpu-small.yaml since: both dim 64, depth 2,
32 latents) and `num_workers: --workers` for --steps steps, once per tree and repeat,
interleaved (A, B, A, B, ...). The baseline tree (e.g. `git worktree add OLD 84a7db4`: that commit
rebuilt the DataLoader and its workers every epoch) runs with PYTHONPATH=--baseline-src. From each
RUN/metrics.csv (`seconds` = wall time since training started, at the end of each step) it prints
steps/s over all steps and the mean time of the first step of each epoch ("boundary") vs the other
steps. Step 0 (first worker start-up, in both trees) counts in steps/s but in neither mean.
Medians over repeats.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from neuropoyo.machine import machine_line

NEW_SRC = Path(__file__).resolve().parents[1] / "src"


def small_model(src: Path) -> Path:
    """The tree's small model preset: models/cpu-small.yaml, or demo.yaml inside the package or in
    <repo>/configs in older trees."""
    configs = src / "neuropoyo" / "configs"
    for path in (configs / "models" / "cpu-small.yaml", configs / "demo.yaml", src.parent / "configs" / "demo.yaml"):
        if path.is_file():
            return path.resolve()
    raise FileNotFoundError(f"no small model preset (models/cpu-small.yaml or demo.yaml) in the source tree {src}")


def cli(src: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "neuropoyo.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True)


def step_times(metrics: Path) -> tuple[float, float, float]:
    """(steps/s, mean boundary-step s, mean other-step s) from one run's metrics.csv."""
    with open(metrics) as f:
        rows = [(int(r["epoch"]), float(r["seconds"])) for r in csv.DictReader(f)]
    boundary, other = [], []
    for i in range(1, len(rows)):
        (epoch, seconds), (previous_epoch, previous) = rows[i], rows[i - 1]
        (boundary if epoch != previous_epoch else other).append(seconds - previous)
    return len(rows) / rows[-1][1], _mean(boundary), _mean(other)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--baseline-src", type=Path, help="source tree of the 'before' peer")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix="neuropoyo-epoch-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    trees = {"new": NEW_SRC}
    if args.baseline_src:
        trees["old"] = args.baseline_src.resolve()

    data = out / "data"
    sim = ("simulate", "--out", str(data), "--animals", "1", "--days", "1")
    done = cli(NEW_SRC, *sim, "--tasks", "center_out", "--trials", "100")
    if done.returncode:
        sys.exit(f"simulate failed:\n{done.stderr}")

    run_files = {}
    for name, src in trees.items():
        run_files[name] = out / f"run_{name}.yaml"
        run_files[name].write_text(
            f"model: {small_model(src)}\ntraining:\n  batch_size: {args.batch_size}\n"
            f"  num_workers: {args.workers}\n  max_steps: {args.steps}\n"
            "  checkpoint_every: 100000\n  lr: 1.0e-2\n"
        )

    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    for repeat in range(args.repeats):
        for name, src in trees.items():
            run = out / "runs" / f"{name}_{repeat}"
            train = ("train", "--config", str(run_files[name]), "--data", str(data), "--out", str(run))
            done = cli(src, *train)
            if done.returncode:
                print(f"{name} run {repeat} failed:\n{done.stderr.strip()[-3000:]}\n")
                continue
            results[name].append(step_times(run / "metrics.csv"))
            rate, boundary, other = results[name][-1]
            print(f"{name} run {repeat}: {rate:.2f} steps/s, boundary {boundary * 1e3:.0f} ms, "
                  f"other {other * 1e3:.0f} ms")

    print(f"\n{machine_line()}")
    print(f"{args.steps} steps, batch {args.batch_size}, num_workers {args.workers}, "
          f"{args.repeats} repeats, data {data}\n")
    print("| tree | source | median steps/s | median boundary-step ms | median other-step ms |")
    print("|---|---|---:|---:|---:|")
    medians = {}
    for name, rows in results.items():
        if not rows:
            print(f"| {name} | {trees[name]} | failed | | |")
            continue
        medians[name] = [statistics.median(column) for column in zip(*rows)]
        rate, boundary, other = medians[name]
        print(f"| {name} | {trees[name]} | {rate:.2f} | {boundary * 1e3:.0f} | {other * 1e3:.0f} |")
    if "new" in medians and "old" in medians:
        print(f"\nsteps/s new/old: {medians['new'][0] / medians['old'][0]:.2f}x")
    print(f"\ncommand: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
