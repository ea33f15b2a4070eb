"""Import NWB 2.x files (Neural Latents Benchmark conventions) as :class:`Recording` objects.

What is read, and the rules applied:

- **Units** (``nwbfile.units``, required): ``spike_times`` become time-sorted spikes. Unit ids come
  from the ``unit_name`` column when present, else from the table's ids (as strings). Every other
  column holding one number or string per unit (``brain_area``, ``electrode_channel``, ...) becomes
  a unit column.
- **Domain** (the spans holding data), from the first source that exists (``domain="auto"``):
  the union of all units' ``obs_intervals``; the ``epochs`` table; the contiguous runs of the
  behavior timestamps (a run breaks where a step exceeds 1.5 median steps and spans half a step
  either side of its first and last sample); the trials. ``domain=<source>`` forces one source.
- **Outside the domain** is a gap, not silence: spikes and behavior samples there, and trials that
  do not overlap it, are dropped, and one :class:`DroppedDataWarning` per file counts them.
- **Repairs** (one :class:`RepairedDataWarning` per file counts them; ``strict=True`` makes each a
  :class:`DataError` instead): a unit's spike times out of order, or behavior timestamps out of
  order, are sorted; NaN/inf spike or sample times, behavior samples holding NaN, samples repeating
  a timestamp (the first of each time is kept) and trials of zero length are dropped.
- **Behavior**: series named by ``behavior`` inside ``behavior_location`` (default
  ``processing/behavior``; e.g. ``acquisition/CompassDirection``). A location that names one series
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
- **Metadata**: recording id = file stem, brainset = the stem's first ``_``-separated word (e.g.
  ``dyer2017``), task = ``session_description`` when that is a short name (up to 32 letters,
  digits, ``_`` or ``-``), else ``"unknown"`` with a warning (a sentence would become the task of
  every table), unless given; brain areas are the distinct ``brain_area`` (else ``location``)
  values of the units.
- **Splits** are assigned with :func:`neuropoyo.data.splits.assign_splits` (held-out trials,
  stratified by ``target_dir`` when present; contiguous blocks without trials).
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
from neuropoyo.data.recording import Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError, MissingKeyError

__all__ = ["DOMAIN_SOURCES", "DroppedDataWarning", "RepairedDataWarning", "prepare_nwb", "read_nwb"]

DEFAULT_LOCATION = "processing/behavior"
DEFAULT_SUB_INTERVALS = MappingProxyType({"reach": ("move_onset_time", "stop_time")})
DOMAIN_SOURCES = ("obs_intervals", "epochs", "behavior", "trials")
_FILE_GROUPS = ("processing", "acquisition", "analysis", "stimulus")
_UNIT_ID_COLUMN = "unit_name"
_UNIT_SKIP = ("spike_times", "obs_intervals", _UNIT_ID_COLUMN)
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


def _units_table(nwbfile, path: Path):
    if nwbfile.units is None:
        raise MissingKeyError(
            f"{path}: no units table (nwbfile.units); neuropoyo needs spike times per unit: "
            "add a Units table with a spike_times column"
        )
    return nwbfile.units


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


def _resolve(nwbfile, location: str, path: Path):
    """The object at ``location`` (e.g. ``acquisition/CompassDirection``) of an open file."""
    node, walked = nwbfile, []
    for part in location.strip("/").split("/"):
        children = _children(node)
        if part not in children:
            where = "/".join(walked) or "the file root"
            seen = f"{where} holds: {_names(node)}"
            if where != "acquisition":
                seen += f"; acquisition holds: {_names(nwbfile.acquisition)}"
            raise MissingKeyError(
                f"{path}: no {'/'.join(walked + [part])} (behavior location {location!r}); {seen}; "
                "pass --behavior-location PATH naming the group that holds the behavior series "
                "(e.g. acquisition/CompassDirection)"
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


def _behavior(
    nwbfile, names: Sequence[str], location: str, path: Path, repairs: Repairs
) -> dict[str, TimeSeries]:
    """stream name -> behavior series read from ``location``."""
    from pynwb import TimeSeries as NWBTimeSeries

    if not names and location == DEFAULT_LOCATION:
        return {}
    node = _resolve(nwbfile, location, path)
    if isinstance(node, NWBTimeSeries):
        return {node.name: _converted(node, repairs)}
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


def _domain_from(source: str, nwbfile, behavior, trials) -> Intervals | None:
    """Recorded spans from one source, or None when the file lacks it."""
    if source == "obs_intervals":
        units = nwbfile.units
        if "obs_intervals" not in units.colnames:
            return None
        spans = np.asarray(_ragged(units, "obs_intervals")[0], dtype=np.float64).reshape(-1, 2)
        return Intervals(spans[:, 0], spans[:, 1]).merged()
    if source == "epochs":
        epochs = nwbfile.epochs
        if epochs is None or len(epochs) == 0:
            return None
        return Intervals(epochs["start_time"].data[:], epochs["stop_time"].data[:]).merged()
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


def _domain(source: str, nwbfile, behavior, trials, path: Path) -> Intervals:
    """The recorded spans from ``source`` ("auto": the first of DOMAIN_SOURCES the file has)."""
    if source != "auto" and source not in DOMAIN_SOURCES:
        raise DataError(
            f"{path}: unknown domain source {source!r}; use 'auto' or one of {list(DOMAIN_SOURCES)}"
        )
    for candidate in DOMAIN_SOURCES if source == "auto" else (source,):
        domain = _domain_from(candidate, nwbfile, behavior, trials)
        if domain is not None:
            return domain
    raise MissingKeyError(
        f"{path}: cannot tell which spans hold data: no "
        f"{'units obs_intervals, epochs, behavior or trials' if source == 'auto' else source}; "
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
    behavior: str | Sequence[str] = ("hand_vel",),
    behavior_location: str | None = None,
    circular: Sequence[str] = (),
    domain: str = "auto",
    sub_intervals: Mapping[str, tuple[str, str]] | None = None,
    recording_id: str | None = None,
    brainset: str | None = None,
    task: str | None = None,
    split_seed: int = 0,
    strict: bool = False,
) -> Recording:
    """One NWB file as a Recording with splits assigned (rules in the module docstring).

    behavior: series name(s) to load (``()`` for none). behavior_location: where they live
    (default ``processing/behavior``), or the path of one series. circular: loaded series that
    hold angles, stored as ``(cos, sin)``. domain: ``"auto"`` or one of
    :data:`DOMAIN_SOURCES`. sub_intervals: name -> (start column, end column) of the trials
    (default: ``reach`` from ``move_onset_time`` to ``stop_time`` when that column exists).
    strict: refuse a file that needs a repair (DataError) instead of repairing it with a warning.
    """
    path = existing_file(path, "NWB")
    repairs = Repairs(path, strict)
    names = (behavior,) if isinstance(behavior, str) else tuple(behavior)
    with _open(path) as nwbfile:
        table = _units_table(nwbfile, path)
        units = _units(table)
        location = behavior_location or DEFAULT_LOCATION
        streams = _circular(_behavior(nwbfile, names, location, path, repairs), circular, path)
        trials = _trials(nwbfile, path, repairs)
        recording = Recording(
            info=_info(nwbfile, path, units, recording_id, brainset, task),
            spikes=_spikes(table, path, repairs),
            units=units,
            behavior=streams,
            domain=_domain(domain, nwbfile, streams, trials, path),
            trials=trials,
        )
    recording = keep_recorded(recording, path, repairs)
    repairs.warn()
    recording = dataclasses.replace(
        recording, intervals=_sub_intervals(recording.trials, sub_intervals, path)
    )
    recording = assign_splits(recording, seed=split_seed)
    validate_recording(recording, str(path))
    return recording


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
