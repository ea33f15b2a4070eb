"""Import NWB 2.x files (Neural Latents Benchmark conventions) as :class:`Recording` objects.

What is read, and the rules applied:

- **Units** (``nwbfile.units``): ``spike_times`` become time-sorted spikes. Unit ids come
  from the ``unit_name`` column when present, else from the table's ids (as strings). Every other
  column holding one number or string per unit (``brain_area``, ``electrode_channel``, ...) becomes
  a unit column.
- **Traces** (two-photon imaging; ``traces="auto"``): the RoiResponseSeries of
  ``processing/ophys/DfOverF`` (kind ``"dff"``), else of ``processing/ophys/Fluorescence``
  (``"fluorescence"``); ``traces=<location>`` names the series (or its container) anywhere,
  ``traces=None`` reads none. Values are ``data * conversion + offset`` on explicit timestamps or
  ``starting_time + i / rate``. Each ROI is a unit, after the spiking units in the table: ids from
  the plane segmentation's ``roi_name`` column (else ``roi_<id>``), its other scalar columns
  (masks skipped) and the imaging plane's ``location``. A file needs units, traces or both; a
  column only one of the two tables has is blank ("" or NaN) for the other's rows.
- **Domain** (the spans holding data), from the first source that exists (``domain="auto"``):
  the union of all units' ``obs_intervals``; the ``epochs`` table; the contiguous runs of the
  trace frames, then of the behavior timestamps (a run breaks where a step exceeds 1.5 median steps
  and spans half a step either side of its first and last sample); the trials.
  ``domain=<source>`` forces one source.
- **Outside the domain** is a gap, not silence: spikes, frames and behavior samples there, and
  trials that do not overlap it, are dropped, and one :class:`DroppedDataWarning` per file counts
  them.
- **Repairs** (one :class:`RepairedDataWarning` per file counts them; ``strict=True`` makes each a
  :class:`DataError` instead): a unit's spike times out of order, or frame or behavior timestamps
  out of order, are sorted; NaN/inf spike, frame or sample times, frames and behavior samples
  holding NaN, frames and samples repeating a timestamp (the first of each time is kept) and trials
  of zero length are dropped.
- **Behavior**: series named by ``behavior`` inside ``behavior_location`` (default
  ``processing/behavior``; e.g. ``acquisition/CompassDirection``); by default ``hand_vel`` when the
  location holds it, else every series there (``position`` and ``velocity`` of a place-cell
  file). A location that names one series
  (``acquisition/CompassDirection/ry``) loads just that series under its own name. Values are
  ``data * conversion + offset`` and timestamps are explicit or ``starting_time + i / rate``.
  The unit is the series' ``unit``, except that a metric prefix equal to ``conversion`` is taken to
  name the raw data's unit (NLB files store ``unit="cm/s", conversion=0.01``), so the unit recorded
  is the converted one (``"m/s"``). Series named in ``circular`` hold angles (unit rad or deg)
  and are stored as ``(cos, sin)`` circular streams (:mod:`neuropoyo.data.circular`).
- **Trials** (optional): sorted by start; start/stop plus every scalar column (event times stay
  absolute seconds). Overlapping trials, trials ending before they start and NaN bounds are errors. Trials partly outside the domain are kept
  (splits only use their recorded part).
- **Sub-intervals** (``sub_intervals``): name -> (start column, end column) of the trials table,
  ``start_time`` / ``stop_time`` naming the trial bounds. By default a ``reach`` interval runs from
  ``move_onset_time`` to the trial's stop, when the trials have that column; rows with a missing
  (NaN) or non-positive span are left out.
- **Epochs** (optional ``epochs`` table): each epoch joins the named interval of its
  ``epoch_type`` value and of each of its tags, so ``intervals["run"]`` holds the running epochs
  of a place-cell session (``--eval-intervals run`` scores them). A name given by both the epochs
  and the trials' sub-intervals is an error.
- **Metadata**: recording id = file stem, brainset = the stem's first ``_``-separated word (e.g.
  ``dyer2017``), task = ``session_description`` when that is a short name (up to 32 letters,
  digits, ``_`` or ``-``), else ``"unknown"`` with a warning (a sentence would become the task of
  every table), unless given; brain areas are the distinct ``brain_area`` (else ``location``)
  values of the units.
- **Splits** are assigned with :func:`neuropoyo.data.splits.assign_splits` (held-out trials,
  stratified by ``target_dir`` when present; contiguous blocks without trials), where the behavior
  exists: a session whose position is tracked only while running is split over its running time.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from neuropoyo.data.circular import to_unit_circle
from neuropoyo.data.importers.common import (
    DroppedDataWarning,
    RepairedDataWarning,
    Repairs,
    brain_areas,
    existing_file,
    keep_recorded,
    prepare_files,
    sorted_trials,
    time_sorted,
)
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.labels import trial_label_stream
from neuropoyo.data.recording import Recording, RecordingInfo, Spikes, TimeSeries, Traces, Units
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError, MissingKeyError

__all__ = ["DOMAIN_SOURCES", "DroppedDataWarning", "RepairedDataWarning", "prepare_nwb", "read_nwb"]

DEFAULT_LOCATION = "processing/behavior"
DEFAULT_BEHAVIOR = "hand_vel"  # loaded alone when the location holds it (behavior=None)
DEFAULT_SUB_INTERVALS = MappingProxyType({"reach": ("move_onset_time", "stop_time")})
DOMAIN_SOURCES = ("obs_intervals", "epochs", "frames", "behavior", "trials")
_FILE_GROUPS = ("processing", "acquisition", "analysis", "stimulus")
_UNIT_ID_COLUMN = "unit_name"
_UNIT_SKIP = ("spike_times", "obs_intervals", _UNIT_ID_COLUMN)
_OPHYS = "processing/ophys"
_TRACE_CONTAINERS = ("DfOverF", "Fluorescence")  # where traces="auto" looks, in this order
_ROI_ID_COLUMN = "roi_name"
_ROI_SKIP = (_ROI_ID_COLUMN, "pixel_mask", "image_mask", "voxel_mask")  # masks are never read
_PREFIXES = {"k": 1e3, "c": 1e-2, "m": 1e-3, "u": 1e-6, "µ": 1e-6}
_PREFIXED_BASES = ("m", "g", "V")
_RUN_BREAK = 1.5  # a step longer than this many median steps ends a run of behavior samples
_TASK_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # a session description that can name the task
_INSTALL_HINT = "reading NWB files needs pynwb: pip install neuropoyo[nwb]"
_EXPORT = "export the session as NWB 2.x (e.g. with pynwb)"
# What h5py, hdmf and pynwb raise on damaged files, found by fuzzing (tests/test_fuzz_importers.py).
_DAMAGED = (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError)


def _pynwb():
    try:
        import pynwb
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return pynwb


@contextmanager
def _open(path: Path) -> Iterator:
    """The NWBFile read from ``path``; what h5py, hdmf and pynwb raise on a damaged file while it is
    open is a DataError."""
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file; NWB 2.x files are HDF5: {_EXPORT}")
    pynwb = _pynwb()
    from hdmf.build import ConstructError

    try:
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            version, parts = io.nwb_version
            if parts is None or not isinstance(parts[0], int) or parts[0] < 2:
                found = "no nwb_version" if version is None else f"nwb_version {version!r}"
                raise DataError(f"{path}: an HDF5 file but not NWB 2.x ({found}); {_EXPORT}")
            yield io.read()
    except DataError:
        raise
    except (*_DAMAGED, ConstructError) as error:
        raise DataError(
            f"{path}: damaged NWB file, reading it failed ({type(error).__name__}: {error}); "
            "export it again"
        ) from error


# ------------------------------------------------------------------------------------ tables


def _column_values(table, name: str) -> np.ndarray | None:
    """(K,) values of a one-value-per-row column; None for ragged, reference or object columns."""
    from hdmf.common import DynamicTableRegion, VectorIndex

    column = table[name]
    if isinstance(column, (VectorIndex, DynamicTableRegion)):
        return None
    values = np.asarray(column.data[:])
    if values.dtype == object and all(isinstance(v, (str, bytes)) for v in values):
        values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=str)
    if values.ndim != 1 or values.dtype.kind not in "biufSU":
        return None
    return values.astype(str) if values.dtype.kind == "S" else values


def _scalar_columns(table, skip: Sequence[str]) -> dict[str, np.ndarray]:
    """name -> (K,) array for each scalar column of a DynamicTable not in ``skip``."""
    columns = {}
    for name in table.colnames:
        values = None if name in skip else _column_values(table, name)
        if values is not None:
            columns[name] = values
    return columns


def _units(table) -> Units:
    """The unit table: ids from ``unit_name`` (else the table ids) plus scalar columns."""
    if _UNIT_ID_COLUMN in table.colnames:
        ids = _column_values(table, _UNIT_ID_COLUMN).astype(str)
    else:
        ids = np.asarray(table.id.data[:]).astype(str)
    return Units(ids, _scalar_columns(table, _UNIT_SKIP))


def _ragged(table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat values of ragged column ``name`` and (n_values,) int32 row of each."""
    values = np.asarray(table[name].target.data[:])
    ends = np.asarray(table[name].data[:], dtype=np.int64)
    rows = np.repeat(np.arange(ends.size, dtype=np.int32), np.diff(ends, prepend=0))
    return values, rows


