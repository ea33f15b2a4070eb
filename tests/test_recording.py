"""Recording.slice and Recording.restrict semantics."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import build_recording
from neuropoyo.data import Intervals, Recording, RecordingInfo

REC = build_recording()


@settings(max_examples=150, deadline=None)
@given(st.floats(-5, 25), st.floats(0, 6))
def test_slice_equals_masking(start, length):
    end = start + length
    window = REC.slice(start, end)
    t = REC.spikes.times
    keep = (t >= start) & (t < end)
    assert np.array_equal(window.spikes.times, t[keep] - start)
    assert np.array_equal(window.spikes.unit_index, REC.spikes.unit_index[keep])
    for name, stream in REC.behavior.items():
        keep = (stream.timestamps >= start) & (stream.timestamps < end)
        assert np.array_equal(window.behavior[name].values, stream.values[keep])
        assert np.array_equal(window.behavior[name].timestamps, stream.timestamps[keep] - start)
    assert window.units == REC.units and window.info == REC.info
    assert np.all(window.domain.start >= 0) and np.all(window.domain.end <= end - start)
    assert window.domain.total_duration() == pytest.approx(
        REC.domain.intersect(Intervals.single(start, end)).total_duration()
    )


def test_slice_keeps_trial_columns_and_clips_trials():
    window = REC.slice(3.2, 6.2)
    assert window.trials.start.tolist() == pytest.approx([0.0, 2.8])
    assert window.trials.end.tolist() == pytest.approx([2.3, 3.0])
    assert window.trials.columns["target_id"].tolist() == [1, 0]


def test_window_past_the_ends_is_empty_but_keeps_units():
    window = REC.slice(100.0, 101.0)
    assert len(window.spikes) == 0 and len(window.domain) == 0
    assert all(len(s) == 0 for s in window.behavior.values())
    assert len(window.units) == len(REC.units)


def test_restrict_drops_everything_outside():
    keep = Intervals([2.0, 12.0], [4.0, 15.0])
    part = REC.restrict(keep)
    assert np.all(keep.contains(part.spikes.times))
    assert part.domain.total_duration() == pytest.approx(5.0)
    inside = keep.contains(REC.spikes.times)
    assert np.array_equal(part.spikes.times, REC.spikes.times[inside])
    for name, stream in part.behavior.items():
        assert np.all(keep.contains(stream.timestamps))
        assert len(stream) == int(keep.contains(REC.behavior[name].timestamps).sum())


def test_restrict_to_a_gap_leaves_no_data():
    part = REC.restrict(Intervals.single(9.2, 10.8))
    assert len(part.spikes) == 0 and len(part.domain) == 0


@pytest.mark.parametrize("rid", ["", "lab/session", "..", "../../x", "a\\b", "a\0b", ".hidden"])
def test_recording_id_must_be_a_plain_name(rid):
    """Ids name files (<recording_id>.h5): no path, traversal, hidden file or NUL gets through."""
    with pytest.raises(ValueError, match="must be a non-empty name without '/'"):
        RecordingInfo(recording_id=rid)
    stream = REC.behavior["hand_vel"]
    with pytest.raises(ValueError, match="behavior stream name .* must be a non-empty name"):
        dataclasses.replace(REC, behavior={rid: stream})  # stream names name report files too


def test_info_dict_round_trip_and_unknown_field():
    info = REC.info
    assert RecordingInfo.from_dict(info.to_dict()) == info
    with pytest.raises(ValueError, match="unknown fields"):
        RecordingInfo.from_dict({**info.to_dict(), "colour": "blue"})


@settings(max_examples=150, deadline=None)
@given(st.floats(-2, 22), st.floats(0.5, 3), st.floats(-1, 1), st.floats(0, 4))
def test_restrict_shortcut_equals_full_restrict(start, length, keep_from, keep_length):
    """A window lying inside keep comes back unchanged without the work; whenever the shortcut is
    taken, it must equal what the full restrict computes."""
    window = REC.slice(start, start + length)
    keep = Intervals.single(keep_from, keep_from + keep_length)
    fast = window.restrict(keep)
    with mock.patch.object(Recording, "_lies_within", return_value=False):
        full = window.restrict(keep)
    assert fast == full


def test_restrict_shortcut_is_taken_for_a_window_inside_keep():
    window = REC.slice(0.5, 2.5)
    assert len(window.domain) == 1
    assert window.restrict(Intervals.single(-1.0, 5.0)) is window
    assert window.restrict(Intervals.single(0.1, 5.0)) is not window
