"""Recordings on disk: one schema-versioned HDF5 file per recording, read whole or by window.

Layout (files are named ``<recording_id>.h5``; times are float64 seconds)::

    /                             attrs: format="neuropoyo.recording", schema_version,
                                  info (JSON of RecordingInfo.to_dict()), neuropoyo_version
    /spikes/times                 (S,) float64, sorted
    /spikes/unit_index            (S,) int32, row of /units/ids
    /units/ids                    (U,) UTF-8 strings
    /units/columns/<name>         (U, ...) one value per unit
    /behavior/<name>/timestamps   (N,) float64, strictly increasing; attrs: unit, and classes
                                  (JSON list of class names) on a label stream (version 2)
    /behavior/<name>/values       (N, D) numbers or bools, dtype kept
    /domain, /trials, /splits/<train|valid|test>, /intervals/<name>:
        start (K,) float64, end (K,) float64, columns/<name> (K, ...)
    /traces                       optional (schema version 2); attrs: kind (TRACE_KINDS)
    /traces/timestamps            (F,) float64, strictly increasing (frame centres)
    /traces/values                (F, R) float32, finite
    /traces/unit_index            (R,) int32, row of /units/ids of each column

Schema version 2 added the optional ``/traces`` group (calcium traces, binned counts) and the
``classes`` of label streams; a file without them reads as a recording without traces or labels. A
recording without either is written as version 1, so older neuropoyo reads it; one with either as
version 2, which older neuropoyo refuses (rather than read it as a recording without data, or class
indices as numbers).

String columns are stored as UTF-8 variable-length strings and read back as numpy ``str`` arrays;
other columns keep their dtype. Groups remember insertion order, so dicts read back in order.

Spikes, traces and behavior are written contiguous, uncompressed and aligned on purpose:
:class:`RecordingFile` memory-maps them and binary-searches a window's rows in place, so reading
1 s of an hours-long file touches O(log n) pages for the search plus the window's own bytes, and
memory does not grow with the file. Chunked, compressed or misaligned datasets (files written by
other tools) are read through h5py instead: same results, slower.

Writes are atomic: the file is written under a temporary name in the target folder, flushed to
disk and renamed over the target, so readers see the old file or the whole new one, never a part.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import uuid
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import h5py
import numpy as np

from neuropoyo import __version__
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import (
    SPLIT_NAMES,
    TRACE_KINDS,
    Recording,
    RecordingInfo,
    Spikes,
    TimeSeries,
    Traces,
    Units,
)
from neuropoyo.data.validate import (
    InvalidRecordingError,
    recording_problems,
    validate_recording,
)
from neuropoyo.errors import MissingKeyError
from neuropoyo.io import fsync_path

SCHEMA_VERSION = 2  # the newest version read and written (files without traces: version 1)
FORMAT = "neuropoyo.recording"
SUFFIX = ".h5"

_GROUPS = ("spikes", "units", "behavior", "domain", "trials", "splits", "intervals")
_NUMERIC = "biuf"  # dtype kinds of behavior values, and of the arrays that can be memory-mapped
_COLUMN_KINDS = _NUMERIC + "SU"
_TIMES = "spikes/times"
_UNIT_INDEX = "spikes/unit_index"
_FRAME_TIMES = "traces/timestamps"
_FRAME_VALUES = "traces/values"
_REWRITE = "rewrite the file with neuropoyo.data.store.write_recording"
# Every dataset starts at a multiple of 64 bytes, so memory-mapped arrays are aligned for any dtype
# (np.searchsorted copies a misaligned array whole on every call).
_ALIGNED = {"alignment_threshold": 1, "alignment_interval": 64}


# ---------------------------------------------------------------------------------------- writing


def write_recording(recording: Recording, path: str | Path) -> Path:
    """Validate ``recording`` and write it to ``path`` atomically; returns the path.

    Raises InvalidRecordingError (naming ``path``) without touching the disk if the recording is
    invalid or holds names or dtypes HDF5 can't store. On any failure a file already at ``path`` is
    left untouched.
    """
    path = Path(path)
    problems = recording_problems(recording) + _storage_problems(recording)
    if problems:
        raise InvalidRecordingError(str(path), problems)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist; create it first")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with h5py.File(temporary, "w-", track_order=True, **_ALIGNED) as file:
            _write_contents(file, recording)
        fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _is_key(name) -> bool:
    """Whether ``name`` can be one HDF5 group member name."""
    return isinstance(name, str) and name not in ("", ".") and "/" not in name


def _tables(recording: Recording) -> dict[str, Mapping[str, np.ndarray]]:
    """field -> columns, for every table of per-item columns."""
    tables = {"units/columns": recording.units.columns, "trials/columns": recording.trials.columns}
    tables.update({f"splits/{n}/columns": s.columns for n, s in recording.splits.items()})
    tables.update({f"intervals/{n}/columns": s.columns for n, s in recording.intervals.items()})
    return tables


def _storage_problems(recording: Recording) -> list[str]:
    """Names and dtypes that an in-memory recording allows but the file format can't hold."""
    tables = _tables(recording)
    names = {f"behavior/{n}": n for n in recording.behavior}
    names.update({f"intervals/{n}": n for n in recording.intervals})
    names.update({f"{table}/{n}": n for table, columns in tables.items() for n in columns})
    columns = {f"{table}/{n}": c for table, cols in tables.items() for n, c in cols.items()}
    values = {f"behavior/{n}/values": s.values for n, s in recording.behavior.items()}
    bad_names = [
        f"{field}: name {name!r} can't be stored; use a non-empty name without '/', not '.'"
        for field, name in names.items()
        if not _is_key(name)
    ]
    bad_columns = [
        f"{field}: dtype {column.dtype} can't be stored; convert it to numbers, bools or str"
        for field, column in columns.items()
        if column.dtype.kind not in _COLUMN_KINDS
    ]
    bad_values = [
        f"{field}: dtype {array.dtype} can't be stored; behavior values are numbers or bools"
        for field, array in values.items()
        if array.dtype.kind not in _NUMERIC
    ]
    return bad_names + bad_columns + bad_values


