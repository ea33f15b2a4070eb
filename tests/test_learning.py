"""Learnability: a small POYO trained for a short time on one simulated center-out session decodes
held-out hand velocity, and the same run on time-shuffled behavior does not."""

import dataclasses

import numpy as np
import pytest

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.recording import TimeSeries
from neuropoyo.data.simulate import Lab, make_animal, simulate_session
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.training.config import PRESET_DIR, RunConfig
from neuropoyo.training.loop import train

STEPS = 200


def block_shuffled(stream: TimeSeries, block_s: float, rng: np.random.Generator) -> TimeSeries:
    """The stream's values with 1 s blocks permuted in time: same statistics, no alignment to spikes."""
    block = np.floor((stream.timestamps - stream.timestamps[0]) / block_s).astype(int)
    order = rng.permutation(block.max() + 1)
    rows = np.concatenate([np.flatnonzero(block == b) for b in order])  # a permutation of all rows
    return TimeSeries(stream.timestamps, stream.values[rows], stream.unit)


def run(tmp_path, name, recording):
    data = tmp_path / name / "data"
    write_dataset([recording], data)
    config = RunConfig.from_yaml(PRESET_DIR / "runs" / "cpu-small.yaml")
    config = dataclasses.replace(
        config, training=dataclasses.replace(config.training, max_steps=STEPS)
    )
    result = train(config, [data], tmp_path / name / "run", progress=False)
    return evaluate(result.run_dir, [data], tmp_path / name / "eval")["mean_r2"]


@pytest.fixture(scope="module")
def session():
    animal = make_animal("monkey_l", n_neurons=80, seed=3)
    return simulate_session(
        animal=animal, day=0, task="center_out", lab=Lab("sim_lab_a", 100.0), n_trials=120, seed=5
    )


@pytest.mark.slow
def test_short_training_learns_and_shuffled_control_does_not(session, tmp_path):
    learned = run(tmp_path, "real", session)
    stream = session.behavior["hand_vel"]
    shuffled = dataclasses.replace(
        session,
        behavior={**session.behavior, "hand_vel": block_shuffled(stream, 1.0, np.random.default_rng(0))},
    )
    control = run(tmp_path, "shuffled", shuffled)
    print(f"held-out R2: trained {learned:.3f}, time-shuffled control {control:.3f}")
    assert learned > 0.15
    assert control < 0.05
