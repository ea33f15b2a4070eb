"""Many recordings at once: 2,000 files read with a bounded number of open files, and windows of
recordings with different readout streams and sampling rates mixed in one batch."""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import pytest
import torch
from conftest import NO_DROPOUT, TINY_MODEL, build_recording, write_many_recordings

from neuropoyo.data.dataset import load_dataset
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.store import write_recording
from neuropoyo.errors import ConfigError, MissingKeyError
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO
from neuropoyo.pipeline import (
    AugmentConfig,
    LossConfig,
    RandomWindowSampler,
    RecordingSet,
    Window,
    WindowDataset,
    batches_of,
    evaluation_pipeline,
    training_pipeline,
    window_loader,
)
from neuropoyo.schema import MODEL_KEYS
from neuropoyo.training.loss import weighted_loss

N_FILES = 2000
MAX_OPEN = 16


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd (Linux)")
@pytest.mark.slow
def test_two_thousand_files_give_training_batches_with_a_bounded_number_of_open_files(tmp_path):
    """Batches drawn from every one of 2,000 files keep at most MAX_OPEN of them attached, and
    equal the batches of an uncapped reader (every file stays mapped once read) bit for bit."""
    paths = write_many_recordings(tmp_path, N_FILES)
    before = open_fds()
    recordings = RecordingSet(paths, readouts={"hand_vel": 2}, max_open=MAX_OPEN)  # fits scales: reads all
    assert open_fds() - before <= MAX_OPEN
    uncapped = pickle.loads(pickle.dumps(recordings))  # the same headers and scales, files closed
    uncapped.max_open = None
    sampler = RandomWindowSampler(recordings.split_spans("train"), context_s=1.0, seed=0)
    first = {}
    for window in sampler:
        first.setdefault(window.recording, window)
    windows = list(first.values())
    assert len(windows) == N_FILES  # one window of every file, in random file order

    pipeline = training_pipeline(recordings, context_length_s=1.0, loss=LossConfig(), augment=AugmentConfig())

    def batches(reader: RecordingSet) -> tuple[list, int]:
        loader = window_loader(WindowDataset(reader, pipeline), batches_of(windows, 100))
        out, most = [], 0
        for _, batch in loader:
            out.append(batch)
            most = max(most, open_fds() - before)
        return out, most

    capped_batches, capped_most = batches(recordings)
    assert 0 < capped_most <= MAX_OPEN
    uncapped_batches, uncapped_most = batches(uncapped)
    assert uncapped_most >= N_FILES  # the uncapped reader holds one descriptor per file it read
    assert len(capped_batches) == len(uncapped_batches) == N_FILES // 100
    for a, b in zip(capped_batches, uncapped_batches):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_least_recently_read_file_is_closed_and_opens_again(tmp_path):
    paths = write_many_recordings(tmp_path, 4)
    recordings = RecordingSet(paths, readouts={"hand_vel": 2}, max_open=2)
    alone = [RecordingSet([p], readouts={"hand_vel": 2}, normalizer=recordings.normalizer) for p in paths]
    for r in (0, 1, 2, 0, 3, 1):
        got = recordings.read(Window(r, 0.5, 1.5)).data
        want = alone[r].read(Window(0, 0.5, 1.5)).data
        assert np.array_equal(got.behavior["hand_vel"].values, want.behavior["hand_vel"].values)
        assert np.array_equal(got.spikes.times, want.spikes.times)
        attached = [k for k, f in enumerate(recordings.files) if f._arrays is not None]
        assert r in attached and len(attached) <= 2
    assert sorted(k for k, f in enumerate(recordings.files) if f._arrays is not None) == [1, 3]
    with pytest.raises(ValueError, match="max_open"):
        RecordingSet(paths, readouts={"hand_vel": 2}, max_open=0)


# --- mixtures: different readout streams and sampling rates in one batch ----------------------------


def mixture(tmp_path):
    """Recordings a and b both hold hand_vel (2-D, 100 Hz) and emg (3-D, 500 Hz); a's source
    decodes hand_vel only, b's emg only."""
    a = assign_splits(build_recording(1), seed=0)
    b = assign_splits(build_recording(2), seed=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_recording(a, tmp_path / "a" / "a.h5")
    write_recording(b, tmp_path / "b" / "b.h5")
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        "sources:\n"
        "  - recordings: a/*.h5\n"
        "    readouts: [hand_vel]\n"
        "  - recordings: b\n"
        "    readouts: emg\n"
    )
    return a, b, spec