def _write_contents(file: h5py.File, recording: Recording) -> None:
    """Every part of ``recording`` into an empty, open file (spikes, traces and behavior
    contiguous); the traces group only when the recording has traces."""
    has_traces = recording.traces != Traces.empty()
    newer = has_traces or any(stream.is_labels for stream in recording.behavior.values())
    file.attrs["format"] = FORMAT
    file.attrs["schema_version"] = SCHEMA_VERSION if newer else 1
    file.attrs["info"] = json.dumps(recording.info.to_dict())
    file.attrs["neuropoyo_version"] = __version__
    spikes = file.create_group("spikes")
    spikes.create_dataset("times", data=recording.spikes.times)
    spikes.create_dataset("unit_index", data=recording.spikes.unit_index)
    units = file.create_group("units")
    _write_array(units, "ids", recording.units.ids)
    _write_columns(units, recording.units.columns)
    behavior = file.create_group("behavior", track_order=True)
    for name, stream in recording.behavior.items():
        group = behavior.create_group(name)
        group.attrs["unit"] = stream.unit
        if stream.is_labels:
            group.attrs["classes"] = json.dumps(list(stream.classes))
        group.create_dataset("timestamps", data=stream.timestamps)
        group.create_dataset("values", data=stream.values)
    _write_intervals(file.create_group("domain"), recording.domain)
    _write_intervals(file.create_group("trials"), recording.trials)
    _write_named_intervals(file.create_group("splits", track_order=True), recording.splits)
    _write_named_intervals(file.create_group("intervals", track_order=True), recording.intervals)
    if has_traces:
        traces = file.create_group("traces")
        traces.attrs["kind"] = recording.traces.kind
        traces.create_dataset("timestamps", data=recording.traces.timestamps)
        traces.create_dataset("values", data=recording.traces.values)
        traces.create_dataset("unit_index", data=recording.traces.unit_index)


def _write_array(group: h5py.Group, name: str, array: np.ndarray) -> None:
    """Store ``array``; numpy str arrays become UTF-8 variable-length strings."""
    if array.dtype.kind == "U":
        group.create_dataset(name, data=array.astype(object), dtype=h5py.string_dtype())
    else:
        group.create_dataset(name, data=array)


def _write_columns(group: h5py.Group, columns: Mapping[str, np.ndarray]) -> None:
    table = group.create_group("columns", track_order=True)
    for name, column in columns.items():
        _write_array(table, name, column)


