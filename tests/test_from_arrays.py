"""Recordings from arrays in memory: what is built, each bad input's repair or error (naming the
argument), the file round trip, and training on a recording whose splits write_dataset assigned."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.importers.arrays import recording_from_arrays
from neuropoyo.data.importers.common import DroppedDataWarning, RepairedDataWarning
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.data.store import read_recording, write_recording
from neuropoyo.errors import DataError

VEL_T = np.arange(0.0, 2.0, 0.1)  # 20 samples


def _arrays(**changes) -> dict:
    """Arguments of a small valid recording: units a, b and silent c; 5 spikes; hand_vel (20, 2)."""
    arguments = dict(
        recording_id="r1",
        spike_times=np.array([0.05, 0.4, 0.9, 1.2, 1.95]),
        spike_unit_ids=np.array(["b", "a", "b", "a", "b"]),
        unit_ids=["a", "b", "c"],
        unit_columns={"brain_area": np.array(["M1", "PMd", "M1"])},
        behavior={"hand_vel": (VEL_T, np.arange(40.0).reshape(20, 2))},
        behavior_units={"hand_vel": "m/s"},
    )
    return arguments | changes


def test_arrays_become_the_recording_they_describe():
    trials = {"start": [1.0, 0.1], "end": [1.5, 0.6], "target_id": [3, 7]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid input needs no repair: no warning
        recording = Recording.from_arrays(
            **_arrays(), trials=trials, intervals={"reach": ([1.2, 0.3], [1.4, 0.5])}, subject="m",
            task="center_out",
        )
    np.testing.assert_array_equal(recording.spikes.times, [0.05, 0.4, 0.9, 1.2, 1.95])
    np.testing.assert_array_equal(recording.spikes.unit_index, [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(recording.units.ids, ["a", "b", "c"])  # c never fires: kept
    np.testing.assert_array_equal(recording.units.columns["brain_area"], ["M1", "PMd", "M1"])
    stream = recording.behavior["hand_vel"]
    assert (stream.unit, stream.values.shape) == ("m/s", (20, 2))
    # sorted by start, columns carried along
    assert recording.trials == Intervals([0.1, 1.0], [0.6, 1.5], {"target_id": np.array([7, 3])})
    assert recording.intervals["reach"] == Intervals([0.3, 1.2], [0.5, 1.4])
    # default domain: first time to just past the last one, so the spike at 1.95 is inside
    assert recording.domain == Intervals([0.0], [math.nextafter(1.95, math.inf)])
    info = recording.info
    assert (info.recording_id, info.subject, info.task, info.brain_areas) == (
        "r1", "m", "center_out", ("M1", "PMd")
    )
    assert recording.splits == {}  # left to write_dataset
    assert recording == recording_from_arrays(
        **_arrays(), trials=trials, intervals={"reach": ([1.2, 0.3], [1.4, 0.5])}, subject="m",
        task="center_out",
    )


def test_integer_unit_ids_without_a_unit_list_are_sorted_as_numbers():
    recording = recording_from_arrays(
        recording_id="r", spike_times=[0.1, 0.2, 0.3], spike_unit_ids=[10, 2, 10], domain=(0, 1)
    )
    np.testing.assert_array_equal(recording.units.ids, ["2", "10"])
    np.testing.assert_array_equal(recording.spikes.unit_index, [1, 0, 1])
    # 1-D values become one column
    recording = recording_from_arrays(
        recording_id="r", spike_times=[], spike_unit_ids=[], behavior={"x": ([0.0, 0.5], [1.0, 2.0])}
    )
    assert recording.behavior["x"].values.shape == (2, 1) and len(recording.units) == 0


def test_unsorted_spike_times_are_sorted_with_their_units_or_refused_when_strict():
    arguments = _arrays(spike_times=[0.9, 0.05, 1.95, 0.4, 1.2], spike_unit_ids=["b", "b", "b", "a", "a"])
    with pytest.warns(RepairedDataWarning, match=r"from_arrays: repaired 2 spike time\(s\) out of order \(sorted\)"):
        recording = recording_from_arrays(**arguments)
    assert recording == recording_from_arrays(**_arrays())
    with pytest.raises(DataError, match=r"from_arrays: 2 spike time\(s\) out of order; sort spike times"):
        recording_from_arrays(**arguments, strict=True)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 100.0, allow_subnormal=False), st.integers(0, 4)),
        min_size=1, max_size=40, unique_by=lambda spike: spike[0],
    ),
    st.randoms(use_true_random=False),
)
def test_any_order_of_the_same_spikes_gives_the_same_recording(spikes, random):
    """Spikes given in any order, once repaired, equal the spikes given sorted."""
    shuffled = list(spikes)
    random.shuffle(shuffled)

    def build(pairs):
        times, units = zip(*pairs)
        return recording_from_arrays(
            recording_id="r", spike_times=times, spike_unit_ids=units, unit_ids=range(5), domain=(0, 101)
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairedDataWarning)
        assert build(shuffled) == build(sorted(spikes))


def test_a_unit_without_spikes_is_kept_but_a_spike_of_an_unlisted_unit_is_an_error():
    recording = recording_from_arrays(**_arrays(unit_ids=["a", "b", "c", "d"], unit_columns={}))
    assert list(recording.units.ids) == ["a", "b", "c", "d"]
    assert set(recording.spikes.unit_index) == {0, 1}
    with pytest.raises(
        DataError,
        match=r"from_arrays: spike_unit_ids holds 1 unit id\(s\) not in unit_ids \('b'; 3 spike\(s\)\); "
        "add them to unit_ids",
    ):
        recording_from_arrays(**_arrays(unit_ids=["a", "c"], unit_columns={}))
    with pytest.raises(DataError, match="from_arrays: unit_ids repeats 'a'; give every unit a distinct id"):
        recording_from_arrays(**_arrays(unit_ids=["a", "b", "a"], unit_columns={}))


def test_nan_behavior_rows_are_dropped_naming_the_stream_or_refused_when_strict():
    values = np.arange(40.0).reshape(20, 2)
    values[[3, 7], 1] = np.nan
    arguments = _arrays(behavior={"hand_vel": (VEL_T, values)})
    with pytest.warns(RepairedDataWarning, match=r"2 hand_vel sample\(s\) holding NaN \(dropped\)"):
        stream = recording_from_arrays(**arguments).behavior["hand_vel"]
    np.testing.assert_array_equal(stream.timestamps, np.delete(VEL_T, [3, 7]))
    assert not np.isnan(stream.values).any()
    with pytest.raises(DataError, match=r"from_arrays: 2 hand_vel sample\(s\) holding NaN; drop the NaN rows of hand_vel"):
        recording_from_arrays(**arguments, strict=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(spike_times=[0.1, 0.2]), "from_arrays: spike_times holds 2 times but spike_unit_ids holds 5 unit ids"),
        (
            dict(behavior={"hand_vel": (VEL_T, np.zeros((19, 2)))}),
            r"from_arrays: behavior\['hand_vel'\]: 20 timestamps but 19 rows of values",
        ),
        (dict(behavior={"hand_vel": (VEL_T, np.zeros((20, 2, 2)))}), r"behavior\['hand_vel'\]: values of shape \(20, 2, 2\)"),
        (dict(behavior={"hand_vel": VEL_T}), r"behavior\['hand_vel'\] must be a \(timestamps, values\) pair"),
        (dict(unit_columns={"brain_area": ["M1"]}), "from_arrays: unit_columns: units: column 'brain_area' has 1 rows"),
        (dict(trials=([0.1, 0.5], [0.4])), "from_arrays: trials: intervals: start has 2 values but end has 1"),
        (dict(trials={"begin": [0.1]}), "from_arrays: trials has keys \\['begin'\\]; give 'start' and 'end'"),
        (dict(spike_times=np.zeros((5, 1))), r"from_arrays: spike_times must be 1-D .* got shape \(5, 1\)"),
    ],
)
def test_arrays_that_do_not_pair_up_are_errors_naming_the_argument(changes, message):
    with pytest.raises(DataError, match=message):
        recording_from_arrays(**_arrays(**changes))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(trials=([0.1, 0.5], [0.6, 0.9])), "from_arrays: trials 0 .* and 1 .* overlap"),
        (dict(domain=([1.0, 0.0], [2.0, 0.5])), "from_arrays: domain spans must be finite, sorted by start and disjoint"),
        (dict(behavior_units={"hand_pos": "m"}), r"from_arrays: behavior_units names \['hand_pos'\], not in behavior"),
        (dict(splits={"train": ([0.0], [1.0]), "test": ([0.5], [2.0])}), "(?s)from_arrays: invalid recording .*splits: test and train overlap"),
        (dict(intervals={"reach": ([0.5], [0.2])}), r"(?s)from_arrays: invalid recording .*intervals/reach: 1 interval\(s\) with negative duration"),
    ],
)
def test_inconsistent_spans_are_errors_naming_the_argument(changes, message):
    with pytest.raises(DataError, match=message):
        recording_from_arrays(**_arrays(**changes))


def test_data_outside_a_given_domain_are_dropped_with_a_warning():
    with pytest.warns(DroppedDataWarning, match=r"from_arrays: dropped 2 spike\(s\) outside the domain, 10 hand_vel"):
        recording = recording_from_arrays(**_arrays(domain=(0.0, 1.0)))
    np.testing.assert_array_equal(recording.spikes.times, [0.05, 0.4, 0.9])
    assert len(recording.behavior["hand_vel"]) == 10


def test_written_and_read_back_it_is_the_same_recording(tmp_path):
    recording = recording_from_arrays(
        **_arrays(), trials={"start": [0.1, 1.0], "end": [0.6, 1.5], "success": [True, False]},
        splits={"train": ([0.0], [1.0]), "valid": ([1.0], [1.5]), "test": ([1.5], [2.0])},
    )
    assert read_recording(write_recording(recording, tmp_path / "r1.h5")) == recording


def test_a_recording_without_splits_is_written_with_splits_and_trains(tmp_path):
    """write_dataset assigns the splits (contiguous blocks: no trials); training runs 2 steps on it."""
    from conftest import tiny_run_config

    from neuropoyo.training.loop import train

    rng = np.random.default_rng(0)
    t = np.arange(0.0, 30.0, 0.01)
    velocity = np.stack([np.sin(t), np.cos(t)], axis=1).astype(np.float32)
    times = np.sort(rng.uniform(0.0, 30.0, 3000))
    recording = recording_from_arrays(
        recording_id="arrays_0", spike_times=times, spike_unit_ids=rng.integers(0, 8, times.size),
        unit_ids=range(8), behavior={"hand_vel": (t, velocity)}, brainset="mine",
    )
    (path,) = write_dataset([recording], tmp_path / "data")
    splits = read_recording(path).splits
    assert sorted(splits) == ["test", "train", "valid"] and all(len(s) for s in splits.values())
    config = tiny_run_config(lr=1e-3, max_steps=2, checkpoint_every=2)
    result = train(config, [tmp_path / "data"], tmp_path / "run", progress=False)
    assert result.steps == 2 and np.isfinite(result.final_loss)
