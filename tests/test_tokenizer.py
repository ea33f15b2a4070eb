"""Tokenizer: spike and delimiter tokens, gaps, output queries, slicing invariance.

The latent grid is the model's (test_model.py); loss weights and output sampling are pipeline
transforms (test_pipeline.py); evaluation selection is tested in test_selection.py.
"""

import numpy as np
import pytest
from conftest import build_recording
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.schema import END, INPUT_KEYS, MODEL_KEYS, OUTPUT_KEYS, SPIKE, START
from neuropoyo.tokens.tokenizer import Tokenizer

UNIT_ROWS = np.array([10, 11, 12])  # global vocabulary rows of units a, b, c
SESSION = 7
READOUTS = {"slow": 0, "fast": 2, "not_recorded": 1}


def small_recording() -> Recording:
    """10 s, gap at [4, 6), units a, b, c (c silent); behavior sampled everywhere, gap included.

    slow: 10 Hz, (N, 2) = (t, -t). fast: 50 Hz, (N, 3) = (t, 2t, 3t). extra: not a readout.
    """
    slow = np.arange(100) / 10
    fast = np.arange(500) / 50
    trials = Intervals([0.5, 2.5, 6.5], [2.0, 3.5, 8.0], {"success": np.array([1, 0, 1])})
    return Recording(
        info=RecordingInfo(recording_id="small", brainset="lab"),
        spikes=Spikes([0.25, 0.5, 1.0, 2.5, 3.75, 6.5, 7.0, 9.5], [0, 1, 0, 1, 0, 0, 1, 1]),
        units=Units(["a", "b", "c"]),
        behavior={
            "slow": TimeSeries(slow, np.stack([slow, -slow], axis=1)),
            "fast": TimeSeries(fast, fast[:, None] * [1.0, 2.0, 3.0]),
            "extra": TimeSeries(slow, np.ones((100, 5))),
        },
        domain=Intervals([0.0, 6.0], [4.0, 10.0]),
        trials=trials,
        intervals={
            "reach": Intervals([1.0, 3.0, 7.0], [1.5, 3.25, 7.5]),
            "hold": Intervals([1.25], [2.0]),
        },
    )


def make_tokenizer(**overrides) -> Tokenizer:
    return Tokenizer(**({"readouts": READOUTS, "context_length_s": 1.0} | overrides))


def tokenize(window: Recording, tokenizer: Tokenizer | None = None) -> dict[str, np.ndarray]:
    return (tokenizer or make_tokenizer()).tokenize(window, unit_index=UNIT_ROWS, session_index=SESSION)


def delimiters(tokens: dict, kind: int) -> list[tuple[int, float]]:
    """Sorted (unit, time) pairs of the START or END tokens."""
    pick = tokens["input_token_type"] == kind
    units, times = tokens["input_unit_index"][pick], tokens["input_timestamps"][pick]
    return sorted(zip(units.tolist(), times.tolist()))


QUERY_FIELDS = OUTPUT_KEYS + ("target_values", "output_sample_index")  # per-query tokenizer output


def test_keys_dtypes_and_lengths_follow_the_model_contract():
    tokens = tokenize(small_recording().slice(0.5, 1.5))
    # no latents (the model's), no weights (a pipeline transform), no eval mask (evaluation's)
    assert set(tokens) == set(MODEL_KEYS) | {"target_values", "output_sample_index"}
    longs = ("input_unit_index", "input_token_type", "output_session_index")
    longs += ("output_decoder_index", "output_sample_index")
    floats = ("input_timestamps", "output_timestamps", "target_values")
    assert all(tokens[k].dtype == np.int64 for k in longs)
    assert all(tokens[k].dtype == np.float32 for k in floats)
    assert all(tokens[k].dtype == bool for k in ("input_mask", "output_mask"))
    for group in (INPUT_KEYS, QUERY_FIELDS):
        assert len({tokens[k].shape[0] for k in group}) == 1
    assert tokens["input_unit_index"].size > 0 and tokens["output_timestamps"].size > 0
    assert tokens["target_values"].shape == (tokens["output_timestamps"].size, 3)


