"""Rules shared by the importers, for NWB and brainsets files alike: repairs (times out of order
sorted; NaN times, NaN rows, repeated behavior timestamps and empty trials dropped, the first sample
of a timestamp kept) are counted in one warning, and a strict import refuses the file instead."""

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
from neuropoyo.data.importers.brainsets import read_brainsets
from neuropoyo.cli import main
from neuropoyo.data.importers.common import RepairedDataWarning, Repairs, keep_recorded, time_sorted
from neuropoyo.data.importers.nwb import read_nwb
from neuropoyo.data.store import read_recording
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError

# hand_vel at 0.25 (once), 0.5 (twice), 0.75 (three times), 1.0: three repeats; row k holds k
REPEATED_T = np.array([0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0])
ROWS = np.arange(2 * REPEATED_T.size, dtype=np.float64).reshape(-1, 2)
FIRST_ROWS = ROWS[[0, 1, 3, 6]]
REPEATS = r"repaired 3 hand_vel sample\(s\) repeating a timestamp \(dropped, kept the first\);"


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
        repairs = Repairs(Path("f.nwb"))
        kept = keep_recorded(_recording(timestamps, values), Path("f.nwb"), repairs)
    stream = kept.behavior["hand_vel"]
    np.testing.assert_array_equal(stream.timestamps, expected_t)
    np.testing.assert_array_equal(stream.values[:, 0], values[valid][first, 0])
    validate_recording(kept)
    counted = f"{repeats} hand_vel sample(s) repeating a timestamp (dropped, kept the first)"
    assert (counted in repairs.made) == (repeats > 0)
    assert (f"{int((~valid).sum())} hand_vel sample(s) holding NaN (dropped)" in repairs.made) == (
        not valid.all()
    )
    assert not caught  # the importer warns once per file, after all repairs


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
    with pytest.warns(RepairedDataWarning, match=REPEATS):
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
    with pytest.warns(RepairedDataWarning, match=REPEATS):
        recording = read_brainsets(path)
    np.testing.assert_array_equal(recording.behavior["hand_vel"].timestamps, np.unique(REPEATED_T))
    np.testing.assert_array_equal(recording.behavior["hand_vel"].values, FIRST_ROWS)


# ------------------------------------------------------------------------------------ repairs


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-5, 5), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=30
    )
)
def test_time_sorted_drops_non_finite_times_and_sorts_pairs_together(values):
    times = np.array(values, dtype=np.float64)
    rows = np.arange(times.size)
    repairs = Repairs(Path("f.h5"))
    sorted_times, sorted_rows = time_sorted(times, (rows,), "spike", repairs)
    finite = np.isfinite(times)
    assert np.all(np.diff(sorted_times) >= 0) and np.isfinite(sorted_times).all()
    assert sorted(sorted_rows.tolist()) == rows[finite].tolist()  # each kept once, paired
    np.testing.assert_array_equal(sorted_times, times[sorted_rows])
    descents = int((np.diff(times[finite]) < 0).sum())
    assert repairs.made == [
        *([f"{(~finite).sum()} spike time(s) NaN or infinite (dropped)"] if not finite.all() else []),
        *([f"{descents} spike time(s) out of order (sorted)"] if descents else []),
    ]
    if repairs.made:
        with pytest.raises(DataError, match=r"^f.h5: \d+ spike time\(s\) .*--strict"):
            time_sorted(times, (rows,), "spike", Repairs(Path("f.h5"), strict=True))


def _nwb_with_disorder(path: Path) -> Path:
    """Unit a's times out of order once (0.5 before 0.1) and one NaN; unit b in order; a trial of
    zero length at 1.5 next to the trial [0, 1)."""
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="disorder",
        identifier="disorder",
        session_start_time=datetime(2020, 1, 2, tzinfo=timezone.utc),
    )
    nwb.add_unit(spike_times=[0.5, 0.1, np.nan, 0.9], obs_intervals=[[0.0, 2.0]])
    nwb.add_unit(spike_times=[0.2, 0.7], obs_intervals=[[0.0, 2.0]])
    nwb.add_trial(start_time=0.0, stop_time=1.0)
    nwb.add_trial(start_time=1.5, stop_time=1.5)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_nwb_repairs_are_counted_once_and_refused_when_strict(tmp_path):
    path = _nwb_with_disorder(tmp_path / "lab_disorder.nwb")
    repaired = (
        r"repaired 1 trial\(s\) of zero length \(dropped\), 1 spike time\(s\) NaN or infinite "
        r"\(dropped\), 1 spike time\(s\) out of order \(sorted\);"
    )
    with pytest.warns(RepairedDataWarning, match=repaired) as caught:
        recording = read_nwb(path, behavior=())
    assert len([w for w in caught if w.category is RepairedDataWarning]) == 1
    np.testing.assert_array_equal(recording.spikes.times, [0.1, 0.2, 0.5, 0.7, 0.9])
    np.testing.assert_array_equal(recording.spikes.unit_index, [0, 1, 0, 1, 0])
    assert recording.trials == Intervals.single(0.0, 1.0)
    strict = r"lab_disorder.nwb: 1 trial\(s\) of zero length; fix start_time/stop_time .*--strict"
    with pytest.raises(DataError, match=strict):
        read_nwb(path, behavior=(), strict=True)