def _write_intervals(group: h5py.Group, spans: Intervals) -> None:
    group.create_dataset("start", data=spans.start)
    group.create_dataset("end", data=spans.end)
    _write_columns(group, spans.columns)


def _write_named_intervals(group: h5py.Group, named: Mapping[str, Intervals]) -> None:
    for name, spans in named.items():
        _write_intervals(group.create_group(name), spans)


# ---------------------------------------------------------------------------------- schema checks


class _Expect(NamedTuple):
    """What a dataset must be: its number of dimensions (None: any) and a test of its dtype."""

    ndim: int | None
    accepts: Callable[[np.dtype], bool]
    wanted: str


_TIMES_1D = _Expect(1, lambda dtype: dtype == np.float64, "1-D float64 seconds")
_INDEX_1D = _Expect(1, lambda dtype: dtype.kind in "iu", "1-D integers")
_STRINGS_1D = _Expect(1, lambda dtype: h5py.check_string_dtype(dtype) is not None, "1-D strings")
_VALUES_2D = _Expect(2, lambda dtype: dtype.kind in _NUMERIC, "2-D (samples, dims) numbers")
_FRAMES_2D = _Expect(2, lambda dtype: dtype == np.float32, "2-D (frames, units) float32")
_COLUMN = _Expect(None, lambda dtype: True, "an array with one row per item")


class _Pair(NamedTuple):
    """Two datasets of a group with one row each per item, and how to say they disagree."""

    names: tuple[str, str]
    expects: tuple[_Expect, _Expect]
    mismatch: str  # formatted with the two row counts


_SPIKES = _Pair(
    ("times", "unit_index"),
    (_TIMES_1D, _INDEX_1D),
    "{} times but {} unit indices; give one unit index per spike",
)
_STREAM = _Pair(
    ("timestamps", "values"),
    (_TIMES_1D, _VALUES_2D),
    "{} timestamps but {} rows of values; give exactly one row of values per timestamp",
)
_FRAMES = _Pair(
    ("timestamps", "values"),
    (_TIMES_1D, _FRAMES_2D),
    "{} frame times but {} frames of values; give exactly one row of values per frame time",
)
_SPANS = _Pair(
    ("start", "end"), (_TIMES_1D, _TIMES_1D), "{} starts but {} ends; give one end per start"
)


def _schema_problems(file: h5py.File) -> list[str]:
    """Every way ``file`` departs from the schema; stops early if it is no readable recording."""
    problems = _root_problems(file.attrs)
    if problems:
        return problems
    problems = [
        f"{name}: missing group; the file is incomplete or not from neuropoyo: {_REWRITE}"
        for name in _GROUPS
        if not isinstance(file.get(name), h5py.Group)
    ]
    if problems:
        return problems
    _pair_problems(file["spikes"], "spikes", _SPIKES, problems)
    n_units = _dataset_rows(file["units"], "ids", "units/ids", _STRINGS_1D, problems)
    _columns_problems(file["units"], "units", n_units, problems)
    for name, stream in file["behavior"].items():
        _pair_problems(stream, f"behavior/{name}", _STREAM, problems)
    _intervals_problems(file["domain"], "domain", problems)
    _intervals_problems(file["trials"], "trials", problems)
    for name, spans in file["splits"].items():
        if name not in SPLIT_NAMES:
            problems.append(f"splits/{name}: unknown split; splits are named {list(SPLIT_NAMES)}")
        _intervals_problems(spans, f"splits/{name}", problems)
    for name, spans in file["intervals"].items():
        _intervals_problems(spans, f"intervals/{name}", problems)
    if "traces" in file:
        _traces_problems(file["traces"], problems)
    return problems


def _traces_problems(group, problems: list[str]) -> None:
    """The optional traces group: frame times and values pair up, one unit index per column."""
    _pair_problems(group, "traces", _FRAMES, problems)
    if not isinstance(group, h5py.Group):
        return
    if not isinstance(group.attrs.get("kind"), str):
        problems.append(f"traces: missing kind attribute (one of {list(TRACE_KINDS)}); {_REWRITE}")
    columns = _dataset_rows(group, "unit_index", "traces/unit_index", _INDEX_1D, problems)
    values = group.get("values")
    shape = values.shape if isinstance(values, h5py.Dataset) else ()
    if columns is not None and len(shape) == 2 and shape[1] != columns:
        problems.append(
            f"traces: values have {shape[1]} columns but unit_index names {columns} units; "
            "give one unit index per column of values"
        )


