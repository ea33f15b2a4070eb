"""Normalisation statistics: per-dimension and lab-level (one scalar per brainset and stream)
z-scoring, pooled over recordings, and extreme-acceleration spans whose threshold is set by the
reference (training) spans alone."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import build_recording
from neuropoyo.data import Intervals, TimeSeries
from neuropoyo.errors import DataError
from neuropoyo.data.normalize import SCALES, Normalizer, Scale, extreme_acceleration_spans

# brainset "lab": two recordings of a 2-D stream; brainset "flat": a constant stream
A, B = np.array([[0.0, 4.0]]), np.array([[2.0, 6.0]])
FLAT = np.full((3, 2), 7.0)
SAMPLES = {("lab", "vel"): [A, B], ("flat", "vel"): [FLAT]}


def test_per_dim_scale_by_hand():
    norm = Normalizer.fit(SAMPLES)
    assert norm.scale("lab", "vel") == Scale((1.0, 5.0), (1.0, 1.0))
    assert norm.scale("flat", "vel") == Scale((7.0, 7.0), (1.0, 1.0))  # zero std -> 1


def test_a_brainset_with_one_training_sample_is_a_data_error_that_says_where_to_look():
    """A DataError (the CLI prints it as one line, exit 2), not a bare ValueError (a traceback)."""
    with pytest.raises(DataError, match=r"brainset 'lab' has 1 training sample\(s\) of 'vel'.*neuropoyo inspect"):
        Normalizer.fit({("lab", "vel"): [A]})


def test_lab_scalar_scale_by_hand():
    norm = Normalizer.fit(SAMPLES, scale="lab_scalar")
    # values 0, 4, 2, 6: mean 3, variance (9 + 1 + 1 + 9) / 4 = 5
    assert norm.scale("lab", "vel") == Scale((3.0, 3.0), (np.sqrt(5.0), np.sqrt(5.0)))
    assert norm.scale("flat", "vel") == Scale((7.0, 7.0), (1.0, 1.0))


def test_lab_scalar_pools_the_recordings_of_a_brainset():
    rng = np.random.default_rng(0)
    first = rng.normal([0.0, 10.0], [1.0, 5.0], (200, 2))
    second = rng.normal([3.0, -2.0], [0.5, 2.0], (100, 2))
    pooled = Normalizer.fit({("lab", "vel"): [first, second]}, scale="lab_scalar")
    together = np.concatenate([first, second])
    scale = pooled.scale("lab", "vel")
    assert scale.mean == pytest.approx((together.mean(),) * 2)
    assert scale.std == pytest.approx((together.std(),) * 2)
    alone = Normalizer.fit({("lab", "vel"): [first]}, scale="lab_scalar").scale("lab", "vel")
    assert alone.mean != pytest.approx(scale.mean) and alone.std != pytest.approx(scale.std)


@pytest.mark.parametrize("scale", SCALES)
def test_normalize_denormalize_and_dict_round_trip(scale):
    window = build_recording().slice(0.0, 5.0)
    stream = window.behavior["hand_vel"]
    norm = Normalizer.fit({("test_lab", "hand_vel"): [stream.values * 3.0 + 1.0]}, scale=scale)
    z = norm.normalize(window, ["hand_vel"]).behavior["hand_vel"]
    np.testing.assert_array_equal(z.timestamps, stream.timestamps)
    back = norm.denormalize(z.values.astype(np.float64), "test_lab", "hand_vel")
    np.testing.assert_allclose(back, stream.values, rtol=1e-5, atol=1e-5)
    assert Normalizer.from_dict(norm.to_dict()) == norm


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.lists(st.integers(1, 40), min_size=1, max_size=4).filter(lambda r: sum(r) >= 2),
    dims=st.integers(1, 4),
)
def test_normalized_training_data_is_standard(seed, rows, dims):
    """per_dim: every dimension has mean 0 and std 1; lab_scalar: all values pooled do, and the
    ratios between dimensions are kept."""
    rng = np.random.default_rng(seed)
    means, stds = rng.normal(0, 5, dims), rng.uniform(0.1, 5, dims)
    chunks = [rng.normal(means, stds, (n, dims)) for n in rows]
    together = np.concatenate(chunks)
    for scale, axis in (("per_dim", 0), ("lab_scalar", None)):
        s = Normalizer.fit({("lab", "vel"): chunks}, scale=scale).scale("lab", "vel")
        z = (together - np.array(s.mean)) / np.array(s.std)
        np.testing.assert_allclose(z.mean(axis=axis), 0.0, atol=1e-9)
        np.testing.assert_allclose(z.std(axis=axis), 1.0, rtol=1e-9)
        if scale == "lab_scalar":
            assert len(set(s.mean)) == 1 and len(set(s.std)) == 1


def test_unknown_scale_names_the_choices():
    choices = r"unknown scale 'lab'; use one of \['per_dim', 'lab_scalar'\]"
    with pytest.raises(ValueError, match=choices):
        Normalizer.fit(SAMPLES, scale="lab")


# --------------------------------------------------------------------- extreme acceleration


T = np.arange(0.0, 10.0, 0.01)
TRAIN = Intervals.single(0.0, 5.0)


def _velocity(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.sin(T), np.cos(T)], axis=1) + rng.normal(0, 0.01, (T.size, 2))


def test_held_out_glitches_do_not_hide_a_training_glitch():
    values = _velocity(0)
    values[200] += 0.5  # one training glitch
    values[600:900:2] += 50.0  # many held-out glitches raise the whole-stream quantile
    stream = TimeSeries(T, values)
    whole = extreme_acceleration_spans(stream, factor=2.0)
    train = extreme_acceleration_spans(stream, factor=2.0, reference=TRAIN)
    assert not whole.contains(np.array([2.0]))[0]
    assert train.contains(np.array([2.0, 6.5])).all()  # found in training and held-out time
    assert train.intersect(TRAIN).total_duration() < 0.05


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    change=st.floats(-1e3, 1e3),
    glitches=st.lists(st.integers(0, T.size - 1), max_size=20),
    pad_s=st.sampled_from([0.0, 0.02]),
)
def test_data_outside_the_reference_do_not_change_the_threshold(seed, change, glitches, pad_s):
    values = _velocity(seed)
    values[np.array(glitches, dtype=int)] += 3.0  # some glitches, anywhere
    changed = values.copy()
    held_out = T >= 5.5
    changed[held_out] = changed[held_out] * change + np.random.default_rng(seed).normal(
        0, abs(change) + 1, (held_out.sum(), 2)
    )
    spans = [
        extreme_acceleration_spans(TimeSeries(T, v), factor=2.0, pad_s=pad_s, reference=TRAIN)
        for v in (values, changed)
    ]
    early = Intervals.single(0.0, 5.3)  # farther than pad_s and a step from the changed samples
    assert spans[0].intersect(early) == spans[1].intersect(early)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), glitches=st.lists(st.integers(0, T.size - 1), max_size=20))
def test_a_reference_covering_the_stream_equals_none(seed, glitches):
    values = _velocity(seed)
    values[np.array(glitches, dtype=int)] += 3.0
    stream = TimeSeries(T, values)
    everything = Intervals.single(-1.0, 11.0)
    assert extreme_acceleration_spans(stream, factor=2.0, reference=everything) == (
        extreme_acceleration_spans(stream, factor=2.0)
    )


def test_no_reference_step_gives_no_spans():
    values = _velocity(0)
    values[500] += 5.0
    one_sample = Intervals.single(4.999, 5.001)
    spans = extreme_acceleration_spans(TimeSeries(T, values), factor=2.0, reference=one_sample)
    assert len(spans) == 0
