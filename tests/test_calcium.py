"""Calcium imaging end to end on simulated sessions: one model pretrained on a spike session and a
calcium session together, unit identification of a new calcium session (new ROIs) that moves only
the new rows, a spike-only model refusing traces with the fix, and a calcium session decoding
held-out velocity well above chance. How well calcium sessions decode and transfer, with seeds:
benchmarks/calcium_transfer.py."""

import dataclasses

import pytest
import torch
from conftest import tiny_run_config

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.labels import trial_label_stream
from neuropoyo.data.simulate import Lab, make_animal, simulate_calcium, simulate_session
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.store import open_recording
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.trained import load_model
from neuropoyo.training.config import PRESET_DIR, RunConfig
from neuropoyo.training.finetune import FinetuneConfig, finetune
from neuropoyo.training.loop import train

CLASSES = [str(k) for k in range(8)]  # the eight reach targets


def labelled(recording):
    """The recording decoding its reach target (a label stream over each reach), split by trial."""
    target = trial_label_stream(recording.trials, "target_id", start_column="move_onset_time", classes=tuple(CLASSES))
    return assign_splits(dataclasses.replace(recording, behavior={"target": target}), seed=0)


def session(animal, day, *, calcium, n_trials=40):
    recording = simulate_session(
        animal=animal, day=day, task="center_out", lab=Lab("sim_lab_a", 100.0), n_trials=n_trials, seed=day
    )
    return simulate_calcium(recording, frame_rate_hz=10.0, seed=day) if calcium else recording


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny model pretrained on a spike session and a calcium session of one animal."""
    root = tmp_path_factory.mktemp("calcium")
    animal = make_animal("mouse_c", n_neurons=20, seed=1)
    data = write_dataset([labelled(session(animal, 0, calcium=False)), labelled(session(animal, 1, calcium=True))], root / "pre")
    new = write_dataset([labelled(session(animal, 2, calcium=True))], root / "new")
    config = tiny_run_config(model={"readouts": {"target": 8}, "classes": {"target": CLASSES}}, max_steps=3)
    train(config, data, root / "pre_run", progress=False)
    return root, new


def test_spike_and_calcium_recordings_train_one_model(pretrained):
    root, _ = pretrained
    model = load_model(root / "pre_run").model
    assert model.config.value_inputs and model.value_emb is not None  # set from the data
    assert model.config.classes == {"target": CLASSES} and model.config.readouts == {"target": 8}


def test_unit_identification_of_a_new_calcium_session_moves_only_its_rows(pretrained):
    root, new = pretrained
    before = {k: v.clone() for k, v in load_model(root / "pre_run").model.state_dict().items()}
    finetune(root / "pre_run", new, root / "uid", FinetuneConfig(max_steps=3, batch_size=4), progress=False)
    after = load_model(root / "uid").model.state_dict()
    n_units = before["unit_emb.weight"].shape[0]
    with open_recording(new[0]) as f:
        n_rois = f.traces().n_units
    assert after["unit_emb.weight"].shape[0] == n_units + n_rois and n_rois >= 10  # one row per new ROI
    for key, value in before.items():
        if key in ("unit_emb.weight", "session_emb.weight"):
            assert torch.equal(after[key][: value.shape[0]], value), key
        else:
            assert torch.equal(after[key], value), key  # the value projection is frozen too
    assert not torch.equal(after["unit_emb.weight"][n_units:], torch.zeros_like(after["unit_emb.weight"][n_units:]))


def test_a_spike_only_model_refuses_a_calcium_session_with_the_fix(tmp_path):
    animal = make_animal("mouse_s", n_neurons=10, seed=2)
    spikes = write_dataset([labelled(session(animal, 0, calcium=False, n_trials=10))], tmp_path / "spikes")
    calcium = write_dataset([labelled(session(animal, 1, calcium=True, n_trials=10))], tmp_path / "calcium")
    config = tiny_run_config(model={"readouts": {"target": 8}, "classes": {"target": CLASSES}}, max_steps=1)
    train(config, spikes, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="no value inputs; pretrain with model.value_inputs: true"):
        finetune(tmp_path / "run", calcium, tmp_path / "uid", FinetuneConfig(max_steps=1), progress=False)


@pytest.mark.slow
def test_a_simulated_calcium_session_decodes_held_out_velocity_well_above_chance(tmp_path):
    """The CPU recipe, 300 steps, on 40 ROIs imaged at 10 Hz: held-out test R2 (chance: 0).
    Seeds 0-2 gave 0.32, 0.27, 0.50 when written; benchmarks/calcium_transfer.py measures more."""
    animal = make_animal("mouse_l", n_neurons=40, seed=3)
    recording = simulate_session(
        animal=animal, day=0, task="center_out", lab=Lab("sim_lab_a", 100.0), n_trials=120, seed=5
    )
    data = write_dataset([simulate_calcium(recording, frame_rate_hz=10.0, seed=5)], tmp_path / "data")
    config = RunConfig.from_yaml(PRESET_DIR / "runs" / "cpu-small.yaml")
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, max_steps=300, seed=0))
    run = train(config, data, tmp_path / "run", progress=False).run_dir
    assert load_model(run).model.config.value_inputs
    assert evaluate(run, data, tmp_path / "eval", progress=False)["mean_r2"] > 0.15