def _spikes(table, path: Path, repairs: Repairs) -> Spikes:
    """All units' spikes sorted by time (S,); a unit's own times out of order are a repair."""
    if "spike_times" not in table.colnames:
        raise MissingKeyError(
            f"{path}: the units table has no spike_times column (columns: "
            f"{', '.join(table.colnames)}); neuropoyo needs spike times per unit"
        )
    times, unit_index = _ragged(table, "spike_times")
    times = times.astype(np.float64, copy=False)
    same_unit = unit_index[1:] == unit_index[:-1]
    out_of_order = int((same_unit & (times[1:] < times[:-1])).sum())
    times, unit_index = time_sorted(
        times, (unit_index,), "spike", repairs, out_of_order=out_of_order
    )
    return Spikes(times, unit_index)


def _trials(nwbfile, path: Path, repairs: Repairs) -> Intervals:
    """Trials sorted by start with their scalar columns; empty when the file has none."""
    table = nwbfile.trials
    if table is None or len(table) == 0:
        return Intervals.empty()
    trials = Intervals(
        table["start_time"].data[:],
        table["stop_time"].data[:],
        _scalar_columns(table, ("start_time", "stop_time")),
    )
    return sorted_trials(trials, path, "fix start_time/stop_time in the trials table", repairs)


