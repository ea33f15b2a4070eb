"""brainsets import: session files written with torch_brain's own classes read back exactly (spikes,
units, behavior, trials, splits, gaps), vocabulary words equal torch_brain's, the command line,
clear errors, and a hand-written file that needs no torch_brain."""

from __future__ import annotations

import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuropoyo.cli import main
from neuropoyo.data.importers.brainsets import DroppedDataWarning, prepare_brainsets, read_brainsets
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.splits import block_splits
from neuropoyo.data.store import read_recording
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError, MissingKeyError
from neuropoyo.tokens.vocab import session_key_of, unit_keys

BRAINSET = "perich_miller_population_2018"
SESSION = "c_20131003_center_out_reaching"
UNIT_IDS = np.array(["group_M1/elec1/unit_0", "group_M1/elec2/unit_1", "group_PMd/elec7/unit_2"])
CURSOR_T = np.concatenate([np.arange(1000) * 0.01, 20.0 + np.arange(1000) * 0.01])
TRIAL_START = np.array([1.0, 4.0, 7.0, 21.0, 24.0, 27.0])
GO_CUE = TRIAL_START + 0.5
TRIAL_END = TRIAL_START + 2.0
NO_TORCH_BRAIN = "writing session files with torch_brain's own classes needs torch_brain"
DROPPED = "ignore::neuropoyo.data.importers.common.DroppedDataWarning"


@pytest.fixture(scope="module")
def tb():
    return pytest.importorskip("torch_brain.data", reason=NO_TORCH_BRAIN)


def _spike_times() -> np.ndarray:
    """Spikes from 0 to the last cursor sample, some in the behavior gap [10, 20)."""
    inner = np.random.default_rng(0).uniform(0.1, 29.9, 300)
    return np.sort(np.concatenate([[0.0, CURSOR_T[-1]], inner]))


def _write_session(tb, folder: Path, session_id: str = SESSION) -> Path:
    """A Perich-Miller-like session: descriptions, spikes (automatic domain), units, a cursor with
    a gap, trials, movement phases, outlier segments and the pipeline's train/valid/test domains."""
    times = _spike_times()
    unit_index = np.arange(times.size) % 3
    cursor_vel = np.stack([np.sin(CURSOR_T), np.cos(CURSOR_T)], axis=1)
    cursor = tb.IrregularTimeSeries(
        timestamps=CURSOR_T,
        pos=np.cumsum(cursor_vel, axis=0),
        vel=cursor_vel,
        acc=np.gradient(cursor_vel, axis=0),
        domain=tb.Interval(start=np.array([0.0, 20.0]), end=np.array([10.0, 30.0])),
    )
    trials = tb.Interval(
        start=TRIAL_START,
        end=TRIAL_END,
        go_cue_time=GO_CUE,
        target_id=np.array([0.0, 1.0, np.nan, 1.0, 0.0, 1.0]),
        result=np.array(["R", "R", "F", "R", "R", "R"]),
        is_valid=np.array([True, True, False, True, True, True]),
        timekeys=["start", "end", "go_cue_time"],
    )
    data = tb.Data(
        brainset=tb.BrainsetDescription(
            id=BRAINSET,
            origin_version="dandi/000688/draft",
            derived_version="1.0.0",
            source="https://dandiarchive.org/dandiset/000688",
            description="synthetic",
        ),
        subject=tb.SubjectDescription(id="c", species="MACACA_MULATTA", sex="M"),
        session=tb.SessionDescription(
            id=session_id, recording_date=datetime.datetime(2013, 10, 3), task="REACHING"
        ),
        device=tb.DeviceDescription(id="c_20131003", recording_tech="UTAH_ARRAY_SPIKES"),
        spikes=tb.IrregularTimeSeries(timestamps=times, unit_index=unit_index, domain="auto"),
        units=tb.ArrayDict(id=UNIT_IDS, unit_number=np.arange(3), count=np.bincount(unit_index)),
        trials=trials,
        movement_phases=tb.Data(
            hold_period=tb.Interval(start=TRIAL_START, end=GO_CUE),
            reach_period=tb.Interval(start=GO_CUE, end=TRIAL_END),
            domain="auto",
        ),
        cursor=cursor,
        cursor_outlier_segments=tb.Interval(start=np.array([5.0]), end=np.array([5.2])),
        domain=cursor.domain,
    )
    data.valid_domain = trials.select_by_mask(np.array([0, 1, 0, 0, 0, 0], dtype=bool))
    data.test_domain = trials.select_by_mask(np.array([0, 0, 0, 0, 1, 0], dtype=bool))
    data.train_domain = data.domain.difference((data.valid_domain | data.test_domain).dilate(1.0))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{session_id}.h5"
    with h5py.File(path, "w") as file:
        data.to_hdf5(file)
    return path


