"""Traces (calcium imaging, binned counts) in the data layer: the store's round trip and windows,
validation naming the frame and unit at fault, the arrays and NWB importers (repairs, errors, the
real two-photon files), the calcium simulator and what inspect prints."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import build_recording
from neuropoyo.cli import main
from neuropoyo.data.importers.arrays import recording_from_arrays
from neuropoyo.data.importers.common import RepairedDataWarning
from neuropoyo.data.recording import Recording, Traces, Units
from neuropoyo.data.simulate import simulate_calcium, simulate_dataset
from neuropoyo.data.store import open_recording, read_recording, validate_file, write_recording
from neuropoyo.data.summary import format_summary, summarize
from neuropoyo.data.validate import InvalidRecordingError, recording_problems
from neuropoyo.errors import DataError, MissingKeyError

REAL = Path(__file__).parents[2] / "shared" / "data" / "real"
FRAME_S = 0.0625  # 16 Hz


def with_traces(recording: Recording | None = None) -> Recording:
    """The conftest recording (5 spiking units, a gap at [9, 11)) plus 3 ROIs imaged at 16 Hz in
    its domain: units u0..u4 spike, roi_a..roi_c are trace columns (in the order c, a, b)."""
    base = recording or build_recording()
    frames = np.arange(0.0, 20.0, FRAME_S)
    frames = frames[base.domain.contains(frames)]
    values = np.sin(frames[:, None] * np.array([1.0, 2.0, 3.0])).astype(np.float32)
    n = len(base.units)
    units = Units(
        [*base.units.ids, "roi_a", "roi_b", "roi_c"],
        {name: np.concatenate([c, c[:3]]) for name, c in base.units.columns.items()},
    )
    traces = Traces(frames, values, [n + 2, n, n + 1], "dff")
    return dataclasses.replace(base, units=units, traces=traces)


@pytest.fixture(scope="module")
def imaged() -> Recording:
    return with_traces()


@pytest.fixture(scope="module")
def imaged_path(imaged, tmp_path_factory) -> Path:
    return write_recording(imaged, tmp_path_factory.mktemp("traces") / f"{imaged.recording_id}.h5")


# ----------------------------------------------------------------------------------------- store


def test_round_trip_with_traces_is_identical(imaged, imaged_path):
    back = read_recording(imaged_path)
    assert back == imaged and back.has_traces and back.traces.kind == "dff"
    assert back.traces.values.dtype == np.float32 and back.traces.unit_index.dtype == np.int32
    with h5py.File(imaged_path, "r") as file:
        assert file.attrs["schema_version"] == 2  # older neuropoyo refuses it instead of losing data
        assert file["traces"].attrs["kind"] == "dff"
        for key in ("traces/timestamps", "traces/values"):  # memory-mapped per window
            assert file[key].chunks is None and file[key].id.get_offset() % 64 == 0
    with open_recording(imaged_path) as file:
        assert file.has_traces


def test_a_recording_without_traces_is_written_as_version_1_and_reads_without_traces(tmp_path):
    path = write_recording(build_recording(), tmp_path / "r.h5")
    with h5py.File(path, "r") as file:
        assert file.attrs["schema_version"] == 1 and "traces" not in file
    recording = read_recording(path)
    assert recording.traces == Traces.empty() and not recording.has_traces
    assert not open_recording(path).has_traces


@pytest.fixture(scope="module")
def chunked_path(imaged_path, tmp_path_factory) -> Path:
    """A copy with chunked, compressed frames (read through h5py, not memory-mapped)."""
    copy = tmp_path_factory.mktemp("chunked") / imaged_path.name
    shutil.copy(imaged_path, copy)
    with h5py.File(copy, "r+") as file:
        for key in ("traces/timestamps", "traces/values"):
            data = file[key][()]
            del file[key]
            file.create_dataset(key, data=data, chunks=(16,) + data.shape[1:], compression="gzip")
    return copy


EDGES = sorted({*with_traces().traces.timestamps[::9].tolist(), 0.0, 9.0, 11.0, 20.0})


@settings(max_examples=80, deadline=None)
@given(
    start=st.one_of(st.sampled_from(EDGES), st.floats(-5.0, 25.0)),
    length=st.one_of(st.just(0.0), st.just(FRAME_S), st.floats(0.0, 4.0)),
)
def test_window_of_the_file_equals_the_in_memory_slice(imaged, imaged_path, chunked_path, start, length):
    expected = imaged.slice(start, start + length)
    for path in (imaged_path, chunked_path):
        with open_recording(path) as file:
            window = file.slice(start, start + length)
        assert window == expected
        assert np.all((window.traces.timestamps >= 0) & (window.traces.timestamps < length))


def _edit(path: Path, change) -> None:
    with h5py.File(path, "r+") as file:
        change(file)


def _replace(file, key, data) -> None:
    del file[key]
    file[key] = data


BAD_TRACE_FILES = {
    "float64 values": (
        lambda f: _replace(f, "traces/values", f["traces/values"][()].astype(np.float64)),
        "traces/values: found shape",
    ),
    "one frame time short": (
        lambda f: _replace(f, "traces/timestamps", f["traces/timestamps"][:-1]),
        "traces: 287 frame times but 288 frames of values",
    ),
    "a unit index short": (
        lambda f: _replace(f, "traces/unit_index", f["traces/unit_index"][:-1]),
        "traces: values have 3 columns but unit_index names 2 units",
    ),
    "no kind": (lambda f: f["traces"].attrs.__delitem__("kind"), "traces: missing kind attribute"),
    "NaN value": (
        lambda f: f["traces/values"].__setitem__((5, 1), np.nan),
        "traces/values: 1 frame(s) hold NaN or inf",
    ),
}


@pytest.mark.parametrize("kind", BAD_TRACE_FILES)
def test_bad_traces_in_a_file_are_named(kind, imaged_path, tmp_path):
    path = tmp_path / "bad.h5"
    shutil.copy(imaged_path, path)
    change, expected = BAD_TRACE_FILES[kind]
    _edit(path, change)
    with pytest.raises(InvalidRecordingError) as error:
        validate_file(path)
    assert str(path) in str(error.value) and expected in str(error.value)


# ------------------------------------------------------------------------------------ validation


def _problems(recording: Recording, **traces) -> str:
    t = recording.traces
    fields = dict(timestamps=t.timestamps, values=t.values, unit_index=t.unit_index, kind=t.kind)
    return "\n".join(recording_problems(dataclasses.replace(recording, traces=Traces(**{**fields, **traces}))))


def test_a_recording_with_traces_is_valid(imaged):
    assert recording_problems(imaged) == []


def test_nan_frames_name_the_frame_time_and_unit(imaged):
    values = imaged.traces.values.copy()
    values[12, 0] = np.nan  # column 0 is roi_c
    values[40, 2] = np.inf
    assert _problems(imaged, values=values) == (
        "traces/values: 2 frame(s) hold NaN or inf (first: nan at frame 12 (t=0.750 s), unit "
        "'roi_c'); drop or interpolate those frames"
    )


def test_frame_times_must_increase_strictly(imaged):
    times = imaged.traces.timestamps.copy()
    times[[3, 4]] = times[[4, 3]]
    assert "traces/timestamps: not sorted (index 4" in _problems(imaged, timestamps=times)
    times = imaged.traces.timestamps.copy()
    times[4] = times[3]
    assert "traces timestamps must increase strictly" in _problems(imaged, timestamps=times)


def test_trace_columns_point_to_distinct_units_without_spikes(imaged):
    assert "traces/unit_index: 1 index(es) outside the unit table of 8 units (first: column 1 -> 8)" in (
        _problems(imaged, unit_index=[7, 8, 6])
    )
    assert "unit 'roi_a' has 2 trace columns" in _problems(imaged, unit_index=[5, 5, 6])
    assert "traces/unit_index: 1 unit(s) have both spikes and a trace (first: 'u0')" in (
        _problems(imaged, unit_index=[0, 5, 6])
    )


def test_frames_outside_the_domain_and_unknown_kinds_are_problems(imaged):
    times = imaged.traces.timestamps.copy()
    times[-1] = 30.0
    assert "traces/timestamps: 1 frame(s) outside the recorded domain (first at 30.0 s)" in (
        _problems(imaged, timestamps=times)
    )
    assert "traces/kind: 'spikes' is not one of ['dff', 'fluorescence', 'counts']" in _problems(imaged, kind="spikes")


# -------------------------------------------------------------------------------- arrays importer

FRAMES = np.arange(10) * 0.1 + 0.05  # 10 frames at 10 Hz, times = frame centres
DFF = np.arange(30, dtype=np.float32).reshape(10, 3)


def test_traces_alone_make_a_recording_of_rois():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # valid input: no repair, no warning
        recording = Recording.from_arrays(recording_id="ca", traces=(FRAMES, DFF))
    np.testing.assert_array_equal(recording.units.ids, ["roi_000", "roi_001", "roi_002"])
    assert len(recording.spikes) == 0 and recording.traces.kind == "dff"
    assert recording.traces == Traces(FRAMES, DFF, [0, 1, 2], "dff")
    # each frame spans half a frame step either side of its time
    np.testing.assert_allclose([recording.start, recording.end], [0.0, 1.0], atol=1e-12)


def test_binned_counts_and_spikes_of_other_units_share_the_unit_table():
    counts = np.array([[0, 2], [1, 0], [3, 1]])
    recording = recording_from_arrays(
        recording_id="mixed", spike_times=[0.01, 0.2], spike_unit_ids=["s2", "s1"],
        traces=([0.05, 0.15, 0.25], counts), trace_unit_ids=["ch0", "ch1"], trace_kind="counts",
    )
    np.testing.assert_array_equal(recording.units.ids, ["s1", "s2", "ch0", "ch1"])
    np.testing.assert_array_equal(recording.spikes.unit_index, [1, 0])
    np.testing.assert_array_equal(recording.traces.unit_index, [2, 3])
    assert recording.traces.kind == "counts" and recording.traces.values.dtype == np.float32
    np.testing.assert_allclose([recording.start, recording.end], [0.0, 0.3], atol=1e-12)  # half a bin either side
    # a unit list orders the table; trace ids are looked up in it like spike ids
    listed = recording_from_arrays(
        recording_id="mixed", traces=([0.05, 0.15, 0.25], counts), trace_unit_ids=["ch0", "ch1"],
        unit_ids=["ch1", "silent", "ch0"],
    )
    np.testing.assert_array_equal(listed.traces.unit_index, [2, 0])


def test_nan_and_unsorted_frames_are_repaired_with_a_warning_or_refused_when_strict():
    values = DFF.copy()
    values[4, 1] = np.nan
    times = FRAMES.copy()
    times[[7, 8]] = times[[8, 7]]
    times[2] = np.nan
    with pytest.warns(RepairedDataWarning) as caught:
        recording = recording_from_arrays(recording_id="ca", traces=(times, values))
    message = str(caught[0].message)
    for repair in ("1 frame time(s) NaN or infinite (dropped)", "1 frame time(s) out of order (sorted)",
                   "1 traces frame(s) holding NaN (dropped)"):
        assert repair in message
    np.testing.assert_array_equal(recording.traces.timestamps, np.delete(FRAMES, [2, 4]))
    np.testing.assert_array_equal(recording.traces.values[6], DFF[7])  # carried along when sorted
    with pytest.raises(DataError, match=r"from_arrays: 1 traces frame\(s\) holding NaN; drop the NaN rows"):
        recording_from_arrays(recording_id="ca", traces=(FRAMES, values), strict=True)
    swapped = FRAMES.copy()
    swapped[[7, 8]] = swapped[[8, 7]]
    with pytest.raises(DataError, match=r"from_arrays: 1 frame time\(s\) out of order; sort frame times"):
        recording_from_arrays(recording_id="ca", traces=(swapped, DFF), strict=True)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(traces=(FRAMES[:-1], DFF)), r"traces: 9 frame times but values of shape \(10, 3\); give values as \(frames, units\) = \(9, R\)"),
        (dict(traces=(FRAMES, DFF.T)), r"values of shape \(3, 10\); .* \(transpose them\)"),
        (dict(traces=(FRAMES, DFF[:, 0])), r"values of shape \(10,\); give values as \(frames, units\)"),
        (dict(traces=FRAMES), r"traces must be a \(timestamps \(F,\), values \(F, R\)\) pair"),
        (dict(traces=(FRAMES, DFF), trace_unit_ids=["a", "b"]), "trace_unit_ids holds 2 ids but traces values have 3 columns"),
        (dict(traces=(FRAMES, DFF), trace_unit_ids=["a", "b", "a"]), "trace_unit_ids repeats 'a'"),
        (dict(traces=(FRAMES, DFF), trace_unit_ids=["a", "b", "c"], spike_times=[0.1], spike_unit_ids=["b"]),
         r"spike_unit_ids and trace_unit_ids share unit id\(s\) 'b'"),
        (dict(traces=(FRAMES, DFF), unit_ids=["roi_000"]), r"trace_unit_ids holds 2 unit id\(s\) not in unit_ids"),
        (dict(traces=(FRAMES, DFF), trace_kind="calcium"), r"trace_kind 'calcium'; use one of"),
        (dict(trace_unit_ids=["a"], spike_times=[], spike_unit_ids=[]), "trace_unit_ids without traces"),
        (dict(spike_times=[0.1]), "spike_unit_ids is missing; give spike_times and spike_unit_ids together"),
        (dict(), "no neural data; give spike_times and spike_unit_ids, or traces="),
    ],
)
def test_bad_trace_arguments_are_errors_naming_the_argument(arguments, message):
    with pytest.raises(DataError, match=message):
        recording_from_arrays(recording_id="ca", **arguments)


def test_traces_from_arrays_survive_the_file(tmp_path):
    recording = recording_from_arrays(
        recording_id="ca", traces=(FRAMES, DFF), trace_kind="fluorescence", unit_columns={"depth_um": [100, 150, 200]},
    )
    assert read_recording(write_recording(recording, tmp_path / "ca.h5")) == recording


# ----------------------------------------------------------------------------------------- NWB

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # noqa: E402
from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel  # noqa: E402

from neuropoyo.data.importers.nwb import DOMAIN_SOURCES, read_nwb  # noqa: E402

ROI_DATA = np.arange(24.0).reshape(8, 3)  # 8 frames x 3 ROIs


def _two_photon(
    *, container=DfOverF, timing=None, data=ROI_DATA, names=True, units=False, behavior=True
) -> NWBFile:
    """A two-photon file: 3 ROIs (ids 10, 11, 12; roi_name, depth) in a plane in VISp, their
    series ``dff`` (data * 2 + 1) at 10 Hz from 5 s, and a pupil series on the same frames."""
    nwb = NWBFile(
        session_description="imaging", identifier="2p", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc)
    )
    device = nwb.create_device(name="scope")
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="green", description="", emission_lambda=520.0),
        description="", device=device, excitation_lambda=920.0, imaging_rate=10.0, indicator="GCaMP6s",
        location="VISp",
    )
    ophys = nwb.create_processing_module("ophys", "optical physiology")
    images = ImageSegmentation()
    ophys.add(images)
    segmentation = images.create_plane_segmentation(name="PlaneSegmentation", description="", imaging_plane=plane)
    if names:
        segmentation.add_column("roi_name", "ROI names")
    segmentation.add_column("depth", "depth in um")
    for k, (name, depth) in enumerate(zip(["cell_a", "cell_b", "cell_c"], [150.0, 180.0, 210.0])):
        named = {"roi_name": name} if names else {}
        segmentation.add_roi(id=10 + k, pixel_mask=[(k, k, 1.0)], depth=depth, **named)
    rois = segmentation.create_roi_table_region(region=[0, 1, 2], description="all")
    timing = timing or {"starting_time": 5.0, "rate": 10.0}
    series = container(name=container.__name__)
    ophys.add(series)
    series.create_roi_response_series(
        name="dff" if container is DfOverF else "raw", data=data, rois=rois, unit="a.u.", conversion=2.0,
        offset=1.0, **timing,
    )
    if behavior:
        module = nwb.create_processing_module("behavior", "behavior")
        module.add(TimeSeries(name="pupil", data=np.linspace(0, 1, len(data)), unit="a.u.", **timing))
    if units:
        nwb.add_unit(spike_times=[5.1, 5.3])
    return nwb


def _write(nwb: NWBFile, path: Path) -> Path:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_dff_of_a_two_photon_file_becomes_traces_of_roi_units(tmp_path):
    recording = read_nwb(_write(_two_photon(), tmp_path / "lab_2p.nwb"))
    traces = recording.traces
    assert traces.kind == "dff" and len(recording.spikes) == 0
    np.testing.assert_allclose(traces.timestamps, 5.0 + np.arange(8) / 10)
    np.testing.assert_array_equal(traces.values, ROI_DATA * 2 + 1)  # data * conversion + offset
    np.testing.assert_array_equal(recording.units.ids, ["cell_a", "cell_b", "cell_c"])
    np.testing.assert_array_equal(traces.unit_index, [0, 1, 2])
    assert set(recording.units.columns) == {"depth", "location"}  # no mask, no roi_name column
    assert recording.info.brain_areas == ("VISp",)
    assert list(recording.behavior) == ["pupil"]
    np.testing.assert_allclose([recording.start, recording.end], [4.95, 5.75])  # half a frame either side


def test_fluorescence_without_roi_names_and_an_explicit_location(tmp_path):
    path = _write(_two_photon(container=Fluorescence, names=False), tmp_path / "lab_f.nwb")
    recording = read_nwb(path)
    assert recording.traces.kind == "fluorescence"
    np.testing.assert_array_equal(recording.units.ids, ["roi_10", "roi_11", "roi_12"])
    assert read_nwb(path, traces="processing/ophys/Fluorescence/raw") == recording
    with pytest.raises(MissingKeyError, match=r"no processing/ophys/DfOverF \(traces location .* pass --traces PATH"):
        read_nwb(path, traces="processing/ophys/DfOverF/dff")


def test_the_domain_of_an_imaging_file_follows_its_runs_of_frames(tmp_path):
    times = np.array([0.0, 0.1, 0.2, 0.3, 2.0, 2.1, 2.2, 2.3])  # two windows, a gap between
    recording = read_nwb(_write(_two_photon(timing={"timestamps": times}), tmp_path / "lab_w.nwb"))
    assert "frames" in DOMAIN_SOURCES
    np.testing.assert_allclose(recording.domain.start, [-0.05, 1.95])
    np.testing.assert_allclose(recording.domain.end, [0.35, 2.35])


def test_units_and_traces_in_one_file_share_the_unit_table(tmp_path):
    recording = read_nwb(_write(_two_photon(units=True), tmp_path / "lab_both.nwb"), domain="frames")
    np.testing.assert_array_equal(recording.units.ids, ["0", "cell_a", "cell_b", "cell_c"])
    np.testing.assert_array_equal(recording.traces.unit_index, [1, 2, 3])
    np.testing.assert_array_equal(recording.units.columns["location"], ["", "VISp", "VISp", "VISp"])
    assert np.isnan(recording.units.columns["depth"][0])
    assert len(recording.spikes) == 2


def test_bad_frames_in_nwb_are_repaired_or_refused_when_strict(tmp_path):
    data = ROI_DATA.copy()
    data[3, 1] = np.nan
    times = 0.1 * np.arange(8)
    times[[5, 6]] = times[[6, 5]]
    path = _write(_two_photon(data=data, timing={"timestamps": times}), tmp_path / "lab_bad.nwb")
    with pytest.warns(RepairedDataWarning, match=r"1 frame time\(s\) out of order \(sorted\), 1 traces frame\(s\) holding NaN"):
        recording = read_nwb(path, behavior=())
    assert len(recording.traces) == 7 and np.all(np.diff(recording.traces.timestamps) > 0)
    with pytest.raises(DataError, match=r"lab_bad.nwb: 1 frame time\(s\) out of order; sort frame times"):
        read_nwb(path, behavior=(), strict=True)


@pytest.mark.filterwarnings("ignore:RoiResponseSeries 'dff'")  # pynwb's warning on reading it
def test_frames_and_data_that_disagree_are_an_error(tmp_path):
    path = _write(_two_photon(timing={"timestamps": 0.1 * np.arange(8)}, behavior=False), tmp_path / "lab_short.nwb")
    _edit(path, lambda f: _replace(f, "processing/ophys/DfOverF/dff/timestamps", 0.1 * np.arange(7)))  # pynwb refuses to write it
    with pytest.raises(DataError, match=r"ROI series dff has data of shape \(8, 3\) for 7 frame times and 3 ROIs"):
        read_nwb(path, behavior=())


def test_a_file_without_units_or_traces_names_both_places(tmp_path):
    nwb = NWBFile(session_description="x", identifier="x", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    path = _write(nwb, tmp_path / "empty.nwb")
    with pytest.raises(MissingKeyError, match=r"empty.nwb: no units table \(nwbfile.units\) and no ROI traces \(processing/ophys/DfOverF or Fluorescence\)"):
        read_nwb(path, behavior=())


PARK_ROIS = {
    "park2024_230803_mrcuts24_fov1_grat_v1_2p.nwb": 28,
    "park2024_230803_mrcuts25_fov6_grat_v1_2p.nwb": 53,
    "park2024_230804_mrcuts26_fov5_grat_v1_2p.nwb": 74,
    "park2024_230804_mrcuts27_fov3_grat_v1_2p.nwb": 39,
    "park2024_230810_mrcuts29_fov2_grat_v1_2p.nwb": 18,
}


def _park(name: str) -> Path:
    if not REAL.is_dir():
        pytest.skip("../shared/data/real not found: real-data tests need the project's shared data")
    return REAL / name


@pytest.mark.parametrize("name", sorted(PARK_ROIS))
def test_real_two_photon_files_import_whole(name):
    """README: dF/F of the ROIs in 128 windows of 49 frames at 16 Hz, 1 s apart (392 s recorded),
    pupil and running speed on the frames, 128 trials."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*session description")  # a sentence, not a task name
        recording = read_nwb(_park(name))
    traces = recording.traces
    assert (traces.kind, len(traces), traces.n_units) == ("dff", 128 * 49, PARK_ROIS[name])
    assert len(recording.units) == PARK_ROIS[name] and len(recording.spikes) == 0
    assert recording.units.ids[0] == "roi_000" and recording.info.brain_areas == ("VISp",)
    np.testing.assert_allclose(np.median(np.diff(traces.timestamps)), FRAME_S)
    assert len(recording.domain) == 128 and recording.domain.total_duration() == pytest.approx(392.0)
    assert sorted(recording.behavior) == ["pupil", "running_speed"] and len(recording.trials) == 128