def test_tokenize_is_deterministic_and_does_not_mutate_the_window():
    window = small_recording().slice(0.5, 1.5)
    before = small_recording().slice(0.5, 1.5)
    first, again = tokenize(window), tokenize(window)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert window == before


@pytest.mark.parametrize("start", [0.0, 2.3, 11.0, 12.7, 18.9])
def test_spike_tokens_are_exactly_the_windows_spikes(start):
    recording = build_recording()
    window = recording.slice(start, start + 1.0)
    rows = np.arange(100, 105)
    tokens = make_tokenizer().tokenize(window, unit_index=rows, session_index=0)
    spikes = tokens["input_token_type"] == SPIKE
    assert spikes.sum() == len(window.spikes) > 0
    assert np.array_equal(tokens["input_unit_index"][spikes], rows[window.spikes.unit_index])
    assert np.array_equal(tokens["input_timestamps"][spikes], window.spikes.times.astype(np.float32))
    assert tokens["input_mask"].all()


def test_every_unit_gets_start_and_end_even_a_silent_one():
    tokens = tokenize(small_recording().slice(0.0, 1.0))
    assert 12 not in tokens["input_unit_index"][tokens["input_token_type"] == SPIKE]
    assert delimiters(tokens, START) == [(10, 0.0), (11, 0.0), (12, 0.0)]
    assert delimiters(tokens, END) == [(10, 1.0), (11, 1.0), (12, 1.0)]


def test_a_gap_gets_one_start_end_pair_per_unit_per_observed_span():
    # window [3.5, 6.5) with T = 3 s: observed [0, 0.5) and [2.5, 3), gap [0.5, 2.5)
    tokens = tokenize(small_recording().slice(3.5, 6.5), make_tokenizer(context_length_s=3.0))
    assert delimiters(tokens, START) == sorted((u, t) for u in UNIT_ROWS for t in (0.0, 2.5))
    assert delimiters(tokens, END) == sorted((u, t) for u in UNIT_ROWS for t in (0.5, 3.0))
    times, types = tokens["input_timestamps"], tokens["input_token_type"]
    assert not np.any((times[types == SPIKE] >= 0.5) & (times[types == SPIKE] < 2.5))
    assert not np.any((times > 0.5) & (times < 2.5))
    out = tokens["output_timestamps"]
    assert out.size > 0 and not np.any((out >= 0.5) & (out < 2.5))


def test_a_short_window_ends_where_its_data_end():
    tokens = tokenize(small_recording().slice(0.5, 1.25))  # e.g. a 0.75 s trial
    assert delimiters(tokens, START) == [(u, 0.0) for u in UNIT_ROWS]
    assert delimiters(tokens, END) == [(u, 0.75) for u in UNIT_ROWS]
    assert tokens["output_timestamps"].max() < 0.75


def test_touching_domain_spans_read_as_one_observed_span():
    recording = small_recording()
    touching = Recording(**{**recording.__dict__, "domain": Intervals([0.0, 0.5], [0.5, 4.0])})
    tokens = tokenize(touching.slice(0.0, 1.0))
    assert delimiters(tokens, START) == [(u, 0.0) for u in UNIT_ROWS]
    assert delimiters(tokens, END) == [(u, 1.0) for u in UNIT_ROWS]


def test_a_window_inside_a_gap_has_no_delimiters_and_no_outputs():
    tokens = tokenize(small_recording().slice(4.25, 5.25))
    assert tokens["input_unit_index"].size == 0
    assert tokens["output_timestamps"].size == 0
    assert tokens["target_values"].shape == (0, 3)
    assert all(tokens[k].shape[0] == 0 for k in INPUT_KEYS + QUERY_FIELDS)


def test_a_window_without_readout_streams_has_no_queries_but_keeps_the_dtypes():
    window = small_recording().slice(0.0, 1.0)
    tokens = make_tokenizer(readouts={"not_recorded": 0}).tokenize(
        window, unit_index=UNIT_ROWS, session_index=SESSION
    )
    assert tokens["input_unit_index"].size > 0
    assert all(tokens[k].shape[0] == 0 for k in QUERY_FIELDS)
    assert tokens["target_values"].shape == (0, 0) and tokens["target_values"].dtype == np.float32
    assert tokens["output_decoder_index"].dtype == tokens["output_sample_index"].dtype == np.int64


