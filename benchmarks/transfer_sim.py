"""Transfer to a new animal on simulated data: unit identification and finetuning against a model
trained from scratch on the new recording alone.

    python benchmarks/transfer_sim.py [--out DIR] [--pretrained RUN] [--trials 14] [--steps 600]

Simulates 3 animals x 2 days of center-out reaching (100 trials each; `neuropoyo simulate --animals
3 --sessions 2 --tasks center_out --trials 100`), pretrains the demo model (`demo_run.yaml`, 1,500
steps) on animals 0 and 1 (or takes --pretrained), holds out animal 2 entirely, and on its first
day compares: single-session POYO from scratch on all its training trials (`demo_run.yaml`),
unit identification on all of them and on the first --trials (20 % of the session's 70 training
trials by default), and full finetuning on those. Prints test R2 and wall times, and the commands.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.training.config import RunConfig
from neuropoyo.training.loop import train
from neuropoyo.transfer import FinetuneConfig, finetune


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def timed(label: str, run) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.0f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="working folder (default: a new temp folder)")
    parser.add_argument("--pretrained", type=Path, help="a run trained on animals 0 and 1 already")
    parser.add_argument("--trials", type=int, default=14, help="few-shot training trials")
    parser.add_argument("--steps", type=int, default=600, help="finetuning steps")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="transfer-sim-"))
    recordings = simulate_dataset(n_animals=3, sessions_per_animal=2, tasks=("center_out",), n_trials=100)
    pretrain = write_dataset([r for r in recordings if "monkey2" not in r.recording_id], out / "pretrain")
    new = write_dataset([r for r in recordings if r.recording_id == "sim_monkey2_day0_co"], out / "new")
    demo = RunConfig.from_yaml("demo_run.yaml")
    seconds = {}
    pretrained = args.pretrained
    if pretrained is None:
        pretrained = out / "pretrained"
        seconds["pretrain"] = timed("pretrain", lambda: train(demo, pretrain, pretrained, progress=False))
    runs = {
        "POYO from scratch (all trials)": lambda run: train(demo, new, run, progress=False),
        "unit identification (all trials)": lambda run: finetune(
            pretrained, new, run, FinetuneConfig(max_steps=args.steps), progress=False
        ),
        f"unit identification ({args.trials} trials)": lambda run: finetune(
            pretrained, new, run, FinetuneConfig(max_steps=args.steps, trials=args.trials), progress=False
        ),
        f"full finetuning ({args.trials} trials)": lambda run: finetune(
            pretrained, new, run, FinetuneConfig(mode="full", max_steps=args.steps, trials=args.trials),
            progress=False,
        ),
    }
    scores = {}
    for k, (label, run) in enumerate(runs.items()):
        folder = out / f"run{k}"
        shutil.rmtree(folder, ignore_errors=True)
        seconds[label] = timed(label, lambda: run(folder))
        scores[label] = evaluate(folder, new, out / f"eval{k}")["mean_r2"]
    print(f"\n{cpu_model()}; held-out animal 2, day 0, test R2")
    print("| method | test R2 | wall time (s) |\n|---|---:|---:|")
    for label, score in scores.items():
        print(f"| {label} | {score:.4f} | {seconds[label]:.0f} |")
    print(
        f"\ncommand: python benchmarks/transfer_sim.py --trials {args.trials} --steps {args.steps}"
        + (f" --pretrained {args.pretrained}" if args.pretrained else "")
    )


if __name__ == "__main__":
    main()
