"""Training pieces: windows, normalisation, unit dropout, loss weights, checkpoints, resume."""

import csv
import dataclasses

import numpy as np
import pytest
import torch

from conftest import build_recording
from neuropoyo import checkpoint as checkpoint_module
from neuropoyo.data.directory import write_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.normalize import Normalizer, extreme_acceleration_spans
from neuropoyo.data.recording import TimeSeries
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.model.config import POYOConfig
from neuropoyo.sampling import random_windows, sliding_windows
from neuropoyo.training import loop as loop_module
from neuropoyo.training.augment import unit_dropout
from neuropoyo.training.config import RunConfig, TrainConfig
from neuropoyo.training.loss import weighted_mse

TINY_MODEL = dict(
    num_units=1, num_sessions=1, readouts={"hand_vel": 2}, dim=32, head_dim=16, num_heads=2,
    cross_heads=1, depth=1, num_latent_timestamps=4, latents_per_timestamp=2,
    ffn_dropout=0.1, linear_dropout=0.1, attention_dropout=0.0,
)


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    write_dataset(simulate_dataset(n_animals=1, sessions_per_animal=1, n_trials=16, duration_s=30.0), out)
    return out


def test_random_windows_stay_inside_their_spans():
    spans = [Intervals([0.0, 5.0, 9.0], [4.0, 5.4, 20.0]), Intervals.single(100.0, 103.0)]
    windows = random_windows(spans, context_s=1.0, rng=np.random.default_rng(0))
    assert len(windows) == int(np.ceil(15.4)) + 3
    for w in windows:
        span = spans[w.recording]
        k = np.searchsorted(span.start, w.start, side="right") - 1
        assert span.start[k] <= w.start < w.end <= span.end[k]
        assert w.end - w.start == pytest.approx(min(1.0, span.end[k] - span.start[k]))


def test_sliding_windows_cover_every_span_with_half_second_steps():
    spans = [Intervals([0.0, 10.0], [3.2, 10.4])]
    windows = sliding_windows(spans, context_s=1.0, step_s=0.5)
    starts = [w.start for w in windows]
    assert starts[:5] == [0.0, 0.5, 1.0, 1.5, 2.0] and starts[5] == pytest.approx(2.2)
    assert (windows[-1].start, windows[-1].end) == (10.0, 10.4)
    covered = Intervals([w.start for w in windows], [w.end for w in windows]).merged()
    assert covered.total_duration() == pytest.approx(3.6)


def test_unit_dropout_keeps_at_least_30_units_and_their_spikes():
    rec = build_recording(n_units=80)
    rows = np.arange(1000, 1080)
    sizes = set()
    for seed in range(200):
        window, kept_rows = unit_dropout(rec, rows, np.random.default_rng(seed), min_units=30)
        n = len(window.units)
        sizes.add(n)
        assert 30 <= n <= 80 and kept_rows.size == n
        assert np.array_equal(kept_rows - 1000, [int(u[1:]) for u in window.units.ids])
        expected = np.isin(rec.spikes.unit_index, kept_rows - 1000)
        assert np.array_equal(window.spikes.times, rec.spikes.times[expected])
        assert np.array_equal(window.units.ids[window.spikes.unit_index], rec.units.ids[rec.spikes.unit_index[expected]])
    assert min(sizes) < 40 and max(sizes) > 70
    small = build_recording(n_units=12)
    window, kept = unit_dropout(small, np.arange(12), np.random.default_rng(0), min_units=30)
    assert window is small and kept.size == 12


def test_loss_weights_and_masks_count_exactly():
    predictions = {"hand_vel": torch.tensor([[[1.0, 1.0], [0.0, 0.0], [9.0, 9.0]]])}
    batch = {
        "target_values": torch.zeros(1, 3, 2),
        "target_weights": torch.tensor([[5.0, 1.0, 1.0]]),
        "output_mask": torch.tensor([[True, True, False]]),
        "output_decoder_index": torch.zeros(1, 3, dtype=torch.long),
    }
    # (5 * 1 + 1 * 0) / (5 + 1); the padded query with error 81 is ignored.
    assert weighted_mse(predictions, batch, {"hand_vel": 2}).item() == pytest.approx(5 / 6)


def test_normalizer_is_shared_per_brainset_and_inverts():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (500, 2)), rng.normal(3, 2, (300, 2))
    norm = Normalizer.fit({("lab", "hand_vel"): [a, b]})
    both = np.concatenate([a, b])
    scale = norm.scale("lab", "hand_vel")
    assert np.allclose(scale.mean, both.mean(0)) and np.allclose(scale.std, both.std(0))
    assert Normalizer.from_dict(norm.to_dict()) == norm
    assert np.allclose(norm.denormalize((a - scale.mean) / scale.std, "lab", "hand_vel"), a)
    with pytest.raises(KeyError, match="brainset 'other'"):
        norm.scale("other", "hand_vel")


