"""One recording session in memory: spikes, units, behavior streams, intervals and metadata.

Times are float64 seconds. Everything downstream (tokenizer, samplers, training, evaluation) reads
windows of one recording through :meth:`Recording.slice`, which costs O(log n) in the number of spikes
and behavior samples.

The ``domain`` holds the spans where data were actually recorded. Outside it (between trials, in cut
stationary periods, around bad segments) there is no data: neither silence nor behavior.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from neuropoyo.data.intervals import Intervals, arrays_equal

SPLIT_NAMES = ("train", "valid", "test")
TRACE_KINDS = ("dff", "fluorescence", "counts")  # what the values of a Traces are


def check_file_name(field: str, name: object) -> None:
    """ValueError unless ``name`` can name a file or folder on its own: a non-empty str without
    '/', '\\' or NUL, not starting with '.' (never a path, a hidden file or a traversal)."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise ValueError(
            f"{field} {name!r} must be a non-empty name without '/', '\\' or NUL, not starting with '.'"
        )


def _window(times: np.ndarray, start: float, end: float) -> slice:
    """Index range of sorted ``times`` inside ``[start, end)`` by binary search."""
    lo = int(np.searchsorted(times, start, side="left"))
    hi = int(np.searchsorted(times, end, side="left"))
    return slice(lo, max(lo, hi))


@dataclass(frozen=True, eq=False)
class Spikes:
    """S spike events sorted by time.

    times: (S,) float64 seconds. unit_index: (S,) int32 row in the recording's unit table.
    """

    times: np.ndarray
    unit_index: np.ndarray

    def __post_init__(self):
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        unit_index = np.asarray(self.unit_index).reshape(-1)
        if unit_index.size and not np.issubdtype(unit_index.dtype, np.integer):
            raise ValueError(f"spikes: unit_index must be integers, got {unit_index.dtype}")
        if times.size != unit_index.size:
            raise ValueError(
                f"spikes: {times.size} times but {unit_index.size} unit indices; give one unit per spike"
            )
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "unit_index", unit_index.astype(np.int32, copy=False))

    @classmethod
    def empty(cls) -> "Spikes":
        return cls(np.zeros(0), np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        return int(self.times.size)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Spikes):
            return NotImplemented
        return np.array_equal(self.times, other.times) and np.array_equal(
            self.unit_index, other.unit_index
        )

    def slice(self, start: float, end: float) -> "Spikes":
        """Spikes in ``[start, end)`` with times relative to ``start``."""
        index = _window(self.times, start, end)
        return Spikes(self.times[index] - start, self.unit_index[index])

    def select(self, mask: np.ndarray) -> "Spikes":
        return Spikes(self.times[mask], self.unit_index[mask])


@dataclass(frozen=True, eq=False)
class TimeSeries:
    """A behavior stream sampled at its own timestamps (any rate, gaps allowed).

    timestamps: (N,) float64 seconds, sorted. values: (N, D) samples. unit: physical unit, e.g. "m/s".
    classes: the class names of a label stream (a classification task, e.g. grating direction):
    values are then (N, 1) integer class indices into ``classes``; empty for a continuous stream.
    """

    timestamps: np.ndarray
    values: np.ndarray
    unit: str = ""
    classes: tuple[str, ...] = ()

    def __post_init__(self):
        timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values)
        if values.ndim == 1:
            values = values[:, None]
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    @property
    def is_labels(self) -> bool:
        """Whether this is a label stream (a classification task)."""
        return bool(self.classes)

    def __len__(self) -> int:
        return int(self.timestamps.size)

    def __eq__(self, other) -> bool:
        if not isinstance(other, TimeSeries):
            return NotImplemented
        return (
            self.unit == other.unit
            and self.classes == other.classes
            and self.values.dtype == other.values.dtype
            and np.array_equal(self.timestamps, other.timestamps)
            and arrays_equal(self.values, other.values)
        )

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def slice(self, start: float, end: float) -> "TimeSeries":
        """Samples in ``[start, end)`` with timestamps relative to ``start``."""
        index = _window(self.timestamps, start, end)
        return TimeSeries(self.timestamps[index] - start, self.values[index], self.unit, self.classes)

    def select(self, mask: np.ndarray) -> "TimeSeries":
        return TimeSeries(self.timestamps[mask], self.values[mask], self.unit, self.classes)


