"""NWB import: every option path on small synthetic files with known values, clear errors, and the
project's real NWB files (skipped when the shared data are absent)."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # noqa: E402
from pynwb.behavior import CompassDirection, SpatialSeries  # noqa: E402
from pynwb.file import Subject  # noqa: E402

from neuropoyo.cli import main  # noqa: E402
from neuropoyo.data.circular import CIRCULAR_UNIT  # noqa: E402
from neuropoyo.data.intervals import Intervals  # noqa: E402
from neuropoyo.data.importers.nwb import DroppedDataWarning, prepare_nwb, read_nwb  # noqa: E402
from neuropoyo.data.store import read_recording  # noqa: E402
from neuropoyo.data.validate import validate_recording  # noqa: E402
from neuropoyo.errors import DataError, MissingKeyError  # noqa: E402

BEHAVIOR = "processing/behavior"
REAL = Path(__file__).parents[2] / "shared" / "data" / "real"
SPIKES = [0.1, 0.5, 0.7, 2.2, 2.9]  # unit a: 0.1, 0.5, 2.2; unit b: 0.7, 2.9
OBS = [[0.0, 1.0], [2.0, 3.0]]
VEL_T = np.array([0.25, 0.75, 2.25, 2.75])
VEL = np.array([[100.0, -100.0], [200.0, 0.0], [0.0, 50.0], [-300.0, 10.0]])


def _nwbfile(
    units: bool = True, obs: bool = True, names: bool = True, description: str = "synthetic_reaching"
) -> NWBFile:
    """A file with two units (a: 3 spikes, b: 2) in areas M1 / PMd, recorded in OBS."""
    nwb = NWBFile(
        session_description=description,
        identifier="synthetic",
        session_start_time=datetime(2020, 1, 2, tzinfo=timezone.utc),
        subject=Subject(subject_id="monkey_s", species="Macaca mulatta"),
    )
    if not units:
        return nwb
    if names:
        nwb.add_unit_column("unit_name", "unit name")
    nwb.add_unit_column("brain_area", "area")
    nwb.add_unit_column("electrode_channel", "channel")
    rows = (("a", [0.1, 0.5, 2.2], "M1", 3), ("b", [0.7, 2.9], "PMd", 9))
    for name, times, area, channel in rows:
        row = dict(spike_times=times, brain_area=area, electrode_channel=channel)
        row.update({"unit_name": f"unit_{name}"} if names else {})
        row.update({"obs_intervals": OBS} if obs else {})
        nwb.add_unit(**row)
    return nwb


def _add_trials(nwb: NWBFile, columns: bool = True) -> None:
    """Trials [0, 1) and [2, 3) (given in reverse order); with target_dir and move_onset_time."""
    if columns:
        nwb.add_trial_column("target_dir", "target")
        nwb.add_trial_column("move_onset_time", "movement onset")
    rows = [(2.0, 3.0, 1, 2.4), (0.0, 1.0, 0, np.nan)]
    for start, stop, target, onset in rows:
        extra = {"target_dir": target, "move_onset_time": onset} if columns else {}
        nwb.add_trial(start_time=start, stop_time=stop, **extra)


def _vel(**timing) -> TimeSeries:
    timing = timing or {"timestamps": VEL_T}
    return TimeSeries(name="hand_vel", data=VEL, unit="cm/s", conversion=0.01, **timing)


def _behavior_module(nwb: NWBFile, *series) -> None:
    module = nwb.create_processing_module("behavior", "behavior")
    for s in series:
        module.add(s)


def _write(nwb: NWBFile, path: Path) -> Path:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture
def standard(tmp_path) -> Path:
    """Units with obs_intervals, hand_vel (explicit timestamps, cm/s) and hand_pos, two trials."""
    nwb = _nwbfile()
    pos = SpatialSeries(
        name="hand_pos", data=VEL / 10, reference_frame="center", unit="m", timestamps=VEL_T
    )
    _behavior_module(nwb, _vel(), pos)
    _add_trials(nwb)
    return _write(nwb, tmp_path / "lab2020_session.nwb")


def test_units_spikes_domain_and_metadata(standard):
    recording = read_nwb(standard)
    validate_recording(recording)
    np.testing.assert_array_equal(recording.spikes.times, SPIKES)
    np.testing.assert_array_equal(recording.spikes.unit_index, [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(recording.units.ids, ["unit_a", "unit_b"])
    np.testing.assert_array_equal(recording.units.columns["brain_area"], ["M1", "PMd"])
    np.testing.assert_array_equal(recording.units.columns["electrode_channel"], [3, 9])
    assert recording.domain == Intervals([0.0, 2.0], [1.0, 3.0])
    info = recording.info
    assert (info.recording_id, info.brainset) == ("lab2020_session", "lab2020")
    assert info.subject == "monkey_s"
    assert (info.task, info.species, info.brain_areas) == (
        "synthetic_reaching",
        "Macaca mulatta",
        ("M1", "PMd"),
    )
    assert info.extra["session_start_time"] == "2020-01-02T00:00:00+00:00"
    assert info.extra["session_description"] == "synthetic_reaching"


@pytest.mark.parametrize(
    "description, task",
    [("center_out", "center_out"), ("  reach-2 ", "reach-2"), ("", "unknown")],
)
def test_a_short_session_description_names_the_task(tmp_path, description, task, recwarn):
    nwb = _nwbfile(description=description)
    recording = read_nwb(_write(nwb, tmp_path / "s.nwb"), behavior=())
    assert recording.info.task == task
    assert not [w for w in recwarn if "task" in str(w.message)]


@pytest.mark.parametrize("description", ["a" * 33, "Monkey J reaching to 8 targets", "x.y"])
def test_a_sentence_is_not_a_task_name(tmp_path, description):
    """A long or spaced description would become the task column of every table: "unknown" and
    a warning naming the description and the fix; task= names it without a warning."""
    nwb = _nwbfile(description=description)
    path = _write(nwb, tmp_path / "s.nwb")
    with pytest.warns(UserWarning, match=r"is not a short task name.*--task NAME.*task= \(Python\)") as caught:
        assert read_nwb(path, behavior=()).info.task == "unknown"
    (warning,) = [w for w in caught if "task name" in str(w.message)]  # one per file
    assert description[:20] in str(warning.message)
    assert warning.filename == __file__  # points at the caller of read_nwb
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_nwb(path, behavior=(), task="center_out").info.task == "center_out"


def test_behavior_conversion_unit_and_multiple_streams(standard):
    recording = read_nwb(standard, behavior=("hand_vel", "hand_pos"))
    vel, pos = recording.behavior["hand_vel"], recording.behavior["hand_pos"]
    np.testing.assert_array_equal(vel.timestamps, VEL_T)
    np.testing.assert_allclose(vel.values, VEL * 0.01)
    assert vel.unit == "m/s"
    np.testing.assert_array_equal(pos.values, VEL / 10)
    assert pos.unit == "m"


def test_trials_sorted_with_columns_reach_and_stratified_splits(standard):
    recording = read_nwb(standard, recording_id="r1", brainset="b", task="center_out")
    assert recording.trials == Intervals(
        [0.0, 2.0],
        [1.0, 3.0],
        {"target_dir": np.array([0, 1]), "move_onset_time": np.array([np.nan, 2.4])},
    )
    assert recording.intervals == {"reach": Intervals([2.4], [3.0])}
    assert (recording.info.recording_id, recording.info.brainset, recording.info.task) == (
        "r1",
        "b",
        "center_out",
    )
    assert set(recording.splits) == {"train", "valid", "test"}


def test_explicit_sub_intervals_and_missing_column(standard):
    recording = read_nwb(standard, sub_intervals={"trial": ("start_time", "stop_time")})
    assert recording.intervals == {"trial": Intervals([0.0, 2.0], [1.0, 3.0])}
    with pytest.raises(MissingKeyError, match=r"sub-interval 'hold' needs .*'go_cue_time'.*has"):
        read_nwb(standard, sub_intervals={"hold": ("go_cue_time", "stop_time")})


def test_rate_offset_and_domain_from_behavior_runs(tmp_path):
    nwb = _nwbfile(obs=False, names=False)
    series = TimeSeries(
        name="speed",
        data=np.array([1, 2, 3, 4]),
        unit="m/s",
        rate=2.0,
        starting_time=0.25,
        offset=0.5,
    )
    _behavior_module(nwb, series)
    with pytest.warns(DroppedDataWarning, match=r"dropped 2 spike\(s\) outside the domain$"):
        recording = read_nwb(_write(nwb, tmp_path / "f.nwb"), behavior="speed")
    speed = recording.behavior["speed"]
    np.testing.assert_array_equal(speed.timestamps, [0.25, 0.75, 1.25, 1.75])
    np.testing.assert_array_equal(speed.values[:, 0], [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(recording.units.ids, ["0", "1"])
    assert recording.domain == Intervals.single(0.0, 2.0)
    assert not recording.has_trials and len(recording.intervals) == 0


def test_domain_gaps_drop_data_with_a_warning(tmp_path, capsys):
    nwb = _nwbfile(obs=False)
    _behavior_module(nwb, _vel())
    for start, stop in ((0.0, 1.0), (2.0, 2.5), (5.0, 6.0)):
        nwb.add_trial(start_time=start, stop_time=stop)
    path = _write(nwb, tmp_path / "f.nwb")
    with pytest.warns(DroppedDataWarning, match=r"dropped 1 trial\(s\) outside the domain"):
        by_behavior = read_nwb(path)
    assert by_behavior.domain == Intervals([0.0, 2.0], [1.0, 3.0])  # runs of 0.5 s steps
    assert by_behavior.trials == Intervals([0.0, 2.0], [1.0, 2.5])
    dropped = r"dropped 1 spike\(s\) outside the domain, 1 hand_vel sample\(s\) outside"
    with pytest.warns(DroppedDataWarning, match=dropped):
        by_trials = read_nwb(path, domain="trials", behavior_location=f"{BEHAVIOR}/hand_vel")
    assert by_trials.domain == Intervals([0.0, 2.0, 5.0], [1.0, 2.5, 6.0])
    np.testing.assert_array_equal(by_trials.spikes.times, SPIKES[:-1])
    with pytest.raises(MissingKeyError, match=r"f.nwb: cannot tell .* no epochs"):
        read_nwb(path, domain="epochs")
    # the command line shows the warning as one line, without library source lines
    assert main(["prepare", "nwb", str(path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "neuropoyo: warning: " in err and "dropped 1 trial(s) outside the domain" in err
    assert "nwb.py" not in err
    with pytest.raises(DataError, match="unknown domain source 'spikes'"):
        read_nwb(path, domain="spikes")


def test_acquisition_location_and_full_series_path(tmp_path):
    nwb = _nwbfile()
    compass = CompassDirection()
    for name, values in (("rx", [0.0, 0.0]), ("ry", [1.0, 2.0])):
        compass.create_spatial_series(
            name=name, data=values, reference_frame="x", unit="radian", timestamps=[0.5, 2.5]
        )
    nwb.add_acquisition(compass)
    path = _write(nwb, tmp_path / "f.nwb")
    by_group = read_nwb(path, behavior=["ry"], behavior_location="acquisition/CompassDirection")
    by_path = read_nwb(path, behavior_location="acquisition/CompassDirection/ry")
    for recording in (by_group, by_path):
        assert list(recording.behavior) == ["ry"]
        np.testing.assert_array_equal(recording.behavior["ry"].values[:, 0], [1.0, 2.0])
        assert recording.behavior["ry"].unit == "radian"
    assert read_nwb(path, behavior=()).behavior == {}


def test_behavior_errors_name_the_file_and_what_exists(standard, tmp_path):
    with pytest.raises(
        MissingKeyError,
        match=r"no behavior series named cursor_pos in processing/behavior of "
        r".*lab2020_session.nwb; "
        r"found: hand_pos, hand_vel",
    ):
        read_nwb(standard, behavior="cursor_pos")
    with pytest.raises(MissingKeyError, match=r"no acquisition/Compass .*acquisition holds: no"):
        read_nwb(standard, behavior_location="acquisition/Compass")
    with pytest.raises(MissingKeyError, match=r"no processing/behavior .*processing holds: no"):
        read_nwb(_write(_nwbfile(), tmp_path / "bare.nwb"))
    with pytest.raises(DataError, match=r"processing/behavior is a ProcessingModule, not a series"):
        read_nwb(standard, behavior="behavior", behavior_location="processing")


def test_missing_units_table_and_missing_file(tmp_path):
    path = _write(_nwbfile(units=False), tmp_path / "nounits.nwb")
    with pytest.raises(MissingKeyError, match=r"nounits.nwb: no units table"):
        read_nwb(path, behavior=())
    with pytest.raises(FileNotFoundError, match="absent.nwb: no such NWB file"):
        read_nwb(tmp_path / "absent.nwb")


def test_overlapping_trials_are_an_error(tmp_path):
    nwb = _nwbfile()
    nwb.add_trial(start_time=0.0, stop_time=1.0)
    nwb.add_trial(start_time=0.5, stop_time=2.5)
    with pytest.raises(DataError, match=r"f.nwb: trials 0 .* and 1 .* overlap"):
        read_nwb(_write(nwb, tmp_path / "f.nwb"), behavior=())


def test_prepare_writes_readable_recordings_and_rejects_duplicate_ids(standard, tmp_path):
    (path,) = prepare_nwb([standard], tmp_path / "out", behavior=["hand_vel", "hand_pos"])
    assert path == tmp_path / "out" / "lab2020_session.h5"
    assert read_recording(path) == read_nwb(standard, behavior=["hand_vel", "hand_pos"])
    other = tmp_path / "copy"
    other.mkdir()
    twin = other / standard.name
    twin.write_bytes(standard.read_bytes())
    with pytest.raises(DataError, match="both give recording id 'lab2020_session'"):
        prepare_nwb([standard, twin], tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


# ----------------------------------------------------------------------------------- real data

REAL_SPIKES = {
    "stevenson2011_monkeyC_m1_co.nwb": 2_352_815,
    "dyer2017_chewie_20131003_co.nwb": 81_154,
    "dyer2017_chewie_20131219_co.nwb": 44_144,
    "miller_co_m1_84units.nwb": 1_073_553,
    "s1_area2_52units.nwb": 842_910,
    "peyrache_A2929-200711_headdirection.nwb": 98_794,
}
HEAD_DIRECTION = {"behavior_location": "acquisition/CompassDirection/ry", "circular": ["ry"]}


def _real(name: str) -> Path:
    if not REAL.is_dir():
        pytest.skip("../shared/data/real not found: real-data tests need the project's shared data")
    return REAL / name


@pytest.mark.parametrize("name", sorted(REAL_SPIKES))
def test_real_file_imports_whole(name):
    options = HEAD_DIRECTION if name.startswith("peyrache") else {}
    recording = read_nwb(_real(name), **options)
    validate_recording(recording, name)
    assert len(recording.spikes) == REAL_SPIKES[name]
    assert len(recording.behavior) == 1
    if name.startswith("peyrache"):  # head direction as (cos, sin) points on the unit circle
        stream = recording.behavior["ry"]
        assert stream.unit == CIRCULAR_UNIT
        np.testing.assert_allclose(np.hypot(*stream.values.T), 1.0)


def test_real_spikes_rebinned_on_the_velocity_grid_match_the_reconstruction():
    """Chewie day 2 (100 ms bins centred on hand_vel samples): every spike lies in a bin, and the
    k spikes of one unit in one bin sit at (j + 0.5) w / k after the bin start (README)."""
    width = 0.1
    recording = read_nwb(_real("dyer2017_chewie_20131219_co.nwb"))
    centres = recording.behavior["hand_vel"].timestamps
    spikes = recording.spikes
    bins = np.searchsorted(centres - width / 2, spikes.times, side="right") - 1
    after_start = spikes.times - (centres[bins] - width / 2)
    assert np.all((after_start >= 0) & (after_start < width))
    key = spikes.unit_index.astype(np.int64) * centres.size + bins
    order = np.lexsort((spikes.times, key))
    _, first, group, k = np.unique(
        key[order], return_index=True, return_inverse=True, return_counts=True
    )
    j = np.arange(order.size) - first[group]
    np.testing.assert_allclose(after_start[order], (j + 0.5) * width / k[group], atol=1e-6)
    assert k.sum() == REAL_SPIKES["dyer2017_chewie_20131219_co.nwb"]


def test_circular_series_stored_as_cos_sin(tmp_path):
    nwb = _nwbfile()
    compass = CompassDirection()
    compass.create_spatial_series(
        name="ry", data=[0.0, np.pi / 2], reference_frame="x", unit="radian", timestamps=[0.5, 2.5]
    )
    nwb.add_acquisition(compass)
    path = _write(nwb, tmp_path / "f.nwb")
    location = "acquisition/CompassDirection"
    recording = read_nwb(path, behavior=["ry"], behavior_location=location, circular=["ry"])
    stream = recording.behavior["ry"]
    np.testing.assert_allclose(stream.values, [[1.0, 0.0], [0.0, 1.0]], atol=1e-12)
    assert stream.unit == CIRCULAR_UNIT
    with pytest.raises(MissingKeyError, match=r"f.nwb: circular series rx not loaded; loaded: ry"):
        read_nwb(path, behavior=["ry"], behavior_location=location, circular=["rx"])
    with pytest.raises(DataError, match=r"v.nwb: behavior hand_vel: a circular stream must hold one angle"):
        read_nwb(_write(_with_vel(), tmp_path / "v.nwb"), circular=["hand_vel"])


def _with_vel() -> NWBFile:
    nwb = _nwbfile()
    _behavior_module(nwb, _vel())
    return nwb