def test_prepare_nwb_writes_the_real_two_photon_files_unchanged(tmp_path, capsys):
    name = "park2024_230810_mrcuts29_fov2_grat_v1_2p.nwb"
    path = _park(name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*session description")
        assert main(["prepare", "nwb", str(path), "--out", str(tmp_path)]) == 0
        expected = read_nwb(path)
    assert read_recording(tmp_path / f"{path.stem}.h5") == expected
    capsys.readouterr()
    assert main(["inspect", str(tmp_path)]) == 0
    assert "traces   dff: 6,272 frames x 18 units at 16.0 Hz" in capsys.readouterr().out


# ----------------------------------------------------------------------------------- simulator


@pytest.fixture(scope="module")
def sessions() -> list[Recording]:
    return simulate_dataset(n_animals=1, sessions_per_animal=1, n_trials=20, duration_s=40.0, seed=3)


def test_calcium_sessions_are_deterministic_and_keep_behavior_and_trials(sessions):
    spikes = sessions[0]
    calcium = simulate_calcium(spikes, seed=1)
    assert calcium == simulate_calcium(spikes, seed=1)
    assert not np.array_equal(calcium.traces.values, simulate_calcium(spikes, seed=2).traces.values)
    assert recording_problems(calcium) == []
    assert calcium.recording_id == f"{spikes.recording_id}_ca" and len(calcium.spikes) == 0
    assert calcium.traces.kind == "dff" and calcium.traces.n_units == len(spikes.units)
    np.testing.assert_array_equal(calcium.units.ids[:2], ["roi_000", "roi_001"])
    np.testing.assert_array_equal(calcium.units.columns["neuron"], spikes.units.ids)
    assert calcium.behavior == spikes.behavior and calcium.trials == spikes.trials
    assert calcium.domain == spikes.domain
    # frame centres on a 15 Hz clock, all inside the domain
    k = calcium.traces.timestamps * 15.0 - 0.5
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    assert calcium.domain.contains(calcium.traces.timestamps).all()


def test_calcium_traces_follow_each_neurons_own_spiking(sessions):
    """Each ROI's dF/F tracks its neuron's spike count over the last second far better than
    another neuron's (the indicator integrates spikes over ~0.7 s)."""
    spikes = sessions[1]
    calcium = simulate_calcium(spikes, frame_rate_hz=10.0)
    frames = calcium.traces.timestamps
    counts = np.stack(
        [
            np.searchsorted(t, frames) - np.searchsorted(t, frames - 1.0)
            for t in (spikes.spikes.times[spikes.spikes.unit_index == u] for u in range(len(spikes.units)))
        ],
        axis=1,
    ).astype(float)

    def correlation(a, b):
        a, b = a - a.mean(0), b - b.mean(0)
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))

    active = counts.mean(0) > 2.0
    own = correlation(calcium.traces.values, counts)[active]
    other = correlation(calcium.traces.values, np.roll(counts, 1, axis=1))[active]
    assert np.median(own) > 0.8 and np.median(own - other) > 0.3


