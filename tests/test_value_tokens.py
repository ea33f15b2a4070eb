"""Value tokens (calcium traces, binned counts): tokenizer and model.

Each (frame, trace unit) of a window becomes one token at the frame's time carrying the sample; the
model embeds it as UnitEmbed(u) + ValueEmbed(value) (POYO+). The invariances of spike tokens hold
for value tokens too, and the value reaches the output.
"""

import numpy as np
import pytest
import torch
from test_model import collate, make_model, make_window

from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.recording import Traces
from neuropoyo.schema import END, INPUT_KEYS, SPIKE, START, VALUE
from neuropoyo.tokens.tokenizer import Tokenizer

FRAMES = np.arange(40) / 8 + 1 / 16  # 8 Hz frames, centred, over [0, 5)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1)


def calcium_recording(*, with_spikes: bool = False) -> Recording:
    """5 s, gap [2, 3); units a, b (spiking, only with_spikes) and roi_0, roi_1, roi_2 (traces)."""
    values = np.arange(40 * 3, dtype=np.float32).reshape(40, 3) / 10
    spikes = Spikes([0.1, 0.6, 3.5], [0, 1, 0]) if with_spikes else Spikes.empty()
    ids = ["a", "b", "roi_0", "roi_1", "roi_2"] if with_spikes else ["roi_0", "roi_1", "roi_2"]
    first = 2 if with_spikes else 0
    domain = Intervals([0.0, 3.0], [2.0, 5.0])
    keep = domain.contains(FRAMES)
    return Recording(
        info=RecordingInfo(recording_id="calcium"),
        spikes=spikes,
        units=Units(ids),
        traces=Traces(FRAMES[keep], values[keep], np.arange(3) + first),
        behavior={"speed": TimeSeries(FRAMES[keep], values[keep, :1])},
        domain=domain,
    )


def test_value_tokens_hold_every_observed_frame_of_every_trace_unit():
    recording = calcium_recording(with_spikes=True)
    rows = np.array([10, 11, 20, 21, 22])
    tokens = Tokenizer(readouts={"speed": 0}, context_length_s=1.5).tokenize(
        recording.slice(1.0, 2.5), unit_index=rows, session_index=0
    )
    assert set(INPUT_KEYS) <= set(tokens)
    value = tokens["input_token_type"] == VALUE
    # frames of [1, 2) (the domain ends at 2): 8 frames x 3 ROIs, frame-major
    frames = FRAMES[(FRAMES >= 1.0) & (FRAMES < 2.0)]
    np.testing.assert_array_equal(tokens["input_unit_index"][value], np.tile([20, 21, 22], 8))
    np.testing.assert_allclose(tokens["input_timestamps"][value], np.repeat(frames - 1.0, 3), atol=1e-6)
    expected = recording.traces.values[(recording.traces.timestamps >= 1) & (recording.traces.timestamps < 2)]
    np.testing.assert_array_equal(tokens["input_values"][value], expected.reshape(-1))
    assert not tokens["input_values"][~value].any()
    # every unit, spiking or imaged, has its START and END at the observed span [0, 1)
    for kind, time in ((START, 0.0), (END, 1.0)):
        pick = tokens["input_token_type"] == kind
        assert sorted(tokens["input_unit_index"][pick]) == sorted(rows)
        assert np.all(tokens["input_timestamps"][pick] == time)
    assert (tokens["input_token_type"] == SPIKE).sum() == 0  # no spike in [1, 2)


def test_a_spike_recording_gets_zero_values_and_no_value_token():
    recording = calcium_recording(with_spikes=True)
    spikes_only = Recording(
        info=recording.info, spikes=recording.spikes, units=recording.units,
        behavior=recording.behavior, domain=recording.domain,
    )
    tokens = Tokenizer(readouts={"speed": 0}).tokenize(
        spikes_only.slice(0.0, 1.0), unit_index=np.arange(5), session_index=0
    )
    assert not (tokens["input_token_type"] == VALUE).any()
    assert tokens["input_values"].dtype == np.float32 and not tokens["input_values"].any()


def value_window(gen, *, rois, frames=6, start=0.0, length=1.0, session=0):
    """A window of a calcium session: START/END per ROI and one value token per (frame, ROI)."""
    window = make_window(gen, units=rois, session=session, start=start, length=length, rate=0, silent=rois)
    times = start + (torch.arange(frames, dtype=torch.float64) + 0.5) * length / frames
    window["unit"] = torch.cat((window["unit"], torch.tensor(rois).repeat(frames)))
    window["time"] = torch.cat((window["time"], times.repeat_interleave(len(rois))))
    window["type"] = torch.cat((window["type"], torch.full((frames * len(rois),), VALUE)))
    window["values"] = torch.cat(
        (torch.zeros(2 * len(rois), dtype=torch.float64), torch.randn(frames * len(rois), generator=gen, dtype=torch.float64))
    )
    return window


def with_values(model, windows, gen, **pad):
    batch = collate(model, windows, gen, **pad)
    batch["input_values"] = 3 * torch.randn(batch["input_unit_index"].shape, generator=gen, dtype=torch.float64)
    for i, w in enumerate(windows):
        batch["input_values"][i, : len(w["unit"])] = w.get("values", torch.zeros(len(w["unit"])))
    # padding holds value tokens with random values: only the mask may hide them
    batch["input_token_type"] = torch.where(batch["input_mask"], batch["input_token_type"], VALUE)
    return batch


