"""Tokenizer: spike and delimiter tokens, gaps, latent grid, output queries, weights, eval masks."""

import numpy as np
import pytest
from conftest import build_recording
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.tokenizer import (
    END,
    INPUT_KEYS,
    LATENT_KEYS,
    MODEL_KEYS,
    QUERY_KEYS,
    SPIKE,
    START,
    TARGET_KEYS,
    Tokenizer,
    interval_weights,
    latent_grid,
)

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
    context = overrides.pop("context_length_s", 1.0)
    index, times = latent_grid(
        num_latent_timestamps=4, latents_per_timestamp=3, context_length_s=context
    )
    return Tokenizer(
        readouts=READOUTS,
        latent_index=index,
        latent_timestamps=times,
        context_length_s=context,
        **overrides,
    )


def tokenize(window: Recording, tokenizer: Tokenizer | None = None) -> dict[str, np.ndarray]:
    return (tokenizer or make_tokenizer()).tokenize(window, unit_index=UNIT_ROWS, session_index=SESSION)


def delimiters(tokens: dict, kind: int) -> list[tuple[int, float]]:
    """Sorted (unit, time) pairs of the START or END tokens."""
    pick = tokens["input_token_type"] == kind
    units, times = tokens["input_unit_index"][pick], tokens["input_timestamps"][pick]
    return sorted(zip(units.tolist(), times.tolist()))


def test_keys_dtypes_and_lengths_follow_the_model_contract():
    tokens = tokenize(small_recording().slice(0.5, 1.5))
    assert set(tokens) == set(MODEL_KEYS + TARGET_KEYS)
    longs = ("input_unit_index", "input_token_type", "latent_index", "output_session_index")
    longs += ("output_decoder_index", "output_sample_index")
    floats = ("input_timestamps", "latent_timestamps", "output_timestamps", "target_values")
    assert all(tokens[k].dtype == np.int64 for k in longs)
    assert all(tokens[k].dtype == np.float32 for k in floats + ("target_weights",))
    assert all(tokens[k].dtype == bool for k in ("input_mask", "output_mask", "eval_mask"))
    for group in (INPUT_KEYS, LATENT_KEYS, QUERY_KEYS):
        assert len({tokens[k].shape[0] for k in group}) == 1
    assert tokens["target_values"].shape == (tokens["output_timestamps"].size, 3)


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
    assert tokens["latent_index"].size == 12


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


def brute_force_in(times: np.ndarray, spans: Intervals) -> np.ndarray:
    return np.array([np.any((spans.start <= t) & (t < spans.end)) for t in times], dtype=bool)


def query_times(window: Recording, tokens: dict) -> np.ndarray:
    """(P,) float64 relative time of each query, from its stream row."""
    names = {decoder: name for name, decoder in READOUTS.items()}
    return np.array(
        [
            window.behavior[names[d]].timestamps[i]
            for d, i in zip(tokens["output_decoder_index"], tokens["output_sample_index"])
        ]
    )


def test_weights_are_five_inside_reach_and_one_outside():
    window = small_recording().slice(0.5, 1.5)
    tokens = tokenize(window, make_tokenizer(interval_weights={"reach": 5.0}))
    in_reach = brute_force_in(query_times(window, tokens), window.intervals["reach"])
    assert in_reach.any() and not in_reach.all()
    assert np.array_equal(tokens["target_weights"], np.where(in_reach, 5.0, 1.0).astype(np.float32))


def test_weights_multiply_across_intervals_and_overlaps_count_once():
    times = np.array([0.5, 1.1, 1.3, 1.6, 2.5])
    intervals = {
        "reach": Intervals([1.0, 1.2], [1.7, 1.3]),  # overlapping spans of one interval name
        "hold": Intervals([1.25], [2.0]),
    }
    weights = {"reach": 5.0, "hold": 0.5, "none": 9.0}  # "none": no such interval
    weights = interval_weights(times, intervals=intervals, weights=weights)
    assert weights.tolist() == [1.0, 5.0, 2.5, 2.5, 1.0]


