"""Unit identification of a new simulated calcium session against a model trained on it from scratch.

    python benchmarks/calcium_transfer.py [--seeds 3] [--steps 900] [--uid-steps 600] [--out DIR]

Issue 35's target: unit identification of a new simulated calcium session (new ROIs) reaches at
least 90 % of a from-scratch model's accuracy. One model is pretrained (CPU recipe) on spike and
calcium sessions of two simulated animals together, decoding hand velocity and the reach target (a
label stream over each reach); the new session is a third day of animal 0 imaged at 15 Hz. Per
seed (pretraining, scratch and identification all use it): test R2 of hand velocity and test
accuracy of the reach target (one decision per trial) for POYO from scratch on the new session and
for unit identification (new ROI and session rows only), then the ratio identification / scratch
and the paired difference. Prints mean +- sd over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.labels import trial_label_stream
from neuropoyo.data.simulate import Lab, make_animal, simulate_calcium, simulate_session
from neuropoyo.data.splits import assign_splits
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.machine import machine_line
from neuropoyo.training.finetune import FinetuneConfig, finetune
from neuropoyo.training.recipe import default_config
from neuropoyo.training.loop import train

CLASSES = [str(k) for k in range(8)]


def session(animal, day: int, *, calcium: bool):
    """A center-out session decoding hand velocity and its reach target, split by trial."""
    recording = simulate_session(animal=animal, day=day, task="center_out", lab=Lab("sim_lab_a", 100.0), seed=day)
    if calcium:
        recording = simulate_calcium(recording, seed=day)
    target = trial_label_stream(recording.trials, "target_id", start_column="move_onset_time", classes=tuple(CLASSES))
    behavior = {"hand_vel": recording.behavior["hand_vel"], "target": target}
    return assign_splits(dataclasses.replace(recording, behavior=behavior), seed=0)


def config(recordings: int, steps: int, seed: int, lr: float | None = None):
    """The CPU recipe for ``recordings`` recordings decoding both streams (``lr``: its own if None)."""
    run, _ = default_config(recordings)
    model = dataclasses.replace(run.model, readouts={"hand_vel": 2, "target": 8}, classes={"target": CLASSES})
    training = dataclasses.replace(run.training, max_steps=steps, seed=seed, lr=lr or run.training.lr)
    return dataclasses.replace(run, model=model, training=training)


def scores(run_dir: Path, data, split: str = "test") -> tuple[float, float]:
    """(mean R2 of hand velocity, mean accuracy of the target) of the model on ``split``."""
    summary = evaluate(run_dir, data, None, split=split, progress=False)
    return summary["mean_r2"], summary["mean_accuracy"]


def spread(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} +- {values.std(ddof=1) if values.size > 1 else 0.0:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=900, help="pretraining and from-scratch steps")
    parser.add_argument("--uid-steps", type=int, default=600, help="unit-identification steps")
    parser.add_argument("--pretrain-lr", type=float, default=4e-3, help="pretraining lr (the recipe's on 2+ recordings)")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    root = args.out or Path(tempfile.mkdtemp(prefix="neuropoyo-calcium-transfer-"))
    animals = [make_animal(f"sim_mouse{k}", n_neurons=60, seed=k) for k in range(2)]
    pretrain = write_dataset(
        [session(animal, day, calcium=calcium) for animal in animals for day, calcium in ((0, False), (1, True))],
        root / "pretrain",
    )
    new = write_dataset([session(animals[0], 2, calcium=True)], root / "new")
    rows = []
    for seed in range(args.seeds):
        pre = train(config(len(pretrain), args.steps, seed, args.pretrain_lr), pretrain, root / f"pre{seed}", progress=False)
        pre_valid = scores(pre.run_dir, pretrain, "valid")
        print(f"seed {seed}: pretrained, valid R2 {pre_valid[0]:.3f}, accuracy {pre_valid[1]:.3f}", flush=True)
        scratch = train(config(1, args.steps, seed), new, root / f"scratch{seed}", progress=False)
        uid = finetune(
            pre.run_dir, new, root / f"uid{seed}", FinetuneConfig(max_steps=args.uid_steps, seed=seed), progress=False
        )
        row = {"seed": seed, "scratch": scores(scratch.run_dir, new), "uid": scores(uid.run_dir, new)}
        rows.append(row)
        print(f"seed {seed}: scratch R2 {row['scratch'][0]:.3f} acc {row['scratch'][1]:.3f}; "
              f"unit-id R2 {row['uid'][0]:.3f} acc {row['uid'][1]:.3f}", flush=True)
    print(f"\n{args.seeds} seeds; pretraining {args.steps} steps on {len(pretrain)} sessions (2 spike, 2 calcium), "
          f"unit identification {args.uid_steps} steps; new session: 60 neurons imaged at 15 Hz")
    print("| metric | from scratch | unit identification | ratio uid / scratch | uid - scratch (paired) | seeds uid >= 0.9 x scratch |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, name in enumerate(("hand_vel R2", "target accuracy")):
        scratch = [r["scratch"][k] for r in rows]
        uid = [r["uid"][k] for r in rows]
        ratio = [u / s for u, s in zip(uid, scratch)]
        hits = sum(u >= 0.9 * s for u, s in zip(uid, scratch))
        print(f"| {name} | {spread(scratch)} | {spread(uid)} | {spread(ratio)} | "
              f"{spread(np.subtract(uid, scratch))} | {hits}/{len(rows)} |")
    print("chance accuracy 0.125; test trials: 20 % of 100")


if __name__ == "__main__":
    main()
