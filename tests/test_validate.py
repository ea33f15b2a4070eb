"""In-memory validation names the field and the fix for every kind of bad recording."""

import dataclasses

import numpy as np
import pytest

from conftest import build_recording
from neuropoyo.data import Intervals, Spikes, TimeSeries
from neuropoyo.data.directory import behavior_holes, check_recordings
from neuropoyo.data.store import write_recording
from neuropoyo.data.validate import InvalidRecordingError, recording_problems, validate_recording

GOOD = build_recording()


def problems_of(**changes) -> str:
    return "\n".join(recording_problems(dataclasses.replace(GOOD, **changes)))


def test_good_recording_has_no_problems():
    assert recording_problems(GOOD) == []


def test_unsorted_spike_times():
    times = GOOD.spikes.times.copy()
    times[[3, 4]] = times[[4, 3]]
    assert "spikes/times: not sorted (index 4" in problems_of(spikes=Spikes(times, GOOD.spikes.unit_index))


def test_nan_spike_times():
    times = GOOD.spikes.times.copy()
    times[7] = np.nan
    assert "spikes/times: 1 non-finite" in problems_of(spikes=Spikes(times, GOOD.spikes.unit_index))


def test_unit_index_out_of_range():
    index = GOOD.spikes.unit_index.copy()
    index[2] = 5
    text = problems_of(spikes=Spikes(GOOD.spikes.times, index))
    assert "spikes/unit_index: 1 index(es) outside the unit table of 5 units" in text


def test_behavior_length_mismatch():
    stream = GOOD.behavior["hand_vel"]
    bad = TimeSeries(stream.timestamps[:-1], stream.values, stream.unit)
    text = problems_of(behavior={**GOOD.behavior, "hand_vel": bad})
    assert "behavior/hand_vel:" in text and "one row of values per timestamp" in text


def test_overlapping_trials():
    trials = Intervals([0.0, 2.0], [3.0, 4.0])
    assert "trials: intervals #0 [0.0, 3.0) and #1 [2.0, 4.0) overlap" in problems_of(trials=trials)


def test_negative_duration():
    text = problems_of(intervals={"reach": Intervals([1.0, 5.0], [2.0, 4.0])})
    assert "intervals/reach: 1 interval(s) with negative duration" in text


def test_overlapping_splits():
    splits = {"train": Intervals.single(0.0, 10.0), "test": Intervals.single(5.0, 6.0)}
    assert "splits: test and train overlap" in problems_of(splits=splits)


def test_spikes_outside_domain():
    text = problems_of(domain=Intervals.single(0.0, 5.0))
    assert "spike(s) outside the recorded domain" in text


def test_validate_raises_with_source_and_every_problem():
    times = GOOD.spikes.times.copy()
    times[0] = np.nan
    bad = dataclasses.replace(
        GOOD, spikes=Spikes(times, GOOD.spikes.unit_index), trials=Intervals([0, 1], [2, 3])
    )
    with pytest.raises(InvalidRecordingError) as info:
        validate_recording(bad, "my_file.h5")
    assert str(info.value).startswith("my_file.h5: invalid recording (2 problem(s))")


def test_repeated_behavior_timestamps():
    stream = GOOD.behavior["hand_vel"]
    timestamps = stream.timestamps.copy()
    timestamps[5] = timestamps[4]
    bad = TimeSeries(timestamps, stream.values, stream.unit)
    text = problems_of(behavior={**GOOD.behavior, "hand_vel": bad})
    assert (
        f"behavior/hand_vel/timestamps: 1 repeated timestamp(s) (first: index 5 repeats "
        f"{timestamps[4]!r} of index 4); behavior timestamps must increase strictly"
    ) in text


def test_tied_spike_times_are_valid():
    times = GOOD.spikes.times.copy()
    times[4] = times[3]
    assert problems_of(spikes=Spikes(times, GOOD.spikes.unit_index)) == ""


def test_behavior_missing_for_a_whole_window_is_a_dataset_warning(tmp_path):
    """Samples every 0.5 s except for [2.5, 6) inside the domain [0, 10) + [12, 20): only that
    3.5 s stretch counts (the domain gap and the half-step edges are shorter than a window)."""
    times = np.concatenate([np.arange(0, 3, 0.5), np.arange(6, 10, 0.5), np.arange(12, 20, 0.5)])
    stream = TimeSeries(times, np.zeros((times.size, 2)), "m/s")
    domain = Intervals([0.0, 12.0], [10.0, 20.0])
    assert behavior_holes(stream, domain, 1.0) == Intervals.single(2.5, 6.0)
    assert behavior_holes(stream, domain, 4.0) == Intervals.empty()
    no_samples = TimeSeries(np.zeros(0), np.zeros((0, 2)), "m/s")
    assert behavior_holes(no_samples, domain, 1.0) == domain
    recording = dataclasses.replace(
        GOOD, domain=domain, spikes=Spikes.empty(), trials=Intervals.empty(), intervals={},
        behavior={"hand_vel": stream},
    )
    (check,) = check_recordings([write_recording(recording, tmp_path / "gappy.h5")])
    assert not check.fatal
    assert (
        "behavior/hand_vel: no samples in 1 stretch(es) of recorded time of >= 1 s, 3.5 s in all "
        "(longest 3.5 s from 2.500 s); windows there have no targets" in check.warnings[1]
    )
