"""Rules shared by the importers: behavior samples that repeat a timestamp are dropped (the first
kept) with a warning that counts them, for NWB and brainsets files alike."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.brainsets import read_brainsets
from neuropoyo.data.importing import DroppedDataWarning, keep_recorded
from neuropoyo.data.nwb import read_nwb
from neuropoyo.data.validate import validate_recording

# hand_vel at 0.25 (once), 0.5 (twice), 0.75 (three times), 1.0: three repeats; row k holds k
REPEATED_T = np.array([0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0])
ROWS = np.arange(2 * REPEATED_T.size, dtype=np.float64).reshape(-1, 2)
FIRST_ROWS = ROWS[[0, 1, 3, 6]]
REPEATS = r"dropped 3 hand_vel sample\(s\) repeating a timestamp \(kept the first\)$"


def _recording(timestamps: np.ndarray, values: np.ndarray) -> Recording:
    return Recording(
        info=RecordingInfo("dup"),
        spikes=Spikes.empty(),
        units=Units(["u0"]),
        behavior={"hand_vel": TimeSeries(timestamps, values, "m/s")},
        domain=Intervals.single(0.0, 100.0),
    )


@settings(max_examples=100, deadline=None)
@given(
    ticks=st.lists(st.integers(0, 30), max_size=40).map(sorted),
    nan=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_kept_samples_are_the_first_valid_one_of_each_timestamp(ticks, nan):
    timestamps = np.array(ticks, dtype=np.float64) / 4
    values = np.arange(timestamps.size, dtype=np.float64)[:, None]
    values[np.array(nan[: timestamps.size], dtype=bool)] = np.nan
    valid = ~np.isnan(values[:, 0])
    expected_t, first = np.unique(timestamps[valid], return_index=True)
    repeats = int(valid.sum()) - expected_t.size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = keep_recorded(_recording(timestamps, values), Path("f.nwb"))
    stream = kept.behavior["hand_vel"]
    np.testing.assert_array_equal(stream.timestamps, expected_t)
    np.testing.assert_array_equal(stream.values[:, 0], values[valid][first, 0])
    validate_recording(kept)
    text = " ".join(str(w.message) for w in caught if w.category is DroppedDataWarning)
    counted = f"{repeats} hand_vel sample(s) repeating a timestamp (kept the first)"
    assert (counted in text) == (repeats > 0)


def test_nwb_repeated_timestamps_keep_the_first_sample(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="repeats",
        identifier="repeats",
        session_start_time=datetime(2020, 1, 2, tzinfo=timezone.utc),
    )
    nwb.add_unit(spike_times=[0.3, 0.9], obs_intervals=[[0.0, 2.0]])
    module = nwb.create_processing_module("behavior", "behavior")
    module.add(pynwb.TimeSeries(name="hand_vel", data=ROWS, unit="m/s", timestamps=REPEATED_T))
    path = tmp_path / "lab_repeats.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    with pytest.warns(DroppedDataWarning, match=REPEATS):
        recording = read_nwb(path)
    np.testing.assert_array_equal(recording.behavior["hand_vel"].timestamps, np.unique(REPEATED_T))
    np.testing.assert_array_equal(recording.behavior["hand_vel"].values, FIRST_ROWS)


def _interval(group: h5py.Group, start, end) -> None:
    group.attrs.update(object="Interval", _unicode_keys=np.array([], dtype="S"))
    group.attrs["timekeys"] = np.array([b"start", b"end"])
    group.create_dataset("start", data=np.asarray(start, dtype=np.float64))
    group.create_dataset("end", data=np.asarray(end, dtype=np.float64))


def test_brainsets_repeated_timestamps_keep_the_first_sample(tmp_path):
    """A temporaldata file written with h5py alone; its irregular ``hand`` series repeats times."""
    path = tmp_path / "lab_repeats.h5"
    with h5py.File(path, "w") as file:
        file.attrs.update(object="Data", absolute_start=0.0)
        spikes = file.create_group("spikes")
        spikes.attrs.update(object="IrregularTimeSeries", _unicode_keys=np.array([], dtype="S"))
        spikes.create_dataset("timestamps", data=[0.3, 0.9])
        spikes.create_dataset("unit_index", data=np.array([0, 0]))
        _interval(spikes.create_group("domain"), [0.0], [2.0])
        units = file.create_group("units")
        units.attrs.update(object="ArrayDict", _unicode_keys=np.array([b"id"]))
        units.create_dataset("id", data=np.array([b"a"]))
        hand = file.create_group("hand")
        hand.attrs.update(object="IrregularTimeSeries", _unicode_keys=np.array([], dtype="S"))
        hand.create_dataset("timestamps", data=REPEATED_T)
        hand.create_dataset("vel", data=ROWS)
        _interval(hand.create_group("domain"), [0.0], [2.0])
    with pytest.warns(DroppedDataWarning, match=REPEATS):
        recording = read_brainsets(path)
    np.testing.assert_array_equal(recording.behavior["hand_vel"].timestamps, np.unique(REPEATED_T))
    np.testing.assert_array_equal(recording.behavior["hand_vel"].values, FIRST_ROWS)