# ---------------------------------------------------------------------------------- behavior


def _children(node) -> Mapping:
    """name -> child of an NWB file, group dict or container."""
    from pynwb import NWBFile

    if isinstance(node, NWBFile):
        return {name: getattr(node, name) for name in _FILE_GROUPS}
    if isinstance(node, Mapping):
        return node
    return {child.name: child for child in getattr(node, "children", ())}


def _names(node) -> str:
    return ", ".join(sorted(_children(node))) or "nothing"


def _resolve(
    nwbfile,
    location: str,
    path: Path,
    what: str = "behavior location",
    fix: str = "--behavior-location PATH naming the group that holds the behavior series (e.g. "
    "acquisition/CompassDirection)",
):
    """The object at ``location`` (e.g. ``acquisition/CompassDirection``) of an open file; the
    error names the ``what`` and the option that ``fix``es it."""
    node, walked = nwbfile, []
    for part in location.strip("/").split("/"):
        children = _children(node)
        if part not in children:
            where = "/".join(walked) or "the file root"
            seen = f"{where} holds: {_names(node)}"
            if where != "acquisition":
                seen += f"; acquisition holds: {_names(nwbfile.acquisition)}"
            raise MissingKeyError(
                f"{path}: no {'/'.join(walked + [part])} ({what} {location!r}); {seen}; pass {fix}"
            )
        node, walked = children[part], walked + [part]
    return node


def _series_named(group, name: str, location: str, path: Path):
    """The TimeSeries ``name`` inside ``group``."""
    from pynwb import TimeSeries as NWBTimeSeries

    children = _children(group)
    if name not in children:
        raise MissingKeyError(
            f"no behavior series named {name} in {location} of {path}; found: {_names(group)}; "
            "pass --behavior NAME with one of those, or --behavior-location PATH"
        )
    series = children[name]
    if not isinstance(series, NWBTimeSeries):
        raise DataError(
            f"{path}: {location}/{name} is a {type(series).__name__}, not a series; it holds "
            f"{_names(series)}: pass --behavior-location {location}/{name} and name one of those"
        )
    return series