def _root_problems(attrs: h5py.AttributeManager) -> list[str]:
    """The format, schema version and metadata attributes of the file root."""
    found = attrs.get("format")
    if found != FORMAT:
        return [
            f"format: attribute is {found!r}, not {FORMAT!r}, so this HDF5 file is not a neuropoyo "
            "recording; write recordings with neuropoyo.data.store.write_recording"
        ]
    version = attrs.get("schema_version")
    if not isinstance(version, (int, np.integer)) or version < 1:
        return [f"schema_version: {version!r} is not a schema version; {_REWRITE}"]
    if version > SCHEMA_VERSION:
        return [
            f"schema_version: the file has schema version {int(version)}, newer than the "
            f"{SCHEMA_VERSION} that neuropoyo {__version__} reads; upgrade neuropoyo"
        ]
    try:
        RecordingInfo.from_dict(json.loads(attrs["info"]))
    except (KeyError, TypeError, ValueError) as error:
        return [f"info: unreadable recording metadata ({error}); {_REWRITE}"]
    return []


def _dataset_rows(
    group: h5py.Group, name: str, field: str, expect: _Expect, problems: list[str]
) -> int | None:
    """Rows of dataset ``group[name]``, or None after appending why it is missing or malformed."""
    dataset = group.get(name)
    if not isinstance(dataset, h5py.Dataset):
        problems.append(f"{field}: missing dataset; {_REWRITE}")
        return None
    ndim_ok = dataset.ndim == expect.ndim if expect.ndim else dataset.ndim >= 1
    if not (ndim_ok and expect.accepts(dataset.dtype)):
        problems.append(
            f"{field}: found shape {dataset.shape} of {dataset.dtype}, expected {expect.wanted}; "
            f"{_REWRITE}"
        )
        return None
    return dataset.shape[0]


def _pair_problems(group, field: str, pair: _Pair, problems: list[str]) -> int | None:
    """Check a group of two datasets with one row each per item; returns the item count or None."""
    if not isinstance(group, h5py.Group):
        problems.append(f"{field}: expected a group of {' and '.join(pair.names)}; {_REWRITE}")
        return None
    rows = [
        _dataset_rows(group, name, f"{field}/{name}", expect, problems)
        for name, expect in zip(pair.names, pair.expects)
    ]
    if None not in rows and rows[0] != rows[1]:
        problems.append(f"{field}: " + pair.mismatch.format(*rows))
    return rows[0]


def _intervals_problems(group, field: str, problems: list[str]) -> None:
    rows = _pair_problems(group, field, _SPANS, problems)
    if isinstance(group, h5py.Group):
        _columns_problems(group, field, rows, problems)


def _columns_problems(group: h5py.Group, field: str, rows: int | None, problems: list[str]) -> None:
    """The optional ``columns`` group of a table of ``rows`` items (None: unknown count)."""
    columns = group.get("columns", {})
    if not isinstance(columns, (h5py.Group, dict)):
        problems.append(f"{field}/columns: expected a group of per-item arrays; {_REWRITE}")
        return
    for name in columns:
        found = _dataset_rows(columns, name, f"{field}/columns/{name}", _COLUMN, problems)
        if None not in (found, rows) and found != rows:
            problems.append(
                f"{field}/columns/{name}: {found} rows for {rows} items; give one value per item"
            )


# ---------------------------------------------------------------------------------------- reading


def _read_array(dataset: h5py.Dataset) -> np.ndarray:
    """The whole dataset; variable-length strings come back as a numpy str array."""
    string = h5py.check_string_dtype(dataset.dtype)
    if string is not None and string.length is None:
        return np.asarray(dataset.asstr()[()], dtype=str)
    return dataset[()]


def _read_columns(group: h5py.Group) -> dict[str, np.ndarray]:
    return {name: _read_array(column) for name, column in group.get("columns", {}).items()}


def _read_intervals(group: h5py.Group) -> Intervals:
    return Intervals(group["start"][()], group["end"][()], _read_columns(group))


