"""Recordings to and from pynapple objects (optional: ``pip install 'neuropoyo[pynapple]'``).

:func:`to_pynapple` gives a :class:`PynappleSession`: the units as a ``TsGroup`` (key = row of the
unit table, unit ids in its ``unit_id`` column, unit columns as its other columns), each behavior
stream as a ``TsdFrame`` (its physical unit in the ``unit`` column metadata), trials, named
intervals, splits and the domain as ``IntervalSet`` (columns as metadata), every object on the
domain as time support. :func:`from_pynapple` reads such objects back through
:func:`~neuropoyo.data.importers.arrays.recording_from_arrays` (same checks, repairs and errors),
so ``from_pynapple(**session.arguments())`` equals the recording exactly, with two limits:

- pynapple's spans are closed, neuropoyo's half-open ``[start, end)``: a domain span whose end is
  a spike or sample time is moved up to the next float so that the time stays inside, and
  :func:`to_pynapple` warns about interval sets pynapple cannot hold: spans that are empty,
  overlap or touch the next (pynapple drops, joins or shortens them by 1 microsecond).
- a TsGroup has no order across units: spikes at the same time come back in unit-table order.

Times are float64 seconds both sides; pynapple before 0.11.3 rounds them to the nanosecond.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Mapping, NamedTuple

import numpy as np

from neuropoyo.data.importers.arrays import recording_from_arrays
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, RecordingInfo
from neuropoyo.errors import DataError

if TYPE_CHECKING:
    import pynapple as nap

UNIT_ID = "unit_id"  # the TsGroup column holding unit ids
_COMPUTED = ("rate",)  # TsGroup columns pynapple computes itself
_INSTALL_HINT = "pynapple objects need pynapple: pip install 'neuropoyo[pynapple]'"


def _pynapple():
    try:
        import pynapple
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return pynapple


class PynappleSession(NamedTuple):
    """A recording as pynapple objects; ``arguments()`` gives :func:`from_pynapple`'s arguments."""

    units: "nap.TsGroup"
    behavior: dict[str, "nap.TsdFrame"]
    trials: "nap.IntervalSet"
    intervals: dict[str, "nap.IntervalSet"]
    splits: dict[str, "nap.IntervalSet"]
    domain: "nap.IntervalSet"
    info: RecordingInfo

    def arguments(self) -> dict:
        """The keyword arguments of :func:`from_pynapple` that give the recording back."""
        fields = self._asdict()
        info = fields.pop("info")
        return {**fields, **info.to_dict()}


# ------------------------------------------------------------------------------ to pynapple


def _interval_set(nap, spans: Intervals, what: str) -> "nap.IntervalSet":
    """``spans`` as an IntervalSet with its one-value-per-span columns as metadata."""
    changed = int(np.sum(spans.end <= spans.start) + np.sum(spans.start[1:] <= spans.end[:-1]))
    if changed:
        warnings.warn(
            f"to_pynapple: {what}: {changed} span(s) empty, overlapping or touching the next; "
            "pynapple IntervalSets hold closed spans with gaps between them and drop, join or "
            "shorten these by 1 microsecond, so from_pynapple will not give them back exactly",
            stacklevel=3,
        )
    columns = {}
    for name, column in spans.columns.items():
        if column.ndim == 1:
            columns[name] = column
        else:
            warnings.warn(
                f"to_pynapple: {what}: column {name!r} holds {column.shape[1:]} values per span; "
                "pynapple metadata holds one, so it is left out",
                stacklevel=3,
            )
    return nap.IntervalSet(spans.start, spans.end, metadata=columns if len(spans) else None)


def to_pynapple(recording: Recording) -> PynappleSession:
    """``recording`` as pynapple objects (layout in the module docstring)."""
    nap = _pynapple()
    domain = _interval_set(nap, recording.domain, "domain")
    units = recording.units
    clash = sorted({UNIT_ID, *_COMPUTED} & set(units.columns))
    if clash:
        raise DataError(
            f"to_pynapple: {recording.recording_id}: unit column(s) {clash} clash with the TsGroup "
            f"columns {UNIT_ID!r} (unit ids) and {list(_COMPUTED)} (computed by pynapple); rename them"
        )
    rows = recording.spikes.unit_index
    by_unit = recording.spikes.times[np.argsort(rows, kind="stable")]  # each unit's stay sorted
    counts = np.bincount(rows, minlength=len(units))
    per_unit = [by_unit[end - count : end] for count, end in zip(counts, np.cumsum(counts))]
    group = nap.TsGroup(
        {row: nap.Ts(times, time_support=domain) for row, times in enumerate(per_unit)},
        time_support=domain,
        metadata={UNIT_ID: units.ids, **units.columns},
    )
    behavior = {}
    for name, stream in recording.behavior.items():
        frame = nap.TsdFrame(stream.timestamps, stream.values, time_support=domain)
        if stream.unit:
            frame.set_info(unit=[stream.unit] * stream.dim)
        behavior[name] = frame
    return PynappleSession(
        units=group,
        behavior=behavior,
        trials=_interval_set(nap, recording.trials, "trials"),
        intervals={n: _interval_set(nap, s, f"intervals[{n!r}]") for n, s in recording.intervals.items()},
        splits={n: _interval_set(nap, s, f"splits[{n!r}]") for n, s in recording.splits.items()},
        domain=domain,
        info=recording.info,
    )


