"""Recordings to and from pynapple objects: exact round trips, the layout pynapple users get,
objects made in pynapple, the checks of from_arrays, and the message when pynapple is missing."""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings

import numpy as np
import pytest

from conftest import build_recording
from neuropoyo.data.importers.common import DroppedDataWarning, RepairedDataWarning
from neuropoyo.data.importers.pynapple import from_pynapple, to_pynapple
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.simulate import LABS, make_animal, simulate_session
from neuropoyo.data.splits import assign_splits
from neuropoyo.errors import DataError


@pytest.fixture(scope="module")
def nap():
    return pytest.importorskip("pynapple", reason="pynapple is optional: pip install 'neuropoyo[pynapple]'")


def _simulated(task: str):
    recording = simulate_session(
        animal=make_animal("m", n_neurons=20), day=0, task=task, lab=LABS[0], n_trials=10, duration_s=20.0
    )
    return assign_splits(recording)


@pytest.mark.parametrize(
    "recording",
    [_simulated("center_out"), _simulated("random_target"), build_recording()],
    ids=["center_out", "random_target", "gap_and_silent_unit"],
)
def test_round_trip_through_pynapple_is_exact(nap, recording):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither side repairs, drops or warns
        session = to_pynapple(recording)
        assert from_pynapple(**session.arguments()) == recording


def test_pynapple_objects_hold_units_behavior_and_spans(nap):
    recording = build_recording()  # unit u4 never fires; domain [0, 9) and [11, 20)
    session = to_pynapple(recording)
    units = session.units
    assert list(units.keys()) == list(range(5))
    np.testing.assert_array_equal(units.get_info("unit_id").to_numpy(), recording.units.ids)
    np.testing.assert_array_equal(units.get_info("electrode").to_numpy(), np.arange(5))
    for row in range(5):
        np.testing.assert_array_equal(units[row].t, recording.spikes.times[recording.spikes.unit_index == row])
    assert len(units[4].t) == 0
    np.testing.assert_array_equal(session.domain.start, [0.0, 11.0])
    np.testing.assert_array_equal(session.domain.end, [9.0, 20.0])
    vel = session.behavior["hand_vel"]
    np.testing.assert_array_equal(vel.t, recording.behavior["hand_vel"].timestamps)
    assert vel.d.dtype == np.float32 and list(vel.get_info("unit")) == ["m/s", "m/s"]
    np.testing.assert_array_equal(session.trials.get_info("target_id").to_numpy(), [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(session.intervals["reach"].start, recording.intervals["reach"].start)
    assert session.info == recording.info


def test_objects_made_in_pynapple_take_their_ids_and_time_supports(nap):
    """Keys name units without a unit_id column; a Tsd is a one-column stream; the default domain
    is the union of time supports, closed spans read so that a time on an end stays inside."""
    units = nap.TsGroup({3: nap.Ts(np.array([0.5, 2.0])), 7: nap.Ts(np.array([1.0, 1.5]))})
    speed = nap.Tsd(t=np.array([0.0, 1.0, 3.0]), d=np.array([1.0, 2.0, 3.0]))
    recording = from_pynapple(units, behavior={"speed": speed}, recording_id="made", task="run")
    np.testing.assert_array_equal(recording.units.ids, ["3", "7"])
    np.testing.assert_array_equal(recording.spikes.times, [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_array_equal(recording.spikes.unit_index, [0, 1, 1, 0])
    assert recording.behavior["speed"].values.shape == (3, 1)
    assert recording.domain == Intervals([0.0], [math.nextafter(3.0, math.inf)])
    assert (recording.info.task, recording.splits) == ("run", {})


def test_pynapple_input_gets_the_checks_of_from_arrays(nap):
    units = nap.TsGroup({0: nap.Ts(np.array([0.5, 2.0]))}, metadata={"unit_id": ["a"]})
    speed = nap.Tsd(t=np.array([0.0, 1.0, 2.0, 3.0]), d=np.array([1.0, np.nan, 2.0, 3.0]))
    with pytest.warns(RepairedDataWarning, match=r"1 speed sample\(s\) holding NaN \(dropped\)"):
        recording = from_pynapple(units, behavior={"speed": speed}, recording_id="r")
    np.testing.assert_array_equal(recording.behavior["speed"].timestamps, [0.0, 2.0, 3.0])
    with pytest.raises(DataError, match=r"from_arrays: 1 speed sample\(s\) holding NaN"):
        from_pynapple(units, behavior={"speed": speed}, recording_id="r", strict=True)
    with pytest.warns(DroppedDataWarning, match=r"from_arrays: dropped 1 spike\(s\) outside the domain"):
        recording = from_pynapple(units, recording_id="r", domain=nap.IntervalSet([0.0], [1.0]))
    np.testing.assert_array_equal(recording.spikes.times, [0.5])


@pytest.mark.filterwarnings("ignore:Some starts and ends are equal")  # pynapple's own
def test_spans_pynapple_cannot_hold_are_named_in_a_warning(nap):
    recording = build_recording()
    touching = Intervals([0.5, 2.5], [2.5, 5.5], {"target_id": np.array([0, 1])})
    with pytest.warns(UserWarning, match=r"to_pynapple: trials: 1 span\(s\) empty, overlapping or touching"):
        session = to_pynapple(dataclasses.replace(recording, trials=touching))
    assert session.trials.end[0] < 2.5  # pynapple shortened it


def test_missing_pynapple_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynapple", None)  # import pynapple raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'neuropoyo\[pynapple\]'"):
        to_pynapple(build_recording())