def test_outputs_sit_at_the_behavior_samples_inside_the_domain_per_stream():
    recording = small_recording()
    window = recording.slice(3.5, 4.5)  # observed [0, 0.5)
    tokens = tokenize(window)
    assert set(tokens["output_decoder_index"].tolist()) == {0, 2}
    assert np.all(tokens["output_session_index"] == SESSION) and tokens["output_mask"].all()
    for name, decoder, dim in (("slow", 0, 2), ("fast", 2, 3)):
        pick = tokens["output_decoder_index"] == decoder
        stream = window.behavior[name]
        inside = np.flatnonzero(stream.timestamps < 0.5)
        assert np.array_equal(tokens["output_sample_index"][pick], inside)
        times = stream.timestamps[inside].astype(np.float32)
        assert np.array_equal(tokens["output_timestamps"][pick], times)
        values = tokens["target_values"][pick]
        assert np.array_equal(values[:, :dim], stream.values[inside].astype(np.float32))
        assert np.all(values[:, dim:] == 0)
    assert (tokens["output_decoder_index"] == 0).sum() == 5  # 3.5, 3.6, ..., 3.9 s at 10 Hz
    assert (tokens["output_decoder_index"] == 2).sum() == 25  # 50 Hz


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unit_index"):
        make_tokenizer().tokenize(small_recording().slice(0, 1), unit_index=[1, 2], session_index=0)
    for context in (0.0, -1.0):
        with pytest.raises(ValueError, match="context_length_s"):
            make_tokenizer(context_length_s=context)
    with pytest.raises(ValueError, match="decoder indices"):
        make_tokenizer(readouts={"slow": -1})
    with pytest.raises(TypeError):
        make_tokenizer(interval_weights={"reach": 5.0})  # weights are a pipeline transform now


def dyadic_recording() -> Recording:
    """40 s with a gap at [12.5, 15); every time is a multiple of 1/64, so slicing is exact."""
    rng = np.random.default_rng(3)
    domain = Intervals([0.0, 15.0], [12.5, 40.0])
    times = np.sort(rng.integers(0, 40 * 64, 600)) / 64
    times = times[domain.contains(times)]
    slow, fast = np.arange(40 * 8) / 8, np.arange(40 * 32) / 32
    slow, fast = slow[domain.contains(slow)], fast[domain.contains(fast)]
    trial_start = np.arange(0, 40, 4.0)
    return Recording(
        info=RecordingInfo(recording_id="dyadic"),
        spikes=Spikes(times, rng.integers(0, 3, times.size)),
        units=Units(["a", "b", "c"]),
        behavior={
            "slow": TimeSeries(slow, rng.normal(size=(slow.size, 2))),
            "fast": TimeSeries(fast, rng.normal(size=(fast.size, 3))),
        },
        domain=domain,
        trials=Intervals(trial_start, trial_start + 3.0, {"success": trial_start % 8 == 0}),
        intervals={"reach": Intervals(trial_start + 1.25, trial_start + 2.0)},
    )


DYADIC = dyadic_recording()


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 39 * 16).map(lambda k: k / 16))
def test_tokens_do_not_depend_on_how_the_recording_was_sliced(start):
    tokenizer = make_tokenizer()
    direct = tokenize(DYADIC.slice(start, start + 1.0), tokenizer)
    nested = tokenize(DYADIC.slice(start - 10.0, start + 5.0).slice(10.0, 11.0), tokenizer)
    longer = tokenize(DYADIC.slice(start, start + 2.5), tokenizer)  # clipped to the 1 s context
    for other in (nested, longer):
        assert other.keys() == direct.keys()
        for key in direct:
            assert np.array_equal(other[key], direct[key]), key
    observed = DYADIC.domain.clip(start, start + 1.0)
    in_window = observed.contains(DYADIC.spikes.times)
    assert (direct["input_token_type"] == SPIKE).sum() == in_window.sum()
    assert (direct["input_token_type"] == START).sum() == 3 * len(observed)
    assert (direct["input_token_type"] == END).sum() == 3 * len(observed)