@dataclass(frozen=True, eq=False)
class Traces:
    """Values of some units sampled on a frame grid: calcium traces (dF/F) of ROIs, or counts
    already binned. Each (frame, column) becomes one value token (see :mod:`neuropoyo.tokens`).

    timestamps: (F,) float64 seconds, strictly increasing (a frame's time: its centre).
    values: (F, R) float32, finite. unit_index: (R,) int32 row in the recording's unit table of each
    column (ROIs are units: they are identified in a new session exactly as units are).
    kind: what the values are, one of :data:`TRACE_KINDS`: ``"dff"``, ``"fluorescence"`` or
    ``"counts"`` (binned spike counts; timestamps are the bin centres).
    """

    timestamps: np.ndarray
    values: np.ndarray
    unit_index: np.ndarray
    kind: str = "dff"

    def __post_init__(self):
        timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float32)
        unit_index = np.asarray(self.unit_index).reshape(-1)
        if unit_index.size and not np.issubdtype(unit_index.dtype, np.integer):
            raise ValueError(f"traces: unit_index must be integers, got {unit_index.dtype}")
        if values.ndim != 2 or values.shape != (timestamps.size, unit_index.size):
            raise ValueError(
                f"traces: values have shape {values.shape} but there are {timestamps.size} frame times "
                f"and {unit_index.size} units; give values as (frames, units) = "
                f"({timestamps.size}, {unit_index.size})"
            )
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "unit_index", unit_index.astype(np.int32, copy=False))

    @classmethod
    def empty(cls) -> "Traces":
        return cls(np.zeros(0), np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        """Number of frames."""
        return int(self.timestamps.size)

    @property
    def n_units(self) -> int:
        return int(self.unit_index.size)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Traces):
            return NotImplemented
        return (
            self.kind == other.kind
            and np.array_equal(self.timestamps, other.timestamps)
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.unit_index, other.unit_index)
        )

    def slice(self, start: float, end: float) -> "Traces":
        """Frames in ``[start, end)`` with times relative to ``start``."""
        index = _window(self.timestamps, start, end)
        return Traces(self.timestamps[index] - start, self.values[index], self.unit_index, self.kind)

    def select(self, mask: np.ndarray) -> "Traces":
        """The frames where ``mask`` (F,) is True."""
        return Traces(self.timestamps[mask], self.values[mask], self.unit_index, self.kind)


@dataclass(frozen=True, eq=False)
class Units:
    """The unit table: U string ids plus optional per-unit columns (area, electrode, ...).

    ids: (U,) str. columns: name -> (U,) array.
    """

    ids: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        ids = np.asarray(self.ids, dtype=str).reshape(-1)
        columns = {}
        for name, column in self.columns.items():
            column = np.asarray(column)
            if column.shape[:1] != ids.shape:
                raise ValueError(
                    f"units: column {name!r} has {column.shape[0] if column.ndim else 0} rows, "
                    f"expected one per unit ({ids.size})"
                )
            columns[name] = column
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "columns", columns)

    def __len__(self) -> int:
        return int(self.ids.size)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Units):
            return NotImplemented
        return (
            np.array_equal(self.ids, other.ids)
            and self.columns.keys() == other.columns.keys()
            and all(arrays_equal(v, other.columns[k]) for k, v in self.columns.items())
        )


@dataclass(frozen=True)
class RecordingInfo:
    """Who, what and where of a recording.

    brainset names the lab or dataset source: recordings of one brainset share a behavior scale.
    """

    recording_id: str
    brainset: str = ""
    subject: str = ""
    task: str = ""
    species: str = ""
    brain_areas: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_file_name("recording_id", self.recording_id)
        object.__setattr__(self, "brain_areas", tuple(self.brain_areas))
        object.__setattr__(self, "extra", dict(self.extra))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["brain_areas"] = list(self.brain_areas)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "RecordingInfo":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"recording info: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True, eq=False)