def _read_header(file: h5py.File) -> Recording:
    """Everything but spikes, frames and behavior (read per window): a recording without them
    (its traces have the file's columns and kind but no frame)."""
    traces = Traces.empty()
    if "traces" in file:
        unit_index = file["traces/unit_index"][()]
        values = np.zeros((0, unit_index.size), dtype=np.float32)
        traces = Traces(np.zeros(0), values, unit_index, str(file["traces"].attrs["kind"]))
    return Recording(
        info=RecordingInfo.from_dict(json.loads(file.attrs["info"])),
        spikes=Spikes.empty(),
        units=Units(_read_array(file["units/ids"]), _read_columns(file["units"])),
        behavior={},
        domain=_read_intervals(file["domain"]),
        trials=_read_intervals(file["trials"]),
        splits={name: _read_intervals(group) for name, group in file["splits"].items()},
        intervals={name: _read_intervals(group) for name, group in file["intervals"].items()},
        traces=traces,
    )


def _stream_keys(name: str) -> tuple[str, str]:
    return f"behavior/{name}/timestamps", f"behavior/{name}/values"


class _Source(NamedTuple):
    """A spikes, traces or behavior dataset: shape, dtype and byte offset in the file (None: use h5py)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int | None


def _source(dataset: h5py.Dataset, file_size: int) -> _Source:
    """Where ``dataset``'s bytes lie, with an offset only if they can be memory-mapped as they are
    (contiguous, native numeric dtype, aligned, inside the file)."""
    offset = 0 if dataset.size == 0 else dataset.id.get_offset()  # empty: nothing to map
    mappable = (
        dataset.chunks is None  # contiguous, hence unfiltered
        and dataset.dtype.kind in _NUMERIC
        and dataset.dtype.isnative
        and offset is not None
        and offset % dataset.dtype.alignment == 0
        and offset + dataset.nbytes <= file_size
    )
    return _Source(dataset.shape, dataset.dtype, offset if mappable else None)


def _sources(file: h5py.File, file_size: int) -> dict[str, _Source]:
    """The spikes, traces and behavior datasets, by key."""
    keys = [_TIMES, _UNIT_INDEX, *(key for name in file["behavior"] for key in _stream_keys(name))]
    if "traces" in file:
        keys += [_FRAME_TIMES, _FRAME_VALUES]
    return {key: _source(file[key], file_size) for key in keys}


def _view(mapped: mmap.mmap, source: _Source) -> np.ndarray:
    """A read-only array over the mapped bytes of ``source`` (reads nothing until indexed)."""
    count = int(np.prod(source.shape))
    return np.frombuffer(mapped, source.dtype, count, source.offset).reshape(source.shape)


def _fingerprint(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _search(times, value: float) -> int:
    """How many of sorted ``times`` (array or h5py dataset) lie below ``value``; O(log n) reads."""
    if isinstance(times, np.ndarray):
        return int(np.searchsorted(times, value))
    lo, hi = 0, len(times)
    while lo < hi:
        mid = (lo + hi) // 2
        if times[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _rows(times, start: float, end: float) -> slice:
    """Rows of sorted ``times`` inside ``[start, end)``, as Recording.slice picks them."""
    lo = _search(times, start)
    return slice(lo, max(lo, _search(times, end)))


def _require_hdf5(path: Path) -> None:
    """Raise a clear error if ``path`` is missing or not an HDF5 file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such recording file; check the path (files are <recording_id>{SUFFIX})"
        )
    if not h5py.is_hdf5(path):
        raise InvalidRecordingError(
            str(path), ["file: not an HDF5 file; write recordings with store.write_recording"]
        )


def _read_layout(path: Path, file_size: int) -> tuple[Recording, dict, dict[str, _Source]]:
    """The schema-checked header, behavior units by stream name and the spikes, traces and
    behavior sources."""
    try:
        with h5py.File(path, "r") as file:
            problems = _schema_problems(file)
            if problems:
                raise InvalidRecordingError(str(path), problems)
            units = {
                name: (str(g.attrs.get("unit", "")), tuple(json.loads(g.attrs.get("classes", "[]"))))
                for name, g in file["behavior"].items()
            }
            return _read_header(file), units, _sources(file, file_size)
    except InvalidRecordingError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:  # what damaged metadata raises
        raise InvalidRecordingError(
            str(path), [f"file: HDF5 read failed ({error}); the file is damaged: {_REWRITE}"]
        ) from error


