"""How fast unit identification gets a new recording to its converged R2 on this CPU.

    python benchmarks/transfer_speed.py [--model RUN --recording FILE] [--steps 600] [--converged-steps 3000]

Runs unit identification on one recording twice from the same pretrained model: the default length
(--steps, timed end to end: setup, training, saving) and a long run (--converged-steps) scored on
the test split along the way. Prints the wall time and test R2 of the default run, the converged
R2, their gap (the target: at most 0.03 within 2 minutes on 2 cores), and when the long run first
came within 0.03 of its final R2. Without --model it takes (or pretrains) the model of
`neuropoyo experiment transfer --out /tmp/neuropoyo-transfer` and uses the simulated recording of
a pretrained animal on another day (111 units). Wall times are of this machine only when nothing
else runs on it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from neuropoyo.machine import machine_line

from neuropoyo.trained import load_model
from neuropoyo.data.store import open_recording
from neuropoyo.experiments.transfer import simulated_recordings, r2_on_test_split
from neuropoyo.training.finetune import FinetuneConfig, finetune
from neuropoyo.training.loop import MODEL_DIR, train
from neuropoyo.training.recipe import default_config
from neuropoyo.tokens.vocab import unit_keys

DEFAULT_EXPERIMENT = Path("/tmp/neuropoyo-transfer")


def default_case() -> tuple[Path, Path]:
    pretrain, held_out, _ = simulated_recordings(DEFAULT_EXPERIMENT / "data")
    model = DEFAULT_EXPERIMENT / "seed0" / "pretrained"
    if not (model / MODEL_DIR).is_dir():
        config, note = default_config(len(pretrain))  # as `neuropoyo experiment transfer` pretrains
        print(f"pretraining into {model} ({note})", flush=True)
        train(config, pretrain, model, progress=False)
    return model, held_out["seen"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="pretrained run or model directory")
    parser.add_argument("--recording", type=Path, help="the new recording (.h5) to identify")
    parser.add_argument("--steps", type=int, default=600, help="default unit-identification length")
    parser.add_argument("--converged-steps", type=int, default=3000, help="length of the long run")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    model, recording = (args.model, args.recording) if args.model else default_case()
    units = len(unit_keys(open_recording(recording)))
    print(f"model {model}; recording {recording} ({units} units)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        finetune(model, [recording], Path(folder) / "short", FinetuneConfig(max_steps=args.steps), progress=False)
        short_seconds = time.perf_counter() - started
        short_r2 = r2_on_test_split(load_model(Path(folder) / "short" / MODEL_DIR), recording)
        print(f"unit identification, {args.steps} steps: {short_seconds:.0f} s wall, test R2 {short_r2:.4f}", flush=True)

        curve, clock = [], time.perf_counter()
        marks = set(range(50, args.converged_steps + 1, 50))

        def score(step, trained):
            nonlocal clock
            if step in marks:
                paused = time.perf_counter()
                curve.append((step, paused - clock, r2_on_test_split(trained, recording)))
                clock += time.perf_counter() - paused  # scoring time is not training time

        clock = time.perf_counter()
        finetune(model, [recording], Path(folder) / "long", FinetuneConfig(max_steps=args.converged_steps),
                 progress=False, after_step=score)
    final = curve[-1][2]
    close = next((step, seconds) for step, seconds, r2 in curve if r2 >= final - 0.03)
    print(f"converged ({args.converged_steps} steps): test R2 {final:.4f}; gap of the {args.steps}-step run "
          f"{final - short_r2:+.4f} (target <= 0.03)")
    print(f"the long run is within 0.03 of its final R2 from step {close[0]} ({close[1]:.0f} s of training)")
    print("step, training seconds, test R2: " + "; ".join(f"{s}, {t:.0f}, {r:.3f}" for s, t, r in curve[::6]))


if __name__ == "__main__":
    main()
