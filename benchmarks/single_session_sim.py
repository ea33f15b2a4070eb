"""Single-session POYO on simulated recordings: one model per recording, test R2 per recording.

    python benchmarks/single_session_sim.py [--steps 1500] [--out /tmp/neuropoyo-single]

Simulates the demo's dataset (2 animals x 1 day x {center-out, random-target}), trains the CPU
recipe (run file `cpu-small`) on each recording alone for --steps steps, evaluates on its test split and
prints the table with the command that reproduces each row.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.training.config import RunConfig
from neuropoyo.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="neuropoyo-single-")))
    args = parser.parse_args()
    data = args.out / "data"
    paths = write_dataset(
        simulate_dataset(
            n_animals=2, sessions_per_animal=1, n_trials=args.trials, duration_s=args.duration
        ),
        data,
    )
    config = RunConfig.from_yaml("cpu-small")
    config = dataclasses.replace(
        config, training=dataclasses.replace(config.training, max_steps=args.steps)
    )
    rows = []
    for path in paths:
        started = time.perf_counter()
        run = train(config, [path], args.out / "runs" / path.stem, progress=False)
        summary = evaluate(run.run_dir, [path], args.out / "eval" / path.stem)
        (record,) = summary["recordings"].values()
        rows.append((path.stem, record["task"], record["r2"], time.perf_counter() - started))
        print(f"{path.stem:<22} {record['task']:<14} R2 {record['r2']:.4f}  ({rows[-1][3]:.0f} s)")
    print()
    print("| recording | task | test R2 | train+eval s |\n|---|---|---:|---:|")
    for name, task, r2, seconds in rows:
        print(f"| {name} | {task} | {r2:.4f} | {seconds:.0f} |")
    print(
        f"\ncommand: python benchmarks/single_session_sim.py --steps {args.steps} "
        f"--trials {args.trials} --duration {args.duration}"
    )
    print(
        "per recording: neuropoyo train --config cpu-small --data DATA/<id>.h5 "
        f"--out RUN --max-steps {args.steps} && neuropoyo evaluate --model RUN --data DATA/<id>.h5 "
        "--out EVAL"
    )


if __name__ == "__main__":
    main()