@pytest.fixture
def session(tb, tmp_path) -> Path:
    return _write_session(tb, tmp_path / "processed" / BRAINSET)


@pytest.fixture
def recording(session):
    with pytest.warns(DroppedDataWarning, match=r"dropped \d+ spike\(s\) outside the domain$"):
        return read_brainsets(session)


def test_spikes_units_and_gaps(recording):
    validate_recording(recording)
    times = _spike_times()
    end = np.nextafter(CURSOR_T[-1], np.inf)  # the automatic domain ends on the last spike
    assert recording.domain == Intervals([0.0, 20.0], [10.0, end])
    kept = recording.domain.contains(times)
    assert not kept[(times >= 10) & (times < 20)].any() and kept.sum() < times.size
    np.testing.assert_array_equal(recording.spikes.times, times[kept])
    np.testing.assert_array_equal(recording.spikes.unit_index, (np.arange(times.size) % 3)[kept])
    np.testing.assert_array_equal(recording.units.ids, UNIT_IDS)
    np.testing.assert_array_equal(recording.units.columns["unit_number"], [0, 1, 2])
    assert sorted(recording.units.columns) == ["count", "unit_number"]


def test_behavior_trials_sub_intervals_and_splits(recording):
    assert list(recording.behavior) == ["cursor_vel"]
    vel = recording.behavior["cursor_vel"]
    np.testing.assert_array_equal(vel.timestamps, CURSOR_T)
    np.testing.assert_array_equal(vel.values, np.stack([np.sin(CURSOR_T), np.cos(CURSOR_T)], 1))
    trials = recording.trials
    np.testing.assert_array_equal(trials.start, TRIAL_START)
    np.testing.assert_array_equal(trials.end, TRIAL_END)
    np.testing.assert_array_equal(trials.columns["go_cue_time"], GO_CUE)
    np.testing.assert_array_equal(trials.columns["result"], ["R", "R", "F", "R", "R", "R"])
    assert trials.columns["is_valid"].dtype == bool and trials.columns["result"].dtype.kind == "U"
    assert recording.intervals == {
        "hold": Intervals(TRIAL_START, GO_CUE),
        "reach": Intervals(GO_CUE, TRIAL_END),
        "cursor_outlier_segments": Intervals([5.0], [5.2]),
    }
    end = np.nextafter(CURSOR_T[-1], np.inf)
    assert recording.splits == {
        "train": Intervals([0.0, 7.0, 20.0, 27.0], [3.0, 10.0, 23.0, end]),
        "valid": Intervals([4.0], [6.0]),
        "test": Intervals([24.0], [26.0]),
    }


def test_metadata_from_the_description_groups(recording):
    info = recording.info
    assert (info.recording_id, info.brainset, info.subject) == (SESSION, BRAINSET, "c")
    assert (info.task, info.species) == ("REACHING", "MACACA_MULATTA")
    assert info.extra["session_recording_date"] == "2013-10-03 00:00:00"
    assert info.extra["device_recording_tech"] == "UTAH_ARRAY_SPIKES"
    assert info.extra["brainset_origin_version"] == "dandi/000688/draft"
    assert info.extra["source_file"] == f"{SESSION}.h5"


@pytest.mark.filterwarnings(DROPPED)
def test_options_pick_series_and_override_metadata(session):
    recording = read_brainsets(
        session, behavior=["cursor.pos", "cursor.acc"], brainset="b", task="center_out"
    )
    assert list(recording.behavior) == ["cursor_pos", "cursor_acc"]
    assert (recording.info.brainset, recording.info.task) == ("b", "center_out")
    bare = read_brainsets(session, behavior=())
    assert bare.behavior == {}
    assert bare.domain == Intervals.single(0.0, np.nextafter(CURSOR_T[-1], np.inf))