class RecordingFile:
    """A recording file read lazily: metadata, units and intervals at open; spikes, trace frames
    and behavior per window, touching only the window's bytes.

    ``check_metadata`` validates what is read at open (unit ids, intervals); spikes, traces and
    behavior are checked by :meth:`load`, :func:`read_recording` and :func:`validate_file`, not per window.
    Picklable: a copy (e.g. in a DataLoader worker) opens the file again on its first read, and so
    does a forked process that inherited open handles (h5py handles must not cross a fork). A file
    replaced on disk after opening is detected at that first read; open it again then.
    """

    def __init__(self, path: str | Path, *, check_metadata: bool = True):
        self.path = Path(path)
        _require_hdf5(self.path)
        stat = os.stat(self.path)
        self._header, self._stream_units, self._sources = _read_layout(self.path, stat.st_size)
        if check_metadata:
            validate_recording(self._header, source=str(self.path))
        self._fingerprint = _fingerprint(stat)
        self._arrays: dict | None = None
        self._hdf5: h5py.File | None = None
        self._pid: int | None = None  # the process that opened _arrays and _hdf5

    def __enter__(self) -> "RecordingFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None, "_hdf5": None, "_pid": None}

    def __repr__(self) -> str:
        return (
            f"RecordingFile({str(self.path)!r}, spikes={self.n_spikes}, "
            f"behavior={list(self.behavior_names)})"
        )

    @property
    def recording_id(self) -> str:
        return self._header.recording_id

    @property
    def info(self) -> RecordingInfo:
        return self._header.info

    @property
    def units(self) -> Units:
        return self._header.units

    @property
    def domain(self) -> Intervals:
        return self._header.domain

    @property
    def trials(self) -> Intervals:
        return self._header.trials

    @property
    def splits(self) -> dict[str, Intervals]:
        return self._header.splits

    @property
    def intervals(self) -> dict[str, Intervals]:
        return self._header.intervals

    @property
    def n_spikes(self) -> int:
        return self._sources[_TIMES].shape[0]

    @property
    def has_traces(self) -> bool:
        """Whether the file holds trace columns (calcium imaging, binned counts); reads no frame."""
        return self._header.has_traces

    @property
    def behavior_names(self) -> tuple[str, ...]:
        return tuple(self._stream_units)

    @property
    def behavior_dims(self) -> dict[str, int]:
        """Behavior stream name -> the width of a readout decoding it: its number of columns, or of
        classes for a label stream (from the file's layout; reads no data)."""
        shapes = {name: self._sources[_stream_keys(name)[1]].shape for name in self._stream_units}
        dims = {name: int(shape[1]) if len(shape) > 1 else 1 for name, shape in shapes.items()}
        return dims | {name: len(classes) for name, classes in self.behavior_classes.items()}

    @property
    def behavior_classes(self) -> dict[str, tuple[str, ...]]:
        """Label stream name -> its class names (streams of a classification task only)."""
        return {name: classes for name, (_, classes) in self._stream_units.items() if classes}

    @property
    def start(self) -> float:
        return self._header.start

    @property
    def end(self) -> float:
        return self._header.end

    @property
    def duration(self) -> float:
        """Seconds of recorded data (the domain's total length, gaps excluded)."""
        return self._header.domain.total_duration()

    def slice(self, start: float, end: float, *, streams: Sequence[str] | None = None) -> Recording:
        """The window ``[start, end)``, times relative to ``start``: equal to
        ``read_recording(path).slice(start, end)`` but reading only the window's bytes, and only
        the behavior ``streams`` named (default all; each must be in the file)."""
        arrays = self._attached()
        spikes = self._spikes(_rows(arrays[_TIMES], start, end), start)
        behavior = {
            name: self._stream(name, _rows(arrays[_stream_keys(name)[0]], start, end), start)
            for name in (self._stream_units if streams is None else streams)
        }
        frames = _rows(arrays[_FRAME_TIMES], start, end) if _FRAME_TIMES in arrays else slice(0)
        return dataclasses.replace(
            self._header.slice(start, end),
            spikes=spikes,
            traces=self._traces(frames, start),
            behavior=behavior,
        )

    def spike_count(self, start: float, end: float) -> int:
        """Spikes in ``[start, end)`` (absolute seconds), found without reading them."""
        rows = _rows(self._attached()[_TIMES], start, end)
        return rows.stop - rows.start

    def value_count(self, start: float, end: float) -> int:
        """Trace values (frames x trace units) in ``[start, end)``, found without reading them."""
        arrays = self._attached()
        if _FRAME_TIMES not in arrays:
            return 0
        rows = _rows(arrays[_FRAME_TIMES], start, end)
        return (rows.stop - rows.start) * self._header.traces.n_units

    def load(self) -> Recording:
        """The whole recording, validated (raises InvalidRecordingError naming the file)."""
        every = slice(None)
        recording = dataclasses.replace(
            self._header,
            spikes=self._spikes(every, 0.0),
            traces=self._traces(every, 0.0),
            behavior={name: self._stream(name, every, 0.0) for name in self._stream_units},
        )
        validate_recording(recording, source=str(self.path))
        return recording

    def stream(self, name: str) -> TimeSeries:
        """The whole behavior stream ``name`` (absolute times), without reading any spike."""
        if name not in self._stream_units:
            raise MissingKeyError(
                f"{self.path}: no behavior stream {name!r}; found {sorted(self._stream_units)}"
            )
        return self._stream(name, slice(None), 0.0)

    def traces(self) -> Traces:
        """The whole traces (absolute times), without reading any spike."""
        return self._traces(slice(None), 0.0)

    def close(self) -> None:
        """Release the file; a later read opens it again. In a process that inherited the handles
        (by fork) they are only dropped: the parent still uses the file."""
        if self._hdf5 is not None and self._pid == os.getpid():
            self._hdf5.close()
        self._arrays = self._hdf5 = self._pid = None

    def _spikes(self, rows: slice, origin: float) -> Spikes:
        """Spikes in ``rows``, times relative to ``origin``; copies, never views of the file."""
        arrays = self._attached()
        return Spikes(arrays[_TIMES][rows] - origin, np.array(arrays[_UNIT_INDEX][rows]))

    def _traces(self, rows: slice, origin: float) -> Traces:
        """Frames ``rows``, times relative to ``origin`` (the header's traces when the file has
        none)."""
        arrays, header = self._attached(), self._header.traces
        if _FRAME_TIMES not in arrays:
            return header
        times, values = arrays[_FRAME_TIMES][rows] - origin, np.array(arrays[_FRAME_VALUES][rows])
        return Traces(times, values, header.unit_index, header.kind)

    def _stream(self, name: str, rows: slice, origin: float) -> TimeSeries:
        """Samples ``rows`` of behavior stream ``name``, timestamps relative to ``origin``."""
        timestamps, values = (self._attached()[key] for key in _stream_keys(name))
        unit, classes = self._stream_units[name]
        return TimeSeries(timestamps[rows] - origin, np.array(values[rows]), unit, classes)

    def _attached(self) -> dict:
        """key -> memory-mapped array (or h5py dataset) of spikes, traces and behavior; opens once
        per process."""
        if self._pid != os.getpid():
            self.close()
            self._arrays = self._attach()
            self._pid = os.getpid()
        return self._arrays

    def _attach(self) -> dict:
        """Map the file (and open it with h5py if some dataset can't be mapped)."""
        with open(self.path, "rb") as handle:
            if _fingerprint(os.fstat(handle.fileno())) != self._fingerprint:
                raise InvalidRecordingError(
                    str(self.path), ["file: replaced or changed since it was opened; open it again"]
                )
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        if any(source.offset is None for source in self._sources.values()):
            self._hdf5 = h5py.File(self.path, "r")
        return {
            key: self._hdf5[key] if source.offset is None else _view(mapped, source)
            for key, source in self._sources.items()
        }


def open_recording(path: str | Path) -> RecordingFile:
    """Open a recording file for windowed reads (see :class:`RecordingFile`)."""
    return RecordingFile(path)


def read_recording(path: str | Path) -> Recording:
    """The whole recording in ``path``, validated (raises InvalidRecordingError naming the file)."""
    with RecordingFile(path, check_metadata=False) as file:
        return file.load()


def validate_file(path: str | Path) -> None:
    """Raise InvalidRecordingError listing the schema problems of ``path``, or else every problem
    of its content; FileNotFoundError if there is no file."""
    read_recording(path)
