"""Interval algebra checked against brute-force membership on a fine grid."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.data import Intervals

PROBES = np.arange(-2, 42) + 0.5  # half-integers: never on an integer boundary


@st.composite
def disjoint_intervals(draw):
    """Sorted, disjoint spans with integer bounds in [0, 40]."""
    points = sorted(draw(st.sets(st.integers(0, 40), max_size=12)))
    points = points[: len(points) // 2 * 2]
    spans = Intervals(np.array(points[0::2], float), np.array(points[1::2], float))
    return spans


def member(spans: Intervals, t: np.ndarray) -> np.ndarray:
    return np.array([np.any((spans.start <= x) & (x < spans.end)) for x in t], dtype=bool)


@settings(max_examples=200, deadline=None)
@given(disjoint_intervals(), disjoint_intervals())
def test_set_algebra_matches_brute_force(a, b):
    assert np.array_equal(a.contains(PROBES), member(a, PROBES))
    assert np.array_equal(a.intersect(b).contains(PROBES), member(a, PROBES) & member(b, PROBES))
    assert np.array_equal(a.difference(b).contains(PROBES), member(a, PROBES) & ~member(b, PROBES))
    assert np.array_equal(a.union(b).contains(PROBES), member(a, PROBES) | member(b, PROBES))
    gaps = a.complement(0.0, 40.0)
    inside = (PROBES > 0) & (PROBES < 40)
    assert np.array_equal(gaps.contains(PROBES), inside & ~member(a, PROBES))
    for result in (a.intersect(b), a.difference(b), a.union(b), gaps):
        assert result.is_disjoint()
        assert np.all(result.durations() > 0)


@settings(max_examples=100, deadline=None)
@given(disjoint_intervals(), st.integers(-5, 45), st.integers(0, 20))
def test_slice_clips_and_shifts(a, start, length):
    end = start + length
    sliced = a.slice(start, end)
    window = PROBES[(PROBES >= start) & (PROBES < end)]
    assert np.array_equal(sliced.contains(window - start), member(a, window))
    assert np.all(sliced.start >= 0) and np.all(sliced.end <= length)


def test_intersect_keeps_columns_of_each_piece():
    a = Intervals([0, 10], [8, 20], {"target": np.array([3, 7])})
    b = Intervals([2, 6, 12], [4, 14, 30])
    out = a.intersect(b)
    assert out.start.tolist() == [2, 6, 10, 12]
    assert out.end.tolist() == [4, 8, 14, 20]
    assert out.columns["target"].tolist() == [3, 3, 7, 7]


def test_merged_fuses_overlapping_and_touching_spans():
    spans = Intervals([5, 0, 2, 10], [6, 2, 4, 11]).merged()
    assert spans.start.tolist() == [0, 5, 10] and spans.end.tolist() == [4, 6, 11]


def test_column_length_mismatch_is_rejected():
    try:
        Intervals([0, 1], [1, 2], {"x": np.array([1])})
    except ValueError as error:
        assert "column 'x' has 1 rows" in str(error)
    else:
        raise AssertionError("mismatched column accepted")


def well_formed(spans: Intervals) -> bool:
    """What the checking constructor guarantees: float64 (K,) bounds, every column K rows."""
    k = len(spans.start)
    return (
        spans.start.dtype == np.float64
        and spans.end.dtype == np.float64
        and spans.start.shape == spans.end.shape == (k,)
        and all(column.shape[0] == k for column in spans.columns.values())
        and Intervals(spans.start, spans.end, spans.columns) == spans
    )


@settings(max_examples=100, deadline=None)
@given(disjoint_intervals(), disjoint_intervals(), st.integers(-5, 45))
def test_derived_intervals_are_well_formed(a, b, start):
    """Operations build their results without re-running the checks; the results must pass them."""
    labelled = Intervals(a.start, a.end, {"condition": np.arange(len(a)), "cue": np.ones((len(a), 2))})
    derived = (
        labelled.select(labelled.start > 3),
        labelled.select(np.arange(len(labelled))[::-1]),
        labelled.shift(1.5),
        labelled.clip(start, start + 7),
        labelled.slice(start, start + 7),
        labelled.intersect(b),
        labelled.difference(b),
        a.union(b),
        a.merged(),
    )
    assert all(well_formed(spans) for spans in derived)
    assert labelled.intersect(b).columns.keys() == {"condition", "cue"}


def test_select_with_a_scalar_index_is_rejected():
    spans = Intervals([0, 2], [1, 3])
    try:
        spans.select(0)
    except ValueError as error:
        assert "start must be 1-D" in str(error)
    else:
        raise AssertionError("scalar selection accepted")