def test_extreme_acceleration_spans_cover_the_glitch_only():
    t = np.arange(0, 10, 0.01)
    values = np.stack([np.sin(t), np.cos(t)], axis=1)
    values[500] += 5.0  # a one-sample glitch
    spans = extreme_acceleration_spans(TimeSeries(t, values), factor=2.0)
    assert spans.contains(np.array([5.0]))[0]
    assert spans.total_duration() < 0.1
    # A smooth bell-shaped reach (peak acceleration far above the median) is never excluded.
    reach = np.exp(-((t - 5.0) ** 2) / 0.02)
    smooth = TimeSeries(t, np.stack([reach, 0 * reach], axis=1))
    assert len(extreme_acceleration_spans(smooth, factor=2.0)) == 0


def _run_config(steps: int, checkpoint_every: int) -> RunConfig:
    return RunConfig(
        model=POYOConfig(**TINY_MODEL),
        training=TrainConfig(batch_size=4, lr=1e-3, max_steps=steps, checkpoint_every=checkpoint_every),
    )


def _losses(run_dir) -> list[tuple[int, float]]:
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_resume_reproduces_the_uninterrupted_loss_curve(sim_data, tmp_path, monkeypatch):
    full = loop_module.train(_run_config(6, 3), [sim_data], tmp_path / "full", progress=False)
    assert full.steps == 6

    saves = []
    real_save = loop_module.save_checkpoint

    def crash_after_first_checkpoint(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(1)
        raise KeyboardInterrupt  # the machine went down right after step 3's checkpoint

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        loop_module.train(_run_config(6, 3), [sim_data], tmp_path / "cut", progress=False)
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    resumed = loop_module.train(_run_config(6, 3), [sim_data], tmp_path / "cut", resume=True, progress=False)
    assert resumed.steps == 6
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")
    a = checkpoint_module.load_model(tmp_path / "full").model.state_dict()
    b = checkpoint_module.load_model(tmp_path / "cut").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_model_directory_round_trip(sim_data, tmp_path):
    loop_module.train(_run_config(1, 1), [sim_data], tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "model"
    assert sorted(p.name for p in folder.iterdir()) == sorted(checkpoint_module.MODEL_FILES)
    trained = checkpoint_module.load_model(tmp_path / "run")
    again = tmp_path / "copy"
    checkpoint_module.save_model(trained, again)
    reloaded = checkpoint_module.load_model(again)
    assert reloaded.unit_vocab.to_list() == trained.unit_vocab.to_list()
    assert reloaded.normalizer == trained.normalizer and reloaded.data == trained.data
    state = trained.model.state_dict()
    assert all(torch.equal(v, reloaded.model.state_dict()[k]) for k, v in state.items())
    assert not list(tmp_path.glob(".copy*"))  # no temporary folder left behind


def test_resume_without_checkpoint_is_a_clear_error(sim_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        loop_module.train(_run_config(2, 1), [sim_data], tmp_path / "none", resume=True, progress=False)


def test_run_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: demo.yaml\ntraining: {batch_sise: 3}\n")
    with pytest.raises(ValueError, match="unknown training option.*batch_sise"):
        RunConfig.from_yaml(path)
    path.write_text("model: demo.yaml\ntraining: {lr: 1e-3}\n")
    with pytest.raises(ValueError, match="training.lr must be float.*write 1.0e-3"):
        RunConfig.from_yaml(path)
    path.write_text("model: demo.yaml\ntraining: {max_steps: 7}\n")
    config = RunConfig.from_yaml(path)
    assert config.training.max_steps == 7 and config.model.dim == 64
    assert dataclasses.asdict(RunConfig.from_dict(config.to_dict()).training) == dataclasses.asdict(config.training)


def test_a_model_refuses_recordings_it_was_not_trained_on(sim_data, tmp_path):
    loop_module.train(_run_config(1, 1), [sim_data], tmp_path / "run", progress=False)
    other = write_dataset(
        simulate_dataset(n_animals=2, sessions_per_animal=1, n_trials=8, duration_s=20.0, seed=1)[2:3],
        tmp_path / "other",
    )
    with pytest.raises(KeyError, match="unknown to the model.*sim_monkey1"):
        checkpoint_module.load_model(tmp_path / "run").recordings(other)