class Recording:
    """One session.

    info: metadata. spikes: sorted events. units: the unit table spikes and traces index into.
    traces: values of some units on a frame grid (calcium imaging, binned counts); empty for a
    spike recording. A recording may hold spikes, traces or both (of different units).
    behavior: stream name -> TimeSeries (e.g. ``hand_vel`` (N, 2)).
    domain: spans with recorded data. trials: trial spans with their columns (empty when the
    recording has no trials). splits: ``train`` / ``valid`` / ``test`` spans (empty until assigned,
    see :mod:`neuropoyo.data.splits`). intervals: named sub-intervals (``reach``, ``hold``, ...) used to
    weight the loss or select evaluation segments.
    """

    info: RecordingInfo
    spikes: Spikes
    units: Units
    behavior: Mapping[str, TimeSeries]
    domain: Intervals
    trials: Intervals = field(default_factory=Intervals.empty)
    splits: Mapping[str, Intervals] = field(default_factory=dict)
    intervals: Mapping[str, Intervals] = field(default_factory=dict)
    traces: Traces = field(default_factory=Traces.empty)

    def __post_init__(self):
        unknown = set(self.splits) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"splits: unknown names {sorted(unknown)}; use {list(SPLIT_NAMES)}")
        for name in self.behavior:  # names files of reports (<recording_id>/<stream>.csv)
            check_file_name("behavior stream name", name)
        object.__setattr__(self, "behavior", dict(self.behavior))
        object.__setattr__(self, "splits", dict(self.splits))
        object.__setattr__(self, "intervals", dict(self.intervals))

    @classmethod
    def from_arrays(cls, **arguments) -> "Recording":
        """A validated recording from arrays in memory, all arguments keyword-only.

        Required: recording_id, and spikes (spike_times (S,) seconds, spike_unit_ids (S,) str or
        int), traces ((F,) frame times, (F, R) values) or both. Optional: trace_unit_ids (R,);
        trace_kind ("dff", "fluorescence", "counts"); unit_ids (U,) in order, silent units
        included; unit_columns; behavior
        {name: (timestamps (N,), values (N,) or (N, D))}; behavior_units; trials; intervals;
        domain (default: first to last time); splits (default: none, assigned by
        ``write_dataset``); brainset, subject, task, species, brain_areas, extra; strict.
        Arguments, repairs and errors: :func:`neuropoyo.data.importers.arrays.recording_from_arrays`.
        """
        from neuropoyo.data.importers.arrays import recording_from_arrays  # it imports this module

        return recording_from_arrays(**arguments)

    @property
    def recording_id(self) -> str:
        return self.info.recording_id

    @property
    def start(self) -> float:
        """Start of the first recorded span (0.0 for an empty domain)."""
        return float(self.domain.start[0]) if len(self.domain) else 0.0

    @property
    def end(self) -> float:
        """End of the last recorded span (0.0 for an empty domain)."""
        return float(self.domain.end[-1]) if len(self.domain) else 0.0

    @property
    def has_traces(self) -> bool:
        return self.traces.n_units > 0

    @property
    def has_trials(self) -> bool:
        return len(self.trials) > 0

    def __eq__(self, other) -> bool:
        if not isinstance(other, Recording):
            return NotImplemented
        return (
            self.info == other.info
            and self.spikes == other.spikes
            and self.units == other.units
            and self.behavior == other.behavior
            and self.domain == other.domain
            and self.trials == other.trials
            and self.splits == other.splits
            and self.intervals == other.intervals
            and self.traces == other.traces
        )

    def slice(self, start: float, end: float) -> "Recording":
        """The window ``[start, end)`` with all times relative to ``start``.

        Intervals (domain, trials, splits, sub-intervals) are cut to the window. The unit table and
        metadata are kept whole, so silent units stay known.
        """
        return dataclasses.replace(
            self,
            spikes=self.spikes.slice(start, end),
            traces=self.traces.slice(start, end),
            behavior={name: s.slice(start, end) for name, s in self.behavior.items()},
            domain=self.domain.slice(start, end),
            trials=self.trials.slice(start, end),
            splits={name: s.slice(start, end) for name, s in self.splits.items()},
            intervals={name: s.slice(start, end) for name, s in self.intervals.items()},
        )

    def restrict(self, spans: Intervals) -> "Recording":
        """Keep only data inside ``spans`` (sorted, disjoint); times stay absolute.

        The domain shrinks to ``domain ∩ spans`` so what was cut away reads as a gap, not silence.
        Evaluation restricts a recording to its test split so no window sees training data.
        """
        keep = spans.merged()
        if self._lies_within(keep):
            return self
        domain = self.domain.intersect(keep)
        return dataclasses.replace(
            self,
            spikes=self.spikes.select(domain.contains(self.spikes.times)),
            traces=self.traces.select(domain.contains(self.traces.timestamps)),
            behavior={n: s.select(domain.contains(s.timestamps)) for n, s in self.behavior.items()},
            domain=domain,
            trials=self.trials.intersect(keep),
            splits={name: s.intersect(keep) for name, s in self.splits.items()},
            intervals={name: s.intersect(keep) for name, s in self.intervals.items()},
        )

    def _lies_within(self, keep: Intervals) -> bool:
        """Whether :meth:`restrict` to ``keep`` would change nothing: one span of keep holds the
        whole (single-span) domain and every interval, all intervals have positive length (restrict
        drops empty pieces), and every spike and behavior sample lies in the domain. Training
        windows drawn inside their split take this path: checking is cheaper than restricting."""
        if len(keep) != 1 or len(self.domain) != 1:
            return False
        low, high = float(self.domain.start[0]), float(self.domain.end[0])
        every = [self.domain, self.trials, *self.splits.values(), *self.intervals.values()]
        if any(np.any(s.end <= s.start) for s in every):
            return False
        bounds = [(float(s.start.min()), float(s.end.max())) for s in every if len(s)]
        if keep.start[0] > min(lo for lo, _ in bounds) or keep.end[0] < max(hi for _, hi in bounds):
            return False
        samples = [self.spikes.times, self.traces.timestamps, *(s.timestamps for s in self.behavior.values())]
        return all(t.min() >= low and t.max() < high for t in samples if t.size)

    def with_splits(self, splits: Mapping[str, Intervals]) -> "Recording":
        return dataclasses.replace(self, splits=splits)

    def __repr__(self) -> str:
        return (
            f"Recording({self.recording_id!r}, units={len(self.units)}, spikes={len(self.spikes)}, "
            + (f"frames={len(self.traces)}, " if self.has_traces else "")
            + f"recorded={self.domain.total_duration():.1f}s, behavior={sorted(self.behavior)}, "
            f"trials={len(self.trials)})"
        )
