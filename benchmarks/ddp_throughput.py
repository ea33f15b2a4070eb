"""Training throughput: one process against torchrun's N processes on the same machine.

    python benchmarks/ddp_throughput.py [--processes 2] [--steps 60] [--rounds 2] [--config cpu-small]

Simulated recordings (``neuropoyo simulate``, 2 animals x 2 days x 2 tasks) are trained on with the
same run file and global batch, alternately by ``neuropoyo train`` in one process (all cores as
its threads) and by ``torchrun --standalone --nproc-per-node N -m neuropoyo train`` (each rank its
share of the cores), A, B, A, B. From each run's metrics.csv: the median seconds per step over the
steps after the first 10 (start-up and compilation of kernels excluded; validation runs only at
the last step, which is excluded too), and real input tokens per second. Prints the medians over
rounds and the ratio (one process / N processes). Nothing else should run on the machine.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from neuropoyo.machine import machine_line

SKIP = 10  # first steps left out: start-up, first allocations


def step_figures(metrics: Path) -> tuple[float, float]:
    """(median seconds per step, real tokens per second) over steps SKIP..last-1 of a run's log."""
    with open(metrics) as f:
        rows = list(csv.DictReader(f))
    seconds = [float(r["seconds"]) for r in rows]
    durations = [b - a for a, b in zip(seconds[SKIP - 1 : -2], seconds[SKIP:-1])]
    tokens = sum(int(r["tokens"]) for r in rows[SKIP:-1])
    return statistics.median(durations), tokens / (seconds[-2] - seconds[SKIP - 1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="cpu-small")
    args = parser.parse_args(argv)
    print(machine_line())
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        subprocess.run(
            [sys.executable, "-m", "neuropoyo", "simulate", "--out", str(data), "--animals", "2", "--days", "2"],
            check=True, capture_output=True,
        )
        train = ["-m", "neuropoyo", "train", "--config", args.config, "--data", str(data), "--max-steps", str(args.steps)]
        launchers = {
            "1 process": [sys.executable],
            f"{args.processes} processes": [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.processes),
            ],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in launchers}
        for round_ in range(args.rounds):
            for name, launcher in launchers.items():
                out = Path(folder) / f"{name.replace(' ', '_')}_{round_}"
                subprocess.run([*launcher, *train, "--out", str(out)], check=True, capture_output=True)
                results[name].append(step_figures(out / "metrics.csv"))
                print(f"round {round_}: {name}: {results[name][-1][0] * 1000:.0f} ms/step", flush=True)
        print(f"{'launch':>12} {'ms/step':>8} {'tokens/s':>9}")
        medians = {}
        for name, figures in results.items():
            medians[name] = (statistics.median(f[0] for f in figures), statistics.median(f[1] for f in figures))
            print(f"{name:>12} {medians[name][0] * 1000:>8.0f} {medians[name][1]:>9,.0f}")
        single, many = medians["1 process"][0], medians[f"{args.processes} processes"][0]
        print(f"speed-up of {args.processes} processes over 1: {single / many:.2f}x")


if __name__ == "__main__":
    main()