@pytest.mark.parametrize(
    ("eval_intervals", "successful_only", "expected"),
    [
        (None, False, lambda t, w: np.ones(t.size, bool)),
        (("reach",), False, lambda t, w: brute_force_in(t, w.intervals["reach"])),
        (("trials",), False, lambda t, w: brute_force_in(t, w.trials)),
        (("trials",), True, lambda t, w: brute_force_in(t, w.trials.select([0]))),
        (
            ("reach", "hold"),
            False,
            lambda t, w: brute_force_in(t, w.intervals["reach"].union(w.intervals["hold"])),
        ),
        (("reach",), True, lambda t, w: brute_force_in(t, w.intervals["reach"].select([0]))),
        (("not_an_interval",), False, lambda t, w: np.zeros(t.size, bool)),
    ],
)
def test_eval_mask_follows_eval_intervals_and_successful_trials(
    eval_intervals, successful_only, expected
):
    # window [0, 4): trials [0.5, 2) succeeded and [2.5, 3.5) failed; reach [1, 1.5) and [3, 3.25)
    window = small_recording().slice(0.0, 4.0)
    tokenizer = make_tokenizer(
        context_length_s=4.0, eval_intervals=eval_intervals, eval_successful_only=successful_only
    )
    tokens = tokenize(window, tokenizer)
    want = expected(query_times(window, tokens), window)
    assert want.any() or eval_intervals == ("not_an_interval",)
    assert np.array_equal(tokens["eval_mask"], want)


def test_successful_only_needs_a_success_column():
    recording = small_recording()
    no_success = Recording(**{**recording.__dict__, "trials": Intervals([0.5], [2.0])})
    with pytest.raises(KeyError, match="success"):
        tokenize(no_success.slice(0, 1), make_tokenizer(eval_successful_only=True))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 10),
    m=st.integers(1, 10),
    context=st.sampled_from([0.5, 1.0, 3.0]),
    timing=st.sampled_from(["uniform", "bin_centers"]),
)
def test_latent_grid_counts_timestamps_and_distinct_embeddings(n, m, context, timing):
    index, times = latent_grid(
        num_latent_timestamps=n, latents_per_timestamp=m, context_length_s=context, timing=timing
    )
    assert index.shape == times.shape == (n * m,)
    assert index.dtype == np.int64 and times.dtype == np.float64
    k = np.arange(n)
    grid = k * context / (n - 1) if timing == "uniform" and n > 1 else (k + 0.5) * context / n
    grid = np.zeros(1) if timing == "uniform" and n == 1 else grid
    assert np.allclose(times.reshape(n, m), grid[:, None], atol=1e-6)
    assert np.all(times.reshape(n, m) == times.reshape(n, m)[:, :1])  # a group shares its timestamp
    assert np.array_equal(index.reshape(n, m), np.tile(np.arange(m), (n, 1)))  # e_0..e_{m-1} each
    assert np.array_equal(index, np.arange(n * m) % m)


def test_latent_grid_timings_and_errors():
    _, uniform = latent_grid(num_latent_timestamps=5, latents_per_timestamp=2, context_length_s=1.0)
    assert np.unique(uniform).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    _, alias = latent_grid(
        num_latent_timestamps=5, latents_per_timestamp=2, context_length_s=1.0, timing="linspace"
    )
    assert np.array_equal(alias, uniform)
    _, centers = latent_grid(
        num_latent_timestamps=4, latents_per_timestamp=2, context_length_s=1.0, timing="bin_centers"
    )
    assert np.unique(centers).tolist() == [0.125, 0.375, 0.625, 0.875]
    with pytest.raises(ValueError, match="timing"):
        latent_grid(num_latent_timestamps=4, latents_per_timestamp=2, context_length_s=1.0, timing="x")
    with pytest.raises(ValueError):
        latent_grid(num_latent_timestamps=0, latents_per_timestamp=2, context_length_s=1.0)


def test_tokens_carry_the_configured_latent_grid():
    tokenizer = make_tokenizer()
    tokens = tokenize(small_recording().slice(1.0, 2.0), tokenizer)
    assert np.array_equal(tokens["latent_index"], tokenizer.latent_index)
    assert np.array_equal(tokens["latent_timestamps"], tokenizer.latent_timestamps)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unit_index"):
        make_tokenizer().tokenize(small_recording().slice(0, 1), unit_index=[1, 2], session_index=0)
    with pytest.raises(ValueError, match="latent"):
        Tokenizer(readouts=READOUTS, latent_index=[0, 1], latent_timestamps=[0.0])
    with pytest.raises(TypeError, match="eval_intervals"):
        make_tokenizer(eval_intervals="reach")


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
    tokenizer = make_tokenizer(
        interval_weights={"reach": 5.0}, eval_intervals=("reach",), eval_successful_only=True
    )
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