# ---------------------------------------------------------------------------- from pynapple


def _column(values) -> np.ndarray:
    """A metadata column (pandas Series) as a numpy array, text as str."""
    array = np.asarray(values)
    return array.astype(str) if array.dtype == object else array


def _span_columns(spans: "nap.IntervalSet") -> dict[str, np.ndarray]:
    """start, end and the metadata columns of an IntervalSet."""
    columns = {name: _column(spans.get_info(name)) for name in spans.metadata_columns}
    return {"start": np.asarray(spans.start), "end": np.asarray(spans.end), **columns}


def _stream_unit(name: str, frame) -> str:
    """The one physical unit of a TsdFrame's columns ("" when none is given)."""
    if "unit" in getattr(frame, "metadata_columns", ()):  # a Tsd has no metadata
        found = sorted(set(_column(frame.get_info("unit")).tolist()))
        if len(found) > 1:
            raise DataError(
                f"from_pynapple: behavior[{name!r}] columns have units {found}; a stream has one "
                "unit: split it into one stream per unit"
            )
        return found[0] if found else ""
    return ""


def _half_open(spans: Intervals, times: list[np.ndarray]) -> Intervals:
    """Closed ``spans`` as half-open ones: an end that is one of ``times`` moves to the next float."""
    on_end = np.isin(spans.end, np.concatenate(times))
    return Intervals(spans.start, np.where(on_end, np.nextafter(spans.end, np.inf), spans.end))


def from_pynapple(
    units: "nap.TsGroup",
    *,
    recording_id: str,
    behavior: Mapping[str, "nap.Tsd | nap.TsdFrame"] = {},
    trials: "nap.IntervalSet | None" = None,
    intervals: Mapping[str, "nap.IntervalSet"] = {},
    splits: Mapping[str, "nap.IntervalSet"] | None = None,
    domain: "nap.IntervalSet | None" = None,
    strict: bool = False,
    **metadata,
) -> Recording:
    """A Recording from pynapple objects, checked by :func:`recording_from_arrays`.

    units: one Ts per unit; unit ids from its ``unit_id`` column, else its keys; its other
    columns (but the computed ``rate``) become unit columns. behavior: stream name -> Tsd or
    TsdFrame (physical unit from a ``unit`` column metadata). trials, intervals, splits: spans
    with their metadata as columns. domain: the recorded spans (default: the union of the time
    supports of units and behavior), closed spans read as half-open (module docstring).
    metadata: brainset, subject, task, species, brain_areas, extra (as in recording_from_arrays).
    """
    keys = list(units.keys())
    columns = [c for c in units.metadata_columns if c not in _COMPUTED]
    unit_ids = _column(units.get_info(UNIT_ID)) if UNIT_ID in columns else np.asarray(keys)
    per_unit = [np.asarray(units[key].t, dtype=np.float64) for key in keys]
    times = np.concatenate([np.zeros(0), *per_unit])
    spike_ids = np.repeat(unit_ids, [t.size for t in per_unit])
    order = np.argsort(times, kind="stable")  # merging sorted per-unit times is no repair
    streams = {name: (np.asarray(s.t), np.asarray(s.d)) for name, s in behavior.items()}
    if domain is None:
        supports = [units.time_support, *(s.time_support for s in behavior.values())]
        spans = Intervals.empty()
        for support in supports:
            spans = spans.union(Intervals(np.asarray(support.start), np.asarray(support.end)))
    else:
        spans = Intervals(np.asarray(domain.start), np.asarray(domain.end))
    spans = _half_open(spans, [times, *(t for t, _ in streams.values())])
    return recording_from_arrays(
        recording_id=recording_id,
        spike_times=times[order],
        spike_unit_ids=spike_ids[order],
        unit_ids=unit_ids,
        unit_columns={c: _column(units.get_info(c)) for c in columns if c != UNIT_ID},
        behavior=streams,
        behavior_units={name: _stream_unit(name, s) for name, s in behavior.items()},
        trials=None if trials is None else _span_columns(trials),
        intervals={name: _span_columns(s) for name, s in intervals.items()},
        splits=None if splits is None else {name: _span_columns(s) for name, s in splits.items()},
        domain=spans,
        strict=strict,
        **metadata,
    )