def test_nwb_trials_ending_before_they_start_are_an_error(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(
        session_description="s", identifier="s",
        session_start_time=datetime(2020, 1, 2, tzinfo=timezone.utc),
    )
    nwb.add_unit(spike_times=[0.3], obs_intervals=[[0.0, 5.0]])
    nwb.add_trial(start_time=0.0, stop_time=1.0)
    nwb.add_trial(start_time=3.0, stop_time=2.0)
    path = tmp_path / "lab_backwards.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    with pytest.raises(DataError, match=r"lab_backwards.nwb: 1 trial\(s\) .*ending before they "
                       r"start \(first: row 1, \[3.0, 2.0\)\); fix start_time/stop_time"):
        read_nwb(path, behavior=())


def _brainsets_with_disorder(path: Path) -> Path:
    """Spike times out of order (two descents) with one NaN; ``hand.vel`` timestamps out of order."""
    with h5py.File(path, "w") as file:
        file.attrs.update(object="Data", absolute_start=0.0)
        spikes = file.create_group("spikes")
        spikes.attrs.update(object="IrregularTimeSeries", _unicode_keys=np.array([], dtype="S"))
        spikes.create_dataset("timestamps", data=[0.3, 0.1, np.nan, 0.9, 0.5])
        spikes.create_dataset("unit_index", data=np.array([0, 1, 0, 1, 0]))
        _interval(spikes.create_group("domain"), [0.0], [2.0])
        units = file.create_group("units")
        units.attrs.update(object="ArrayDict", _unicode_keys=np.array([b"id"]))
        units.create_dataset("id", data=np.array([b"a", b"b"]))
        hand = file.create_group("hand")
        hand.attrs.update(object="IrregularTimeSeries", _unicode_keys=np.array([], dtype="S"))
        hand.create_dataset("timestamps", data=[0.5, 0.25, 1.0])
        hand.create_dataset("vel", data=ROWS[:3])
        _interval(hand.create_group("domain"), [0.0], [2.0])
    return path


def test_brainsets_repairs_and_strict_import(tmp_path):
    path = _brainsets_with_disorder(tmp_path / "lab_disorder.h5")
    repaired = (
        r"repaired 1 spike time\(s\) NaN or infinite \(dropped\), 2 spike time\(s\) out of order "
        r"\(sorted\), 1 hand.vel sample time\(s\) out of order \(sorted\);"
    )
    with pytest.warns(RepairedDataWarning, match=repaired):
        recording = read_brainsets(path)
    np.testing.assert_array_equal(recording.spikes.times, [0.1, 0.3, 0.5, 0.9])
    np.testing.assert_array_equal(recording.spikes.unit_index, [1, 0, 0, 1])
    np.testing.assert_array_equal(recording.behavior["hand_vel"].timestamps, [0.25, 0.5, 1.0])
    np.testing.assert_array_equal(recording.behavior["hand_vel"].values, ROWS[[1, 0, 2]])
    with pytest.raises(DataError, match=r"lab_disorder.h5: 1 spike time\(s\) NaN or infinite"):
        read_brainsets(path, strict=True)


def test_cli_strict_refuses_what_the_default_repairs(tmp_path, capsys):
    path = _brainsets_with_disorder(tmp_path / "lab_disorder.h5")
    assert main(["prepare", "brainsets", str(path), "--out", str(tmp_path / "a"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "lab_disorder.h5: 1 spike time(s) NaN or infinite" in err
    assert "Traceback" not in err and not list(tmp_path.glob("a/*"))  # nothing written
    assert main(["prepare", "brainsets", str(path), "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "neuropoyo: warning: " in err and "2 spike time(s) out of order (sorted)" in err
    validate_recording(read_recording(tmp_path / "b" / "lab_disorder.h5"))