def test_value_tokens_are_time_shift_padding_and_order_invariant(gen):
    model = make_model(value_inputs=True)
    windows = [value_window(gen, rois=[0, 1, 2]), value_window(gen, rois=[3, 4], frames=9, session=1)]
    with torch.no_grad():
        base = model(**with_values(model, windows, gen))
        moved = [w | {"time": w["time"] + 7.25, "start": w["start"] + 7.25, "out_time": w["out_time"] + 7.25} for w in windows]
        shifted = model(**with_values(model, moved, gen))
        padded = model(**with_values(model, windows, gen, extra_inputs=5))
        order = torch.randperm(len(windows[0]["unit"]), generator=gen)
        permuted = windows[0] | {k: windows[0][k][order] for k in ("unit", "time", "type", "values")}
        alone = model(**with_values(model, [permuted], gen))
    q = len(windows[0]["out_time"])
    for name in base:
        torch.testing.assert_close(shifted[name], base[name], rtol=0, atol=1e-9)
        torch.testing.assert_close(padded[name], base[name], rtol=0, atol=1e-12)
        torch.testing.assert_close(alone[name][0, :q], base[name][0, :q], rtol=0, atol=1e-12)


def test_the_value_reaches_the_output_through_its_projection(gen):
    model = make_model(value_inputs=True)
    window = value_window(gen, rois=[0, 1])
    batch = with_values(model, [window], gen)
    with torch.no_grad():
        before = model(**batch)
        batch["input_values"][0, -1] += 1.0
        after = model(**batch)
        # the embedding of a value token is the spike embedding plus W value + b
        units, types = torch.tensor([[1]]), torch.tensor([[VALUE]])
        embedded = model.embed_inputs(units, types, torch.tensor([[0.5]], dtype=torch.float64))
        expected = model.embed_inputs(units, torch.tensor([[SPIKE]])) + 0.5 * model.value_emb.weight[:, 0] + model.value_emb.bias
    assert max((after[n] - before[n]).abs().max().item() for n in before) > 1e-4
    torch.testing.assert_close(embedded, expected, rtol=0, atol=1e-12)


def test_spike_windows_decode_the_same_beside_value_windows(gen):
    """A batch mixing spike and calcium windows (per-token path) gives each spike window the
    output it has alone (shared (unit, type) table path)."""
    model = make_model(value_inputs=True)
    spiking = make_window(gen, units=[5, 6, 7], session=2)
    calcium = value_window(gen, rois=[0, 1, 2])
    with torch.no_grad():
        together = model(**with_values(model, [spiking, calcium], gen))
        alone = model(**collate(model, [spiking], gen))
    q = len(spiking["out_time"])
    for name, y in alone.items():
        torch.testing.assert_close(together[name][0, :q], y[0], rtol=0, atol=1e-12)


def test_a_spike_model_refuses_value_tokens_with_the_fix(gen):
    model = make_model()
    batch = with_values(model, [value_window(gen, rois=[0, 1])], gen)
    with pytest.raises(ValueError, match="value_inputs: true"):
        model(**batch)


def test_value_tokens_without_their_values_are_refused(gen):
    model = make_model(value_inputs=True)
    batch = with_values(model, [value_window(gen, rois=[0, 1])], gen)
    del batch["input_values"]
    with pytest.raises(ValueError, match="need input_values"):
        model(**batch)


def test_value_inputs_round_trip_in_the_config():
    model = make_model(value_inputs=True)
    assert model.config.to_dict()["value_inputs"] is True
    assert model.parameter_groups()["other_embeddings"] >= 2 * model.config.dim
    assert END == 2 and VALUE == 3


def test_unit_dropout_drops_the_trace_columns_of_dropped_units():
    from neuropoyo.pipeline.samplers import Window
    from neuropoyo.pipeline.transforms import Sample, UnitDropout

    recording = calcium_recording(with_spikes=True)
    sample = Sample(window=Window(0, 0.0, 5.0), data=recording, unit_rows=np.arange(100, 105), session_row=0)
    seen = set()
    for seed in range(30):
        out = UnitDropout(min_units=2)(sample, np.random.default_rng(seed))
        kept_ids = list(out.data.units.ids)
        traces = out.data.traces
        # each remaining column is still its ROI's trace, indexed into the shrunken unit table
        for column, row in enumerate(traces.unit_index):
            roi = int(kept_ids[row][-1])
            np.testing.assert_array_equal(traces.values[:, column], recording.traces.values[:, roi])
        assert traces.n_units == sum(u.startswith("roi") for u in kept_ids)
        np.testing.assert_array_equal(out.unit_rows, 100 + np.flatnonzero(np.isin(recording.units.ids, kept_ids)))
        seen.add(traces.n_units)
    assert len(seen) > 1


def test_the_token_estimate_counts_value_tokens_exactly(tmp_path):
    from neuropoyo.data.splits import assign_splits
    from neuropoyo.data.store import write_recording
    from neuropoyo.pipeline import RecordingSet
    from neuropoyo.pipeline.loader import WindowDataset, evaluation_pipeline
    from neuropoyo.pipeline.samplers import Window

    path = write_recording(assign_splits(calcium_recording(with_spikes=True), seed=0), tmp_path / "calcium.h5")
    recordings = RecordingSet([path], readouts={"speed": 1})
    pipeline = evaluation_pipeline(recordings, context_length_s=1.0, split="all")
    for start in (0.0, 0.55, 3.2):
        window = Window(0, start, start + 1.0)
        _, tokens = WindowDataset(recordings, pipeline)[window]
        assert recordings.token_estimate(window) == tokens["input_unit_index"].size
