"""Pipeline: recording set, samplers, transforms, loaders and seeding.

The properties: training windows see only the train split; every readout stream gets its own
output budget and weight-0 samples are never drawn; behavior scales and acceleration thresholds come
from the train split alone; windows depend on (seed, epoch) alone and their augmentation on the
window's key alone (not on the worker); the random streams of different uses never coincide.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_recording
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neuropoyo import seeding
from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.directory import recording_path
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.store import write_recording
from neuropoyo.pipeline import (
    AugmentConfig,
    Compose,
    EpochBatches,
    LossConfig,
    RandomWindowSampler,
    RecordingSet,
    Sample,
    Window,
    WindowDataset,
    batches_of,
    collate_windows,
    evaluation_pipeline,
    random_windows,
    sliding_windows,
    training_pipeline,
    window_loader,
)
from neuropoyo.pipeline.samplers import windows_per_epoch
from neuropoyo.pipeline.transforms import (
    ABSOLUTE_TIME,
    EXCLUDED,
    LossWeights,
    MarkExcluded,
    SampleOutputs,
    Tokenize,
    interval_weights,
    query_times,
)
from neuropoyo.schema import END, INPUT_KEYS, QUERY_KEYS, SPIKE, START
from neuropoyo.tokens.tokenizer import Tokenizer

READOUTS = {"hand_vel": 2, "emg": 3}  # the streams of conftest.build_recording (100 Hz, 500 Hz)
SPLITS = {  # hand-made splits of build_recording (domain [0, 9) and [11, 20))
    "train": Intervals([0.0, 11.0], [9.0, 16.0]),
    "valid": Intervals.single(16.0, 18.0),
    "test": Intervals.single(18.0, 20.0),
}


def write(recordings: list[Recording], directory) -> list[Path]:
    return [write_recording(r, recording_path(directory, r.recording_id)) for r in recordings]


def split_recording(**kwargs) -> Recording:
    return build_recording(**kwargs).with_splits(SPLITS)


def with_values(recording: Recording, name: str, values: np.ndarray) -> Recording:
    stream = recording.behavior[name]
    behavior = {**recording.behavior, name: TimeSeries(stream.timestamps, values, stream.unit)}
    return dataclasses.replace(recording, behavior=behavior)


def match(times: np.ndarray, reference: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """Row of sorted ``reference`` nearest each time; asserts every time is within ``tol`` of it."""
    k = np.clip(np.searchsorted(reference, times), 1, len(reference) - 1)
    k = np.where(np.abs(times - reference[k - 1]) <= np.abs(reference[k] - times), k - 1, k)
    assert np.all(np.abs(reference[k] - times) < tol)
    return k


def within_closure(times: np.ndarray, spans: Intervals, tol: float = 1e-5) -> np.ndarray:
    """Whether each time lies in some [start - tol, end + tol]."""
    return np.array([np.any((spans.start - tol <= t) & (t <= spans.end + tol)) for t in times], bool)


# --- random recordings --------------------------------------------------------------------------


def random_recording(seed: int, *, trials: bool) -> Recording:
    """10-16 s, up to two gaps, 2-6 units; spike times unique on a 1 ms grid (so a float32 relative
    token time names one spike); hand_vel at 100 Hz and emg at 500 Hz; trials and reaches or none."""
    rng = np.random.default_rng(seed)
    duration = float(rng.integers(10, 17))
    cuts = np.sort(rng.uniform(1.0, duration - 1.0, 2 * int(rng.integers(0, 3))))
    domain = Intervals(np.r_[0.0, cuts[1::2]], np.r_[cuts[0::2], duration])
    n_units = int(rng.integers(2, 7))
    ms = np.sort(rng.choice(int(duration * 1000), size=int(30 * duration), replace=False))
    times = ms / 1000
    times = times[domain.contains(times)]
    streams = {}
    for name, rate, dim in (("hand_vel", 100, 2), ("emg", 500, 3)):
        t = np.arange(int(duration * rate)) / rate
        t = t[domain.contains(t)]
        streams[name] = TimeSeries(t, np.cumsum(rng.normal(size=(t.size, dim)), axis=0) * 0.1)
    trial_spans, intervals = Intervals.empty(), {}
    if trials:
        start = np.arange(0.2, duration - 1.2, 1.25) + rng.uniform(0, 0.2)
        trial_spans = Intervals(
            start,
            start + 1.0,
            {"target_id": rng.integers(0, 4, start.size), "success": rng.random(start.size) < 0.8},
        )
        intervals = {"reach": Intervals(start + 0.3, start + 0.7)}
    return Recording(
        info=RecordingInfo(recording_id=f"random_{seed}", brainset="lab"),
        spikes=Spikes(times, rng.integers(0, n_units, times.size)),
        units=Units([f"n{k}" for k in range(n_units)]),
        behavior=streams,
        domain=domain,
        trials=trial_spans,
        intervals=intervals,
    )


def assert_only_train(recording: Recording, recordings: RecordingSet, window: Window, tokens) -> tuple[int, int]:
    """Every token and query of ``tokens`` lies in the train split, matched back to the recording
    by absolute time = window.start + relative time. Returns (spikes, queries) seen."""
    train = recording.splits["train"]
    held_out = recording.splits["valid"].union(recording.splits["test"])
    types = tokens["input_token_type"]
    spike = types == SPIKE
    rows = match(window.start + tokens["input_timestamps"][spike].astype(np.float64), recording.spikes.times)
    exact = recording.spikes.times[rows]
    assert train.contains(exact).all() and not held_out.contains(exact).any()
    unit_rows = recordings.unit_rows[window.recording]
    assert np.array_equal(tokens["input_unit_index"][spike], unit_rows[recording.spikes.unit_index[rows]])
    delimiters = window.start + tokens["input_timestamps"][types != SPIKE].astype(np.float64)
    assert within_closure(delimiters, train).all()
    for name, decoder in recordings.decoder_index.items():
        pick = tokens["output_decoder_index"] == decoder
        stream = recording.behavior[name]
        rows = match(window.start + tokens["output_timestamps"][pick].astype(np.float64), stream.timestamps)
        exact = stream.timestamps[rows]
        assert train.contains(exact).all() and not held_out.contains(exact).any()
        scale = recordings.normalizer.scale(recording.info.brainset, name)
        want = (stream.values[rows] - np.array(scale.mean)) / np.array(scale.std)
        np.testing.assert_allclose(tokens["target_values"][pick][:, : stream.dim], want, rtol=1e-5, atol=1e-5)
    return int(spike.sum()), int(tokens["output_timestamps"].size)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    trials=st.booleans(),
    split_seed=st.integers(0, 100),
    epoch=st.integers(0, 3),
    anywhere=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
def test_training_windows_see_only_the_train_split(seed, trials, split_seed, epoch, anywhere):
    recording = assign_splits(
        random_recording(seed, trials=trials), valid_fraction=0.2, test_fraction=0.2, seed=split_seed
    )
    held_out = recording.splits["valid"].union(recording.splits["test"])
    # a recording whose domain holds only one or two trials has no held-out trial to leak
    assume(held_out.total_duration() > 0 and recording.splits["train"].total_duration() > 0)
    with tempfile.TemporaryDirectory() as tmp:
        recordings = RecordingSet(write([recording], tmp), readouts=READOUTS)
        pipeline = training_pipeline(
            recordings,
            context_length_s=1.0,
            loss=LossConfig(output_samples=30),
            augment=AugmentConfig(unit_dropout_min=2),
        )
        dataset = WindowDataset(recordings, pipeline, seed=seed)
        sampler = RandomWindowSampler(recordings.split_spans("train"), context_s=1.0, seed=seed)
        sampler.set_epoch(epoch)
        # windows anywhere in the recording too: RestrictToSplit, not the sampler alone, keeps
        # held-out data out
        stray = [
            Window(0, s, s + 1.0, key=(epoch, 1000 + i))
            for i, s in enumerate(np.array(anywhere) * recording.end - 0.5)
        ]
        seen = np.zeros(2, dtype=int)
        for window in list(sampler) + stray:
            returned, tokens = dataset[window]
            assert returned == window
            seen += assert_only_train(recording, recordings, window, tokens)
            assert np.all(tokens["target_weights"] > 0)  # SampleOutputs keeps weight > 0 only
            for decoder in recordings.decoder_index.values():
                assert (tokens["output_decoder_index"] == decoder).sum() <= 30
        assert seen.min() > 0  # not vacuous: spikes and queries were checked


# --- SampleOutputs: one budget per stream, weight > 0 only -----------------------------------


TWO_RATES = {"fast": 0, "slow": 1}


def two_rate_sample() -> Sample:
    """One 1 s window: a 1 kHz stream (1000 samples), a 100 Hz stream (100), reach [0.6, 0.8)."""
    fast, slow = np.arange(1000) / 1000, np.arange(100) / 100
    data = Recording(
        info=RecordingInfo(recording_id="rates", brainset="lab"),
        spikes=Spikes([0.1, 0.5], [0, 0]),
        units=Units(["a"]),
        behavior={
            "fast": TimeSeries(fast, fast[:, None] * np.ones((1, 1))),
            "slow": TimeSeries(slow, slow[:, None] * np.ones((1, 2))),
        },
        domain=Intervals.single(0.0, 1.0),
        intervals={"reach": Intervals.single(0.6, 0.8)},
    )
    return Sample(window=Window(0, 10.0, 11.0, key=(0, 0)), data=data, unit_rows=np.array([3]), session_row=2)


def weighted(excluded: Intervals) -> Compose:
    """Tokens and weights of the two-rate window with ``excluded`` (absolute, window at 10 s)."""
    return Compose(
        [
            MarkExcluded([excluded]),
            Tokenize(Tokenizer(readouts=TWO_RATES)),
            LossWeights({"reach": 5.0}, TWO_RATES),
        ]
    )


@pytest.mark.parametrize("n", [1, 50, 75, 100, 150, 5000])
def test_sample_outputs_gives_each_stream_its_own_budget_among_weighted_samples(n):
    excluded = Intervals.single(10.2, 10.45)  # window-relative [0.2, 0.45): 250 fast, 25 slow samples
    full = weighted(excluded)(two_rate_sample())
    tokens = full.tokenized()
    times = query_times(full, TWO_RATES)
    positive = tokens["target_weights"] > 0
    assert np.array_equal(~positive, (times >= 0.2 - 1e-12) & (times < 0.45 - 1e-12))
    kept = SampleOutputs(n)(full, np.random.default_rng(n)).tokenized()
    for decoder, available in ((0, 750), (1, 75)):
        assert (kept["output_decoder_index"] == decoder).sum() == min(n, available)
    assert np.all(kept["target_weights"] > 0)
    # each kept query is a distinct row of the full tokens, all fields aligned, in the original order
    pairs = lambda t: zip(t["output_decoder_index"], t["output_sample_index"])  # noqa: E731
    position = {pair: p for p, pair in enumerate(pairs(tokens))}
    rows = np.array([position[pair] for pair in pairs(kept)])
    assert np.all(np.diff(rows) > 0)
    for key in QUERY_KEYS:
        assert np.array_equal(kept[key], tokens[key][rows]), key
    for key in INPUT_KEYS:
        assert np.array_equal(kept[key], tokens[key]), key


def test_sample_outputs_draws_with_its_generator_and_needs_one():
    full = weighted(Intervals.empty())(two_rate_sample())
    draw = lambda seed: SampleOutputs(100)(full, np.random.default_rng(seed)).tokenized()  # noqa: E731
    first, again, other = draw(0), draw(0), draw(1)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["output_sample_index"], other["output_sample_index"])
    assert full.tokenized()["output_timestamps"].size == 1100  # the input sample is left untouched
    with pytest.raises(ValueError, match="generator"):
        SampleOutputs(100)(full, None)


@settings(max_examples=40, deadline=None)
@given(
    decoders=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.0, 1.0, 5.0])), max_size=60),
    n=st.integers(1, 20),
    seed=st.integers(0, 1000),
)
def test_sample_outputs_counts_per_stream_on_any_tokens(decoders, n, seed):
    p = len(decoders)
    decoder = np.array([d for d, _ in decoders], dtype=np.int64)
    weight = np.array([w for _, w in decoders], dtype=np.float32)
    tokens = {
        "input_unit_index": np.arange(3), "input_timestamps": np.zeros(3, np.float32),
        "input_token_type": np.zeros(3, np.int64), "input_mask": np.ones(3, bool),
        "output_session_index": np.zeros(p, np.int64), "output_timestamps": np.arange(p, dtype=np.float32),
        "output_decoder_index": decoder, "output_mask": np.ones(p, bool),
        "target_values": np.arange(2 * p, dtype=np.float32).reshape(p, 2), "target_weights": weight,
        "output_sample_index": np.arange(p, dtype=np.int64),
    }
    sample = dataclasses.replace(two_rate_sample(), window=Window(0, 0.0, 1.0))
    kept = SampleOutputs(n)(sample.replace(tokens=tokens), np.random.default_rng(seed)).tokenized()
    rows = kept["output_sample_index"]  # = the original position here
    assert np.all(np.diff(rows) > 0)
    for d in range(4):
        assert (kept["output_decoder_index"] == d).sum() == min(n, int(((decoder == d) & (weight > 0)).sum()))
    assert np.all(kept["target_weights"] > 0)
    for key in QUERY_KEYS:
        assert np.array_equal(kept[key], tokens[key][rows]), key


# --- loss weights and excluded spans ---------------------------------------------------------


def test_interval_weights_multiply_across_intervals_and_overlaps_count_once():
    times = np.array([0.5, 1.1, 1.3, 1.6, 2.5])
    intervals = {
        "reach": Intervals([1.0, 1.2], [1.7, 1.3]),  # overlapping spans of one interval name
        "hold": Intervals([1.25], [2.0]),
    }
    weights = {"reach": 5.0, "hold": 0.5, "none": 9.0}  # "none": no such interval
    got = interval_weights(times, intervals=intervals, weights=weights)
    assert got.dtype == np.float32 and got.tolist() == [1.0, 5.0, 2.5, 2.5, 1.0]


def test_mark_excluded_cuts_the_recordings_spans_to_the_window():
    sample = two_rate_sample()  # window [10, 11) of recording 0
    spans = [Intervals([9.5, 10.25, 10.9], [10.1, 10.5, 12.0]), Intervals.single(10.0, 11.0)]
    marked = MarkExcluded(spans)(sample)
    cut = marked.data.intervals[EXCLUDED]
    np.testing.assert_allclose(cut.start, [0.0, 0.25, 0.9], atol=1e-12)
    np.testing.assert_allclose(cut.end, [0.1, 0.5, 1.0], atol=1e-12)
    assert marked.data.intervals["reach"] == sample.data.intervals["reach"]
    assert EXCLUDED not in sample.data.intervals  # the input sample is not mutated


def test_loss_weights_are_five_in_reach_one_outside_zero_when_excluded():
    excluded = Intervals.single(10.7, 10.75)  # inside the reach [0.6, 0.8): exclusion wins
    sample = weighted(excluded)(two_rate_sample())
    times, weights = query_times(sample, TWO_RATES), sample.tokenized()["target_weights"]
    reach = (times >= 0.6) & (times < 0.8)
    out = (times >= 0.7) & (times < 0.75)
    want = np.where(out, 0.0, np.where(reach, 5.0, 1.0))
    assert np.array_equal(weights, want.astype(np.float32))
    assert {0.0, 1.0, 5.0} == set(weights.tolist())


def glitchy_recording(*, test_gain: float = 1.0) -> Recording:
    """Smooth hand_vel with one glitch at 1.60 s (inside the reach [1.3, 1.9)); test split x gain."""
    recording = split_recording()
    stream = recording.behavior["hand_vel"]
    values = np.stack([np.sin(stream.timestamps), np.cos(stream.timestamps)], axis=1)
    values[np.flatnonzero(np.isclose(stream.timestamps, 1.6))] += 50.0
    test = SPLITS["test"].contains(stream.timestamps)
    values[test] *= test_gain
    emg = recording.behavior["emg"]
    smooth = np.sin(emg.timestamps)[:, None] * np.ones((1, 3))
    smooth[SPLITS["test"].contains(emg.timestamps)] *= test_gain
    return with_values(with_values(recording, "hand_vel", values.astype(np.float32)), "emg", smooth)


def test_excluded_spans_use_the_train_threshold_and_are_never_trained_on(tmp_path):
    calm, wild = glitchy_recording(), glitchy_recording(test_gain=1000.0)
    (tmp_path / "calm").mkdir(), (tmp_path / "wild").mkdir()
    sets = [
        RecordingSet(write([r], tmp_path / name), readouts=READOUTS)
        for r, name in ((calm, "calm"), (wild, "wild"))
    ]
    excluded = [s.excluded_spans(2.0)[0] for s in sets]
    # the two steps into and out of the glitch, +- one step each
    assert len(excluded[0]) == 1
    np.testing.assert_allclose([excluded[0].start[0], excluded[0].end[0]], [1.585, 1.615], atol=1e-9)
    # held-out data never set the threshold: a wild test split is itself excluded, the glitch still
    # is (a whole-stream 99th percentile would be ~1000x higher) and the train spans are unchanged
    assert excluded[1].contains([1.6, 1.605, 18.5]).all()
    interior = Intervals([0.1, 11.1], [8.9, 15.9])
    assert excluded[0].intersect(interior) == excluded[1].intersect(interior)
    assert sets[0].excluded_spans(None)[0] == Intervals.empty()

    recordings = sets[0]
    stream = calm.behavior["hand_vel"]
    window = Window(0, 1.0, 2.0, key=(0, 0))
    for n, seed in ((10**6, 0), (5, 1), (5, 2), (5, 3)):
        pipeline = training_pipeline(
            recordings, context_length_s=1.0, loss=LossConfig(output_samples=n), augment=AugmentConfig()
        )
        tokens = WindowDataset(recordings, pipeline, seed=seed)[window][1]
        pick = tokens["output_decoder_index"] == recordings.decoder_index["hand_vel"]
        absolute = 1.0 + tokens["output_timestamps"][pick].astype(np.float64)
        exact = stream.timestamps[match(absolute, stream.timestamps)]
        assert not excluded[0].contains(exact).any()  # never sampled
        reach = calm.intervals["reach"].contains(exact)
        assert np.array_equal(tokens["target_weights"][pick], np.where(reach, 5.0, 1.0).astype(np.float32))
        if n == 10**6:  # every other sample of the window is kept, reach ones with weight 5
            in_window = (stream.timestamps >= 1.0) & (stream.timestamps < 2.0)
            assert pick.sum() == (in_window & ~excluded[0].contains(stream.timestamps)).sum()
            assert reach.sum() > 10 and (~reach).sum() > 10


# --- the normalizer sees the train split only ------------------------------------------------


@pytest.mark.parametrize("scale", ["per_dim", "lab_scalar"])
def test_normalizer_is_fitted_on_the_train_split_only(tmp_path, scale):
    base = split_recording()
    stream = base.behavior["hand_vel"]
    outside = ~SPLITS["train"].contains(stream.timestamps)
    assert outside.sum() > 100
    moved_out = stream.values.copy()
    moved_out[outside] = moved_out[outside] * 7.0 + 100.0
    moved_in = stream.values.copy()
    moved_in[np.flatnonzero(~outside)[3]] += 10.0
    variants = {
        "base": base,
        "out": with_values(base, "hand_vel", moved_out),
        "in": with_values(base, "hand_vel", moved_in),
    }
    scales = {}
    for name, recording in variants.items():
        (tmp_path / name).mkdir()
        recordings = RecordingSet(write([recording], tmp_path / name), readouts=READOUTS, normalize=scale)
        scales[name] = recordings.normalizer.scale("test_lab", "hand_vel")
    assert scales["out"] == scales["base"]  # exactly
    assert scales["in"] != scales["base"]
    train = stream.values[~outside].astype(np.float64)
    axis = 0 if scale == "per_dim" else None
    np.testing.assert_allclose(scales["base"].mean, np.broadcast_to(train.mean(axis=axis), (2,)), rtol=1e-12)
    np.testing.assert_allclose(scales["base"].std, np.broadcast_to(train.std(axis=axis), (2,)), rtol=1e-12)


# --- samplers --------------------------------------------------------------------------------


SPANS = [Intervals([0.0, 5.0, 9.0], [4.0, 5.4, 20.0]), Intervals.single(100.0, 103.0)]
PER_EPOCH = 16 + 3  # ceil(15.4) + 3


def epoch_windows(sampler: RandomWindowSampler, epoch: int, start: int = 0) -> list[Window]:
    sampler.set_epoch(epoch, start=start)
    return list(sampler)


def test_random_window_sampler_depends_on_seed_and_epoch_alone():
    a = RandomWindowSampler(SPANS, context_s=1.0, seed=3)
    b = RandomWindowSampler(SPANS, context_s=1.0, seed=3)
    assert a.windows_per_epoch == windows_per_epoch(SPANS, context_s=1.0) == PER_EPOCH
    epochs = {}
    for epoch in (2, 0, 1, 2):
        windows = epoch_windows(a, epoch)
        assert windows == epoch_windows(b, epoch) == list(a)  # re-iterating gives the same windows
        assert len(windows) == len(a) == PER_EPOCH
        assert [w.key for w in windows] == [(epoch, i) for i in range(PER_EPOCH)]
        rng = seeding.stream(3, seeding.EPOCH_WINDOWS, epoch)
        plain = random_windows(SPANS, context_s=1.0, rng=rng)
        assert [dataclasses.replace(w, key=()) for w in windows] == plain
        for w in windows:
            span = SPANS[w.recording]
            k = np.searchsorted(span.start, w.start, side="right") - 1
            assert span.start[k] <= w.start < w.end <= span.end[k]
        epochs.setdefault(epoch, windows)
        assert epochs[epoch] == windows
    where = lambda ws: [(w.recording, w.start, w.end) for w in ws]  # noqa: E731
    assert where(epochs[0]) != where(epochs[1]) != where(epochs[2])
    other_seed = RandomWindowSampler(SPANS, context_s=1.0, seed=4)
    assert where(epoch_windows(other_seed, 0)) != where(epochs[0])


@settings(max_examples=25, deadline=None)
@given(epoch=st.integers(0, 50), start=st.integers(0, PER_EPOCH + 3), seed=st.integers(0, 2**20))
def test_set_epoch_start_resumes_with_the_tail_of_the_epoch(epoch, start, seed):
    sampler = RandomWindowSampler(SPANS, context_s=1.0, seed=seed)
    full = epoch_windows(sampler, epoch)
    tail = epoch_windows(sampler, epoch, start)
    assert tail == full[start:]
    assert [w.key for w in tail] == [(epoch, i) for i in range(start, PER_EPOCH)]
    assert len(sampler) == max(PER_EPOCH - start, 0)
    assert epoch_windows(sampler, epoch) == full  # set_epoch without start starts over


@settings(max_examples=30, deadline=None)
@given(
    edges=st.lists(st.lists(st.floats(0.0, 20.0), max_size=6, unique=True), min_size=1, max_size=3),
    context=st.sampled_from([0.3, 1.0]),
)
def test_sampler_length_matches_its_windows_on_any_spans(edges, context):
    spans = []
    for recording_edges in edges:
        e = np.sort(recording_edges)[: 2 * (len(recording_edges) // 2)]
        spans.append(Intervals(e[0::2], e[1::2]))
    sampler = RandomWindowSampler(spans, context_s=context, seed=0)
    windows = list(sampler)
    assert len(windows) == len(sampler) == windows_per_epoch(spans, context_s=context)
    for w in windows:
        span = spans[w.recording]
        k = np.searchsorted(span.start, w.start, side="right") - 1
        assert span.start[k] <= w.start < w.end <= span.end[k] and w.end - w.start <= context + 1e-9


def test_sliding_windows_refuse_steps_longer_than_the_window():
    for step in (1.5, 0.0, -0.5):
        with pytest.raises(ValueError, match="step"):
            sliding_windows(SPANS, context_s=1.0, step_s=step)
    assert len(sliding_windows(SPANS, context_s=1.0, step_s=1.0)) > 0


@settings(max_examples=30, deadline=None)
@given(
    edges=st.lists(st.floats(0.0, 30.0), min_size=2, max_size=8, unique=True),
    context=st.sampled_from([0.5, 1.0, 2.0]),
    fraction=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_sliding_windows_cover_every_span_and_stay_inside_it(edges, context, fraction):
    edges = np.sort(edges)[: 2 * (len(edges) // 2)]
    spans = Intervals(edges[0::2], edges[1::2])
    windows = sliding_windows([spans], context_s=context, step_s=fraction * context)
    for w in windows:
        assert w.key == () and w.end - w.start <= context + 1e-9
        k = np.searchsorted(spans.start, w.start, side="right") - 1
        assert spans.start[k] <= w.start < w.end <= spans.end[k] + 1e-9
    covered = Intervals([w.start for w in windows], [w.end for w in windows]).merged()
    assert covered.total_duration() == pytest.approx(spans.total_duration(), abs=1e-9)


# --- datasets and loaders --------------------------------------------------------------------


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> tuple[Recording, RecordingSet]:
    """build_recording with 40 units (so unit dropout draws) and the hand-made splits, on disk."""
    recording = split_recording(n_units=40)
    return recording, RecordingSet(write([recording], tmp_path_factory.mktemp("population")), readouts=READOUTS)


def training_dataset(recordings: RecordingSet, seed: int = 0) -> WindowDataset:
    pipeline = training_pipeline(
        recordings,
        context_length_s=1.0,
        loss=LossConfig(output_samples=20),
        augment=AugmentConfig(unit_dropout_min=5),
    )
    return WindowDataset(recordings, pipeline, seed=seed)


def test_training_tokens_do_not_depend_on_the_worker(population):
    """Two epochs through one DataLoader pass with two workers equal the windows of each epoch
    tokenized in the main process, cut into batches epoch by epoch."""
    _, recordings = population
    dataset = training_dataset(recordings, seed=7)
    sampler = RandomWindowSampler(recordings.split_spans("train"), context_s=1.0, seed=7)
    batches = EpochBatches(RandomWindowSampler(recordings.split_spans("train"), context_s=1.0, seed=7), batch_size=4)
    loader = window_loader(dataset, batches, num_workers=2)
    expected = []
    for epoch in (0, 1):
        windows = epoch_windows(sampler, epoch)
        expected += [collate_windows([dataset[w] for w in batch]) for batch in batches_of(windows, 4)]
    assert len(expected) == 2 * batches.steps_per_epoch > 2
    got = list(itertools.islice(loader, len(expected)))
    for (got_windows, got_batch), (want_windows, want_batch) in zip(got, expected, strict=True):
        assert got_windows == want_windows
        assert got_batch.keys() == want_batch.keys()
        for key in want_batch:
            assert torch.equal(got_batch[key], want_batch[key]), key
    # not vacuous: the augmentation does draw, from the stream named by the window's key
    window = windows[0]
    same, again = dataset[window][1], dataset[window][1]
    assert all(np.array_equal(same[k], again[k]) for k in same)
    moved = dataset[dataclasses.replace(window, key=(9, 9))][1]
    assert not np.array_equal(same["input_unit_index"], moved["input_unit_index"])


def test_training_pipeline_needs_a_generator_and_does_not_mutate_its_input(population):
    _, recordings = population
    dataset = training_dataset(recordings)
    window = Window(0, 2.0, 3.0, key=(0, 0))
    sample, pristine = recordings.read(window), recordings.read(window)
    dataset.pipeline(sample, seeding.stream(0, seeding.AUGMENT, 0, 0))
    assert sample.tokens is None and sample.data == pristine.data
    assert np.array_equal(sample.unit_rows, pristine.unit_rows)
    with pytest.raises(ValueError, match="generator"):
        dataset.pipeline(sample, None)


def test_evaluation_windows_predict_every_sample_of_their_split_once_stitched(population):
    recording, recordings = population
    pipeline = evaluation_pipeline(recordings, context_length_s=1.0, split="test")
    dataset = WindowDataset(recordings, pipeline)
    windows = sliding_windows(recordings.split_spans("test"), context_s=1.0, step_s=0.5)
    for name, decoder in recordings.decoder_index.items():
        stream = recording.behavior[name]
        hit = np.zeros(len(stream), dtype=bool)
        for window in windows:
            tokens = dataset[window][1]
            again = dataset[window][1]
            assert all(np.array_equal(tokens[k], again[k]) for k in tokens)  # no randomness
            assert "target_weights" not in tokens
            pick = tokens["output_decoder_index"] == decoder
            absolute = tokens[ABSOLUTE_TIME][pick]
            assert absolute.dtype == np.float64
            rows = match(absolute, stream.timestamps, tol=1e-9)
            assert SPLITS["test"].contains(stream.timestamps[rows]).all()
            np.testing.assert_allclose(
                absolute, window.start + tokens["output_timestamps"][pick].astype(np.float64), atol=1e-6
            )
            hit[rows] = True
        assert np.array_equal(hit, SPLITS["test"].contains(stream.timestamps))
    for window in windows:
        tokens = dataset[window][1]
        spikes = window.start + tokens["input_timestamps"][tokens["input_token_type"] == SPIKE]
        assert within_closure(spikes.astype(np.float64), SPLITS["test"]).all()


def test_delimiters_mark_the_train_spans_seen_by_a_window(population):
    _, recordings = population
    dataset = training_dataset(recordings)
    tokens = dataset[Window(0, 15.5, 16.5, key=(0, 3))][1]  # train ends at 16: observed [0, 0.5)
    types, times = tokens["input_token_type"], tokens["input_timestamps"]
    assert set(times[types == START].tolist()) == {0.0} and set(times[types == END].tolist()) == {0.5}
    assert times[types == SPIKE].max(initial=0.0) < 0.5
    assert (types == START).sum() == (types == END).sum() > 0


# --- seeding ---------------------------------------------------------------------------------


def draws(rng: np.random.Generator) -> list[int]:
    return rng.integers(0, 2**63, 8).tolist()


def test_numpy_list_seeds_collide_which_is_why_streams_use_spawn_keys():
    # default_rng([seed, epoch]) and default_rng([seed, epoch, position]) were the old keys: numpy
    # pads list entropy with zeros, so trailing zeros vanish and seed 0 collides with everything
    assert draws(np.random.default_rng([0, 0])) == draws(np.random.default_rng([0, 0, 0]))
    assert draws(np.random.default_rng([0, 0])) == draws(np.random.default_rng(0))
    assert draws(np.random.default_rng([5, 3])) == draws(np.random.default_rng([5, 3, 0]))


def test_streams_of_different_uses_never_coincide():
    streams = {
        "epoch windows": seeding.stream(0, seeding.EPOCH_WINDOWS, 0),
        "augment": seeding.stream(0, seeding.AUGMENT, 0, 0),
        "splits": seeding.stream(0, seeding.SPLITS),
        "torch": seeding.stream(0, seeding.TORCH),
        "epoch windows (0, 0)": seeding.stream(0, seeding.EPOCH_WINDOWS, 0, 0),  # trailing 0 counts
        "augment (0, 1)": seeding.stream(0, seeding.AUGMENT, 0, 1),
        "augment (1, 0)": seeding.stream(0, seeding.AUGMENT, 1, 0),
        "seed 1 augment": seeding.stream(1, seeding.AUGMENT, 0, 0),
        "old default_rng(0)": np.random.default_rng(0),
    }
    values = {name: tuple(draws(rng)) for name, rng in streams.items()}
    assert len(set(values.values())) == len(values), values
    assert len({seeding.SPLITS, seeding.EPOCH_WINDOWS, seeding.AUGMENT, seeding.TORCH}) == 4
    assert draws(seeding.stream(0, seeding.AUGMENT, 0, 0)) == list(values["augment"])  # reproducible
    keys = {tuple(draws(seeding.stream(0, seeding.AUGMENT, e, i))) for e in range(6) for i in range(6)}
    assert len(keys) == 36  # every (epoch, position) of a training window has its own stream
    assert seeding.torch_seed(0) != seeding.torch_seed(1) and 0 <= seeding.torch_seed(0) < 2**63


@settings(max_examples=25, deadline=None)
@given(epoch=st.integers(0, 20), start=st.integers(0, 6), batch_size=st.integers(1, 9))
def test_epoch_batches_cut_each_epoch_as_a_loop_over_epochs_would(epoch, start, batch_size):
    """From (epoch, start batch): the tail of that epoch's batches, then every later epoch whole,
    each cut into ceil(n / batch_size) batches with a short last one."""
    windows = RandomWindowSampler(SPANS, context_s=1.0, seed=1)
    batches = EpochBatches(RandomWindowSampler(SPANS, context_s=1.0, seed=1), batch_size=batch_size)
    assert batches.steps_per_epoch == -(-PER_EPOCH // batch_size)
    start = min(start, batches.steps_per_epoch - 1)
    batches.epoch, batches.start = epoch, start
    expected = batches_of(epoch_windows(windows, epoch), batch_size)[start:]
    expected += batches_of(epoch_windows(windows, epoch + 1), batch_size)
    expected += batches_of(epoch_windows(windows, epoch + 2), batch_size)
    assert list(itertools.islice(batches, len(expected))) == expected


def test_epoch_batches_refuse_spans_without_recorded_time():
    with pytest.raises(ValueError, match="no recorded time"):
        EpochBatches(RandomWindowSampler([Intervals.empty()], context_s=1.0, seed=0), batch_size=4)