def _si_unit(unit: str, conversion: float) -> str:
    """The unit of ``data * conversion`` when ``unit`` carries the matching metric prefix."""
    head, slash, tail = unit.partition("/")
    prefix, base = head[:1], head[1:]
    if base in _PREFIXED_BASES and np.isclose(_PREFIXES.get(prefix, np.nan), conversion):
        return base + slash + tail
    return unit


def _timestamps(series, n: int) -> np.ndarray:
    """(n,) float64 sample times: explicit, or ``starting_time + i / rate``."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    return series.starting_time + np.arange(n) / series.rate


def _converted(series, repairs: Repairs) -> TimeSeries:
    """A series as neuropoyo behavior: (N,) sorted timestamps, (N, D) converted values."""
    values = np.asarray(series.data[:])
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    if series.conversion != 1.0 or offset != 0.0:
        values = values * series.conversion + offset
    timestamps = _timestamps(series, len(values))
    if timestamps.size != len(values):
        raise DataError(
            f"{repairs.path}: behavior series {series.name} has {len(values)} samples but "
            f"{timestamps.size} timestamps; give it one timestamp per sample (data and timestamps "
            "of the same length)"
        )
    timestamps, values = time_sorted(timestamps, (values,), f"{series.name} sample", repairs)
    return TimeSeries(timestamps, values, _si_unit(series.unit, series.conversion))


def _default_names(group, location: str, path: Path) -> tuple[str, ...]:
    """The series ``behavior=None`` loads: hand_vel when ``group`` holds it, else every series in it."""
    from pynwb import TimeSeries as NWBTimeSeries

    series = sorted(name for name, child in _children(group).items() if isinstance(child, NWBTimeSeries))
    if not series:
        raise MissingKeyError(
            f"{path}: no behavior series in {location}; it holds: {_names(group)}; pass "
            f"--behavior-location PATH naming the group that holds the series (e.g. {location}/Position)"
        )
    return (DEFAULT_BEHAVIOR,) if DEFAULT_BEHAVIOR in series else tuple(series)


def _behavior(
    nwbfile, names: Sequence[str] | None, location: str, path: Path, repairs: Repairs
) -> dict[str, TimeSeries]:
    """stream name -> behavior series read from ``location`` (names None: :func:`_default_names`)."""
    from pynwb import TimeSeries as NWBTimeSeries

    if names is not None and not names and location == DEFAULT_LOCATION:
        return {}
    node = _resolve(nwbfile, location, path)
    if isinstance(node, NWBTimeSeries):
        return {node.name: _converted(node, repairs)}
    if names is None:
        names = _default_names(node, location, path)
    return {
        name: _converted(_series_named(node, name, location, path), repairs) for name in names
    }


def _circular(streams: dict[str, TimeSeries], names: Sequence[str], path: Path) -> dict:
    """``streams`` with the angle series named in ``names`` as (cos, sin) circular streams."""
    missing = [name for name in names if name not in streams]
    if missing:
        raise MissingKeyError(
            f"{path}: circular series {', '.join(missing)} not loaded; loaded: "
            f"{', '.join(streams) or 'none'}; name each angle series with --behavior as well"
        )
    return {
        name: to_unit_circle(series, f"{path}: behavior {name}") if name in names else series
        for name, series in streams.items()
    }


# ------------------------------------------------------------------------------------ traces


def _roi_series(nwbfile, traces: str | None, path: Path):
    """The RoiResponseSeries ``traces`` names, or None. ``"auto"``: the one series of
    processing/ophys/DfOverF, else of processing/ophys/Fluorescence (None when neither exists); a
    location: the series there, or the one series of the container there; None: none."""
    from pynwb.ophys import RoiResponseSeries

    if traces is None:
        return None
    if traces == "auto":
        ophys = _children(nwbfile.processing).get("ophys")
        found = [name for name in _TRACE_CONTAINERS if ophys is not None and name in _children(ophys)]
        if not found:
            return None
        location = f"{_OPHYS}/{found[0]}"
        node = _children(ophys)[found[0]]
    else:
        location = traces
        node = _resolve(
            nwbfile, location, path, "traces location",
            "--traces PATH (traces=) naming the ROI response series (e.g. processing/ophys/DfOverF/dff)",
        )
    if isinstance(node, RoiResponseSeries):
        return node
    series = [child for child in _children(node).values() if isinstance(child, RoiResponseSeries)]
    if len(series) != 1:
        raise MissingKeyError(
            f"{path}: {location} holds {len(series)} ROI response series (it holds: {_names(node)}); "
            f"pass --traces {location}/NAME (traces=) naming one"
        )
    return series[0]


def _roi_units(series) -> Units:
    """One unit per column of ``series``: ids from the plane segmentation's ``roi_name`` (else
    ``roi_<id>``), its scalar columns and ``location``, the imaging plane's (unless a column)."""
    table = series.rois.table
    rows = np.asarray(series.rois.data[:], dtype=np.int64)
    if _ROI_ID_COLUMN in table.colnames:
        ids = _column_values(table, _ROI_ID_COLUMN).astype(str)
    else:
        ids = np.array([f"roi_{i}" for i in table.id.data[:]])
    columns = _scalar_columns(table, _ROI_SKIP)
    plane = getattr(table, "imaging_plane", None)
    if "location" not in columns and plane is not None and plane.location:
        columns["location"] = np.full(ids.size, str(plane.location))
    return Units(ids[rows], {name: column[rows] for name, column in columns.items()})