def test_a_batch_mixes_streams_and_rates_each_window_with_its_own_targets(tmp_path):
    a, b, spec = mixture(tmp_path)
    readouts = {"hand_vel": 2, "emg": 3}
    recordings = RecordingSet(load_dataset([spec]), readouts=readouts)
    assert recordings.streams == [("hand_vel",), ("emg",)]
    pipeline = evaluation_pipeline(recordings, context_length_s=1.0, split="train")
    train = recordings.split_spans("train")
    windows = [Window(r, float(train[r].start[k]), float(train[r].start[k]) + 1.0) for k in (0, -1) for r in (0, 1)]
    loader = window_loader(WindowDataset(recordings, pipeline), [windows])
    (chunk, batch), = list(loader)
    decoder, mask = batch["output_decoder_index"].numpy(), batch["output_mask"].numpy()
    for row, (window, recording) in enumerate(zip(chunk, (a, b, a, b))):
        name = recordings.streams[window.recording][0]
        stream = recording.behavior[name]
        inside = (stream.timestamps >= window.start) & (stream.timestamps < window.end)
        inside &= recording.splits["train"].contains(stream.timestamps)
        real = mask[row]
        assert set(decoder[row][real]) <= {readouts_index(readouts, name)}  # only its source's stream
        assert real.sum() == inside.sum() > 0
        scale = recordings.normalizer.scale(recording.info.brainset, name)
        want = (stream.values[inside] - np.array(scale.mean)) / np.array(scale.std)
        got = batch["target_values"].numpy()[row][real][:, : stream.dim]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        times = batch["output_timestamps"].numpy()[row][real] + window.start
        np.testing.assert_allclose(times, stream.timestamps[inside], atol=1e-5)
    assert batch["target_values"].shape[-1] == 3  # padded to the widest stream of the batch
    rates = [1 / np.median(np.diff(r.behavior[name].timestamps)) for r, name in ((a, "hand_vel"), (b, "emg"))]
    assert rates == pytest.approx([100, 500])


def readouts_index(readouts, name) -> int:
    return list(readouts).index(name)


def test_a_mixed_training_batch_trains_both_readouts(tmp_path):
    """The training pipeline, collate, POYO and the loss on one batch of both recordings: each
    readout gets a gradient only through the windows that decode it."""
    _, _, spec = mixture(tmp_path)
    readouts = {"hand_vel": 2, "emg": 3}
    recordings = RecordingSet(load_dataset([spec]), readouts=readouts)
    pipeline = training_pipeline(
        recordings, context_length_s=1.0, loss=LossConfig(output_samples=50), augment=AugmentConfig(unit_dropout_min=2)
    )
    train = recordings.split_spans("train")
    windows = [Window(r, float(train[r].start[0]), float(train[r].start[0]) + 1.0, key=(0, r)) for r in (0, 1)]
    (_, batch), = list(window_loader(WindowDataset(recordings, pipeline), [windows]))
    decoder, mask = batch["output_decoder_index"], batch["output_mask"]
    assert set(decoder[0][mask[0]].tolist()) == {0} and set(decoder[1][mask[1]].tolist()) == {1}
    assert int(mask[0].sum()) == 50 and int(mask[1].sum()) == 50  # each stream its own budget
    torch.manual_seed(0)
    model = POYO(POYOConfig(**dict(
        TINY_MODEL, **NO_DROPOUT, num_units=len(recordings.unit_vocab), num_sessions=2, readouts=readouts,
        dim=16, head_dim=8, num_latent_timestamps=2,
    )))
    loss = weighted_loss(model(**{k: batch[k] for k in MODEL_KEYS}), batch, readouts)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    for name in readouts:
        assert model.readouts[name].weight.grad.abs().sum() > 0


def test_streams_the_dataset_names_must_be_readouts_held_by_the_file(tmp_path):
    _, _, spec = mixture(tmp_path)
    with pytest.raises(ConfigError, match="readouts are \\['hand_vel'\\].*--readout emg"):
        RecordingSet(load_dataset([spec]), readouts={"hand_vel": 2})
    a = build_recording(1)
    write_recording(assign_splits(dataclasses.replace(a, behavior={"hand_vel": a.behavior["hand_vel"]})), tmp_path / "a" / "a.h5")
    spec.write_text("sources:\n  - recordings: a\n    readouts: [emg]\n")
    with pytest.raises(MissingKeyError, match="a.h5: no behavior stream named emg"):
        RecordingSet(load_dataset([spec]), readouts={"hand_vel": 2, "emg": 3})