def test_simulate_calcium_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "ca"
    argv = ["simulate", "--out", str(out), "--animals", "1", "--days", "1", "--tasks", "center_out",
            "--trials", "8", "--modality", "calcium", "--frame-rate-hz", "20"]
    assert main(argv) == 0
    (path,) = out.glob("*.h5")
    recording = read_recording(path)
    assert path.stem.endswith("_ca") and recording.has_traces and len(recording.spikes) == 0
    assert set(recording.splits) == {"train", "valid", "test"}
    capsys.readouterr()
    assert main(["inspect", "--json", str(path)]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["traces"]["frame_rate_hz"] == pytest.approx(20.0)
    assert summary["trace_units"] == summary["units"] and summary["silent_units"] == 0


def test_summary_of_a_recording_with_spikes_and_traces(imaged):
    summary = summarize(imaged)
    assert (summary["units"], summary["trace_units"], summary["silent_units"]) == (8, 3, 1)  # u4 never fires
    assert summary["traces"] == {"kind": "dff", "frames": len(imaged.traces), "frame_rate_hz": pytest.approx(16.0)}
    text = format_summary(summary)
    assert "units    8 (3 with traces, 1 without spikes or traces)" in text
    assert f"traces   dff: {len(imaged.traces)} frames x 3 units at 16.0 Hz" in text