def _traces(series, first_row: int, repairs: Repairs) -> Traces:
    """The frames of ``series``, values ``data * conversion + offset``, its columns pointing at
    unit rows ``first_row, first_row + 1, ...``; NaN/inf or unsorted frame times are repairs."""
    from pynwb.ophys import DfOverF

    values = np.asarray(series.data[:], dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    values = values * series.conversion + float(getattr(series, "offset", 0.0) or 0.0)
    timestamps = _timestamps(series, len(values))
    n_rois = len(series.rois.data)
    if values.shape != (timestamps.size, n_rois):
        raise DataError(
            f"{repairs.path}: ROI series {series.name} has data of shape {values.shape} for "
            f"{timestamps.size} frame times and {n_rois} ROIs (rois); give it (frames, ROIs) = "
            f"({timestamps.size}, {n_rois}) data"
        )
    timestamps, values = time_sorted(timestamps, (values,), "frame", repairs)
    kind = "dff" if isinstance(series.parent, DfOverF) else "fluorescence"
    return Traces(timestamps, values, first_row + np.arange(n_rois), kind)


def _blank(column: np.ndarray):
    """What a row missing from ``column`` holds: "" (text) or NaN (numbers); None: no blank."""
    return "" if column.dtype.kind == "U" else np.nan if column.dtype.kind in "iuf" else None


def _joined(units: Units, rois: Units) -> Units:
    """The spiking units followed by the ROIs. A column only one of them has is blank for the
    other's rows; a column of bools, or of text in one table and numbers in the other, is left out."""
    columns = {}
    for name in dict.fromkeys([*units.columns, *rois.columns]):
        parts = [table.columns.get(name) for table in (units, rois)]
        blanks = [_blank(part) for part in parts if part is not None]
        if None in blanks or len({type(blank) for blank in blanks}) > 1:
            continue
        columns[name] = np.concatenate(
            [np.full(len(t), blanks[0]) if p is None else p for p, t in zip(parts, (units, rois))]
        )
    return Units(np.concatenate([units.ids, rois.ids]), columns)


def _neural_sources(nwbfile, traces: str | None, path: Path) -> tuple:
    """The units table and the RoiResponseSeries ``traces`` names (either may be None, not both)."""
    table, series = nwbfile.units, _roi_series(nwbfile, traces, path)
    if table is None and series is None:
        looked = f" and no ROI traces ({_OPHYS}/DfOverF or Fluorescence)" if traces == "auto" else ""
        raise MissingKeyError(
            f"{path}: no units table (nwbfile.units){looked}; neuropoyo needs spike times per unit "
            "or calcium traces per ROI: add a Units table with a spike_times column, or pass "
            "--traces PATH (traces=) naming a RoiResponseSeries"
        )
    return table, series


def _neural(table, series, path: Path, repairs: Repairs) -> tuple[Units, Spikes, Traces]:
    """The unit table (spiking units, then ROIs), the spikes and the ROI traces of the file."""
    if series is None:
        return _units(table), _spikes(table, path, repairs), Traces.empty()
    rois = _roi_units(series)
    if table is None:
        return rois, Spikes.empty(), _traces(series, 0, repairs)
    units = _units(table)
    return _joined(units, rois), _spikes(table, path, repairs), _traces(series, len(units), repairs)


# ------------------------------------------------------------------------------------ domain


def _behavior_runs(timestamps: np.ndarray) -> Intervals:
    """Contiguous runs of sorted (N,) sample times, each widened by half a step either side."""
    steps = np.diff(timestamps)
    positive = steps[steps > 0]
    if positive.size == 0:
        return Intervals.empty()
    step = float(np.median(positive))
    breaks = np.flatnonzero(steps > _RUN_BREAK * step)
    first = np.concatenate([[0], breaks + 1])
    last = np.concatenate([breaks, [timestamps.size - 1]])
    return Intervals(timestamps[first] - step / 2, timestamps[last] + step / 2)


def _domain_from(source: str, nwbfile, behavior, frames, trials) -> Intervals | None:
    """Recorded spans from one source, or None when the file lacks it (frames: (F,) sorted)."""
    if source == "obs_intervals":
        units = nwbfile.units
        if units is None or "obs_intervals" not in units.colnames:
            return None
        spans = np.asarray(_ragged(units, "obs_intervals")[0], dtype=np.float64).reshape(-1, 2)
        return Intervals(spans[:, 0], spans[:, 1]).merged()
    if source == "epochs":
        epochs = nwbfile.epochs
        if epochs is None or len(epochs) == 0:
            return None
        return Intervals(epochs["start_time"].data[:], epochs["stop_time"].data[:]).merged()
    if source == "frames":
        return _behavior_runs(frames) if frames.size else None
    if source == "behavior":
        return _union(_behavior_runs(s.timestamps) for s in behavior.values())
    return trials.merged() if len(trials) else None


def _union(spans: Iterable[Intervals]) -> Intervals | None:
    """Merged union of ``spans``; None when there are none."""
    spans = list(spans)
    if not spans:
        return None
    merged = spans[0].merged()
    for other in spans[1:]:
        merged = merged.union(other)
    return merged


def _domain(source: str, nwbfile, behavior, frames, trials, path: Path) -> Intervals:
    """The recorded spans from ``source`` ("auto": the first of DOMAIN_SOURCES the file has)."""
    if source != "auto" and source not in DOMAIN_SOURCES:
        raise DataError(
            f"{path}: unknown domain source {source!r}; use 'auto' or one of {list(DOMAIN_SOURCES)}"
        )
    for candidate in DOMAIN_SOURCES if source == "auto" else (source,):
        domain = _domain_from(candidate, nwbfile, behavior, frames, trials)
        if domain is not None:
            return domain
    raise MissingKeyError(
        f"{path}: cannot tell which spans hold data: no "
        f"{'units obs_intervals, epochs, frames, behavior or trials' if source == 'auto' else source}; "
        f"add obs_intervals to the units table or pass domain= one of {list(DOMAIN_SOURCES)}"
    )


# ------------------------------------------------------------------------------ sub-intervals


def _trial_times(trials: Intervals, column: str) -> np.ndarray | None:
    """(K,) times of trial column ``column`` (``start_time``/``stop_time``: the bounds)."""
    if column == "start_time":
        return trials.start
    if column == "stop_time":
        return trials.end
    values = trials.columns.get(column)
    return None if values is None or values.dtype.kind not in "iuf" else values.astype(np.float64)


def _sub_interval(trials: Intervals, bounds: tuple[str, str]) -> Intervals | None:
    """Spans from one trial column to another, sorted; None when a column is missing."""
    start, end = (_trial_times(trials, column) for column in bounds)
    if start is None or end is None:
        return None
    keep = np.isfinite(start) & np.isfinite(end) & (end > start)
    order = np.argsort(start[keep], kind="stable")
    return Intervals(start[keep][order], end[keep][order])


def _sub_intervals(
    trials: Intervals, spec: Mapping[str, tuple[str, str]] | None, path: Path
) -> dict[str, Intervals]:
    """name -> sub-intervals; ``spec=None`` builds the defaults the trials have columns for."""
    strict = spec is not None
    built = {}
    for name, bounds in (DEFAULT_SUB_INTERVALS if spec is None else spec).items():
        spans = _sub_interval(trials, tuple(bounds))
        if spans is None and strict:
            raise MissingKeyError(
                f"{path}: sub-interval {name!r} needs numeric trial columns {list(bounds)}; the "
                f"trials table has {['start_time', 'stop_time', *sorted(trials.columns)]}"
            )
        if spans is not None:
            built[name] = spans
    return built


def _epoch_intervals(nwbfile) -> dict[str, Intervals]:
    """name -> sorted spans of the epochs so named: each epoch of the ``epochs`` table belongs to
    the interval named by its ``epoch_type`` (when the table has that column) and to one per tag
    (e.g. ``run``, ``rest``). Epochs without a finite, positive span are left out."""
    epochs = nwbfile.epochs
    if epochs is None or len(epochs) == 0:
        return {}
    start = np.asarray(epochs["start_time"].data[:], dtype=np.float64)
    stop = np.asarray(epochs["stop_time"].data[:], dtype=np.float64)
    names = [set() for _ in range(start.size)]
    if "epoch_type" in epochs.colnames:
        for row, value in enumerate(epochs["epoch_type"].data[:]):
            names[row].add(value.decode() if isinstance(value, bytes) else str(value))
    if "tags" in epochs.colnames:
        tags, rows = _ragged(epochs, "tags")
        for tag, row in zip(tags, rows):
            names[row].add(tag.decode() if isinstance(tag, bytes) else str(tag))
    usable = np.isfinite(start) & np.isfinite(stop) & (stop > start)
    built = {}
    for name in sorted(set().union(*names) - {""}):
        rows = np.flatnonzero(usable & np.array([name in row for row in names]))
        order = rows[np.argsort(start[rows], kind="stable")]
        built[name] = Intervals(start[order], stop[order])
    return built


def _with_epochs(intervals: dict[str, Intervals], epochs: dict[str, Intervals], path: Path) -> dict:
    """The sub-intervals of the trials and the epoch intervals in one mapping; a name in both is
    an error."""
    both = sorted(set(intervals) & set(epochs))
    if both:
        raise DataError(
            f"{path}: interval {both[0]!r} comes from the trials (sub_intervals) and from the epochs "
            "table; name the sub-interval otherwise with sub_intervals="
        )
    return {**intervals, **epochs}


# ----------------------------------------------------------------------------------- metadata


def _task(description: str, path: Path) -> str:
    """The task named by the session description when it is a short name, else "unknown" (with
    a warning for a description that is not one)."""
    if _TASK_NAME.fullmatch(description):
        return description
    if description:
        shown = description if len(description) <= 60 else description[:57] + "..."
        warnings.warn(
            f"{path}: session description {shown!r} is not a short task name (up to 32 letters, "
            "digits, '_' or '-'), so the task is 'unknown'; name it with --task NAME (command "
            "line) or task= (Python)",
            stacklevel=4,
        )
    return "unknown"


def _info(nwbfile, path: Path, units: Units, recording_id, brainset, task) -> RecordingInfo:
    subject = nwbfile.subject
    description = (nwbfile.session_description or "").strip()
    return RecordingInfo(
        recording_id=recording_id or path.stem,
        brainset=brainset or path.stem.split("_")[0],
        subject=(subject.subject_id or "") if subject is not None else "",
        task=task or _task(description, path),
        species=(subject.species or "") if subject is not None else "",
        brain_areas=brain_areas(units),
        extra={
            "session_description": description,
            "session_start_time": nwbfile.session_start_time.isoformat(),
            "source_file": path.name,
        },
    )


# --------------------------------------------------------------------------------------- API


def read_nwb(
    path: str | Path,
    *,
    behavior: str | Sequence[str] | None = None,
    behavior_location: str | None = None,
    circular: Sequence[str] = (),
    traces: str | None = "auto",
    domain: str = "auto",
    sub_intervals: Mapping[str, tuple[str, str]] | None = None,
    labels: Mapping[str, str | Sequence[str]] | None = None,
    recording_id: str | None = None,
    brainset: str | None = None,
    task: str | None = None,
    split_seed: int = 0,
    strict: bool = False,
) -> Recording:
    """One NWB file as a Recording with splits assigned (rules in the module docstring).

    behavior: series name(s) to load (``()`` for none; None: ``hand_vel`` when the location holds
    it, else every series there). behavior_location: where they live
    (default ``processing/behavior``), or the path of one series. circular: loaded series that
    hold angles, stored as ``(cos, sin)``. traces: ``"auto"`` (the ROI traces of
    processing/ophys/DfOverF, else Fluorescence, when present), the location of a RoiResponseSeries
    (e.g. ``processing/ophys/DfOverF/dff``), or None. domain: ``"auto"`` or one of
    :data:`DOMAIN_SOURCES`. sub_intervals: name -> (start column, end column) of the trials
    (default: ``reach`` from ``move_onset_time`` to ``stop_time`` when that column exists).
    labels: label stream name -> trial column holding each trial's class (a classification task,
    e.g. ``{"direction": "direction"}``), or (column, start column, stop column) to label only
    that part of each trial (e.g. ``("direction", "stimulus_onset_time", "stimulus_offset_time")``);
    see :func:`~neuropoyo.data.labels.trial_label_stream`. The splits are then stratified by the
    first label's column.
    strict: refuse a file that needs a repair (DataError) instead of repairing it with a warning.
    """
    path = existing_file(path, "NWB")
    repairs = Repairs(path, strict)
    names = (behavior,) if isinstance(behavior, str) else None if behavior is None else tuple(behavior)
    with _open(path) as nwbfile:
        table, series = _neural_sources(nwbfile, traces, path)
        location = behavior_location or DEFAULT_LOCATION
        streams = _circular(_behavior(nwbfile, names, location, path, repairs), circular, path)
        trials = _trials(nwbfile, path, repairs)
        units, spikes, frames = _neural(table, series, path, repairs)
        epochs = _epoch_intervals(nwbfile)
        recording = Recording(
            info=_info(nwbfile, path, units, recording_id, brainset, task),
            spikes=spikes,
            units=units,
            traces=frames,
            behavior=streams,
            domain=_domain(domain, nwbfile, streams, frames.timestamps, trials, path),
            trials=trials,
        )
    recording = keep_recorded(recording, path, repairs)
    repairs.warn()
    intervals = _with_epochs(_sub_intervals(recording.trials, sub_intervals, path), epochs, path)
    recording = dataclasses.replace(recording, intervals=intervals)
    label_streams = _label_streams(recording.trials, labels or {}, path)
    clash = sorted(set(label_streams) & set(recording.behavior))
    if clash:
        raise DataError(f"{path}: label stream {clash[0]!r} has the name of a behavior series; name it otherwise")
    recording = dataclasses.replace(recording, behavior={**recording.behavior, **label_streams})
    stratify = "auto" if not labels else _label_spec(next(iter(labels.values())))[0]
    recording = assign_splits(recording, seed=split_seed, stratify_by=stratify)
    validate_recording(recording, str(path))
    return recording


def _label_spec(spec: str | Sequence[str]) -> tuple[str, str, str]:
    """(column, start column, stop column) of a ``labels`` value."""
    if isinstance(spec, str):
        return spec, "start_time", "stop_time"
    spec = tuple(spec)
    if len(spec) != 3:
        raise ValueError(f"labels: give a trial column or (column, start column, stop column), got {spec}")
    return spec


def _label_streams(trials: Intervals, labels: Mapping, path: Path) -> dict[str, TimeSeries]:
    """Label stream name -> the trial-level label stream of its column."""
    if labels and not len(trials):
        raise MissingKeyError(f"{path}: labels {sorted(labels)} come from trial columns, but the file has no trials table")
    streams = {}
    for name, spec in labels.items():
        column, start, stop = _label_spec(spec)
        streams[name] = trial_label_stream(
            trials, column, start_column=start, stop_column=stop, source=f"{path}: trials"
        )
    return streams


def prepare_nwb(
    files: Iterable[str | Path], out_dir: str | Path, *, split_seed: int = 0, **options
) -> list[Path]:
    """Read each NWB file with :func:`read_nwb` (``options`` passed on) and write it to ``out_dir``.

    Returns the written ``<recording_id>.h5`` paths. All files are checked to exist and to have
    distinct recording ids before anything is written.
    """
    return prepare_files(
        files,
        out_dir,
        kind="NWB",
        recording_id=lambda file: options.get("recording_id") or file.stem,
        read=lambda file: read_nwb(file, split_seed=split_seed, **options),
        split_seed=split_seed,
    )