def test_vocabulary_words_equal_torch_brains(tb, tmp_path):
    datasets = pytest.importorskip("torch_brain.datasets", reason=NO_TORCH_BRAIN)
    root = tmp_path / "processed"
    paths = [_write_session(tb, root / BRAINSET, s) for s in (SESSION, "t_20130819_random")]
    with pytest.warns(DroppedDataWarning):
        recordings = [read_brainsets(path) for path in paths]
    nested = datasets.NestedSpikingDataset(
        {BRAINSET: datasets.PerichMillerPopulation2018(root=str(root))}
    )
    assert nested.recording_ids == sorted(session_key_of(r) for r in recordings)
    assert nested.get_unit_ids() == sorted(k for r in recordings for k in unit_keys(r))
    for recording in recordings:
        key = session_key_of(recording)
        assert key == f"{BRAINSET}/{recording.recording_id}"
        assert nested.get_recording(key).session.id == key  # what POYO.tokenize looks up


@pytest.mark.filterwarnings(DROPPED)
def test_cli_writes_files_that_inspect_accepts(session, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare", "brainsets", str(session), "--out", str(out)]) == 0
    assert f"wrote 1 recording(s) to {out}" in capsys.readouterr().out
    assert read_recording(out / f"{SESSION}.h5") == read_brainsets(session)
    assert main(["inspect", str(out)]) == 0
    assert "behavior cursor_vel" in capsys.readouterr().out
    command = ["prepare", "brainsets", str(session), "--out", str(out), "--behavior", "hand.vel"]
    assert main(command) == 2
    assert "no behavior series hand.vel; found: cursor.acc, cursor.pos, cursor.vel" in (
        capsys.readouterr().err
    )


@pytest.mark.filterwarnings(DROPPED)
def test_prepare_rejects_duplicate_ids_and_overwriting_its_input(tb, session, tmp_path):
    twin = _write_session(tb, tmp_path / "other")
    with pytest.raises(DataError, match=f"both give recording id '{SESSION}'"):
        prepare_brainsets([session, twin], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="would overwrite it; pick another --out folder"):
        prepare_brainsets([session], session.parent)


def test_regular_series_with_gaps_and_assigned_splits(tb, tmp_path):
    """A RegularTimeSeries with a gap, no descriptions, no trials and no splits of its own."""
    rate = 250.0
    timestamps = 5.0 + np.concatenate([np.arange(500), np.arange(750, 1500)]) / rate
    hand = tb.RegularTimeSeries.from_gappy_timeseries(
        timestamps, sampling_rate=rate, vel=np.stack([timestamps, -timestamps], axis=1)
    )
    spikes = 5.05 + np.arange(60) * 0.1  # 10 of them in the gap [7, 8)
    data = tb.Data(
        spikes=tb.IrregularTimeSeries(
            timestamps=spikes,
            unit_index=np.zeros(60, dtype=np.int64),
            domain=tb.Interval(start=5.0, end=11.0),
        ),
        units=tb.ArrayDict(id=np.array(["elec0"])),
        hand=hand,
        domain="auto",
    )
    path = tmp_path / "indy_20160407_02.h5"
    with h5py.File(path, "w") as file:
        data.to_hdf5(file)
    with pytest.warns(DroppedDataWarning, match=r"dropped 10 spike\(s\) outside the domain$"):
        recording = read_brainsets(path, split_seed=3)
    np.testing.assert_array_equal(recording.spikes.times, spikes[(spikes < 7) | (spikes >= 8)])
    stream = recording.behavior["hand_vel"]
    np.testing.assert_array_equal(stream.timestamps, hand.timestamps[hand.index_mask()])
    np.testing.assert_array_equal(stream.values, hand.vel[hand.index_mask()])
    assert recording.domain == Intervals([5.0, 8.0], [7.0, 11.0])
    assert recording.splits == block_splits(recording.domain, seed=3)
    info = recording.info
    assert (info.recording_id, info.brainset, info.task) == ("indy_20160407_02", "indy", "unknown")


# ------------------------------------------------------------------ hand-written files, errors


def _interval_group(group: h5py.Group, start, end) -> None:
    group.attrs.update(object="Interval", _unicode_keys=np.array([], dtype="S"))
    group.attrs["timekeys"] = np.array([b"start", b"end"])
    group.create_dataset("start", data=np.asarray(start, dtype=np.float64))
    group.create_dataset("end", data=np.asarray(end, dtype=np.float64))


def _write_by_hand(path: Path, omit: str = "", unit_index=(0, 1, 0, 1, 1)) -> Path:
    """The temporaldata layout written with h5py alone: a session description, 5 spikes, 2 units
    and a 100 Hz regular ``hand`` series over [0, 1) (torch_brain's Data.from_hdf5 reads it too)."""
    with h5py.File(path, "w") as file:
        file.attrs.update(object="Data", absolute_start=0.0)
        _interval_group(file.create_group("domain"), [0.0], [1.0])
        session = file.create_group("session")
        session.attrs.update(object="Data", absolute_start=0.0, id="s1", task="REACHING")
        if omit != "spikes":
            spikes = file.create_group("spikes")
            spikes.attrs.update(object="IrregularTimeSeries", _unicode_keys=np.array([], dtype="S"))
            spikes.attrs["timekeys"] = np.array([b"timestamps"])
            spikes.create_dataset("timestamps", data=[0.1, 0.2, 0.4, 0.5, 0.9])
            spikes.create_dataset("unit_index", data=np.asarray(unit_index, dtype=np.int64))
            _interval_group(spikes.create_group("domain"), [0.0], [1.0])
        if omit != "units":
            units = file.create_group("units")
            units.attrs.update(object="ArrayDict", _unicode_keys=np.array([b"id"]))
            units.create_dataset("id", data=np.array([b"a", b"b"]))
        hand = file.create_group("hand" if omit != "hand" else "eye")
        hand.attrs.update(object="RegularTimeSeries", sampling_rate=100.0)
        hand.create_dataset("vel", data=np.arange(200.0).reshape(100, 2))
        _interval_group(hand.create_group("domain"), [0.0], [1.0])
    return path


def test_a_hand_written_file_imports_without_torch_brain(tmp_path):
    recording = read_brainsets(_write_by_hand(tmp_path / "f.h5"))
    validate_recording(recording)
    np.testing.assert_array_equal(recording.spikes.times, [0.1, 0.2, 0.4, 0.5, 0.9])
    np.testing.assert_array_equal(recording.spikes.unit_index, [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(recording.units.ids, ["a", "b"])
    np.testing.assert_array_equal(recording.behavior["hand_vel"].timestamps, np.arange(100) / 100)
    np.testing.assert_array_equal(recording.behavior["hand_vel"].values[:, 1], np.arange(1, 200, 2))
    assert recording.domain == Intervals.single(0.0, 1.0)
    assert (recording.recording_id, recording.info.brainset, recording.info.task) == (
        "s1",
        "f",
        "REACHING",
    )
    assert set(recording.splits) == {"train", "valid", "test"}


def test_errors_name_the_file_the_field_and_the_fix(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match=r"notes.h5: not an HDF5 file"):
        read_brainsets(text)
    with h5py.File(tmp_path / "plain.h5", "w") as file:
        file.create_dataset("x", data=[1.0])
    with pytest.raises(DataError, match=r"plain.h5: not a brainsets/temporaldata file .*to_hdf5"):
        read_brainsets(tmp_path / "plain.h5")
    with pytest.raises(FileNotFoundError, match="absent.h5: no such brainsets file"):
        read_brainsets(tmp_path / "absent.h5")
    with pytest.raises(MissingKeyError, match=r"s.h5: no spikes group .*needs spike times"):
        read_brainsets(_write_by_hand(tmp_path / "s.h5", omit="spikes"))
    with pytest.raises(MissingKeyError, match=r"u.h5: no units group .*one string id per unit"):
        read_brainsets(_write_by_hand(tmp_path / "u.h5", omit="units"))
    with pytest.raises(
        MissingKeyError,
        match=r"h.h5: no behavior series cursor.vel or hand.vel; found: eye.vel; pass --behavior",
    ):
        read_brainsets(_write_by_hand(tmp_path / "h.h5", omit="hand"))
    with pytest.raises(MissingKeyError, match=r"h.h5: no behavior series hand.pos; found: eye.vel"):
        read_brainsets(tmp_path / "h.h5", behavior="hand.pos")
    with pytest.raises(
        DataError, match=r"n.h5: spikes/unit_index has 4 rows but spikes/timestamps has 5"
    ):
        read_brainsets(_write_by_hand(tmp_path / "n.h5", unit_index=(0, 1, 0, 1)))
    with pytest.raises(DataError, match=r"i.h5: spikes/unit_index refers to unit 2 but units/id"):
        read_brainsets(_write_by_hand(tmp_path / "i.h5", unit_index=(0, 1, 0, 2, 1)))
