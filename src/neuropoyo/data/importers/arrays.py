"""Recordings from arrays already in memory (:func:`recording_from_arrays`, also reached as
:meth:`Recording.from_arrays <neuropoyo.data.recording.Recording.from_arrays>`).

The rules of the file importers (:mod:`.common`) apply; messages name the argument at fault,
prefixed ``from_arrays:``.

- **Neural data**: spikes (``spike_times`` with ``spike_unit_ids``), traces (``traces=(timestamps
  (F,), values (F, R))``: calcium dF/F or fluorescence of R ROIs on F frames, or counts already
  binned, ``trace_kind="counts"``, timestamps = the bin centres), or both (of different units).
  Each trace column is a unit: ROIs are identified in a new session exactly as units are.
- **Units**: ``unit_ids`` lists the unit table in order; an id there without a spike or trace is a
  unit that never fired in this recording (a real thing: it is kept and gets no spike). A spike or
  trace column whose unit id is not in ``unit_ids`` is an error. Without ``unit_ids`` the table is
  the distinct ids of ``spike_unit_ids``, sorted, followed by the ``trace_unit_ids`` (default
  ``roi_000``, ``roi_001``, ...). Ids are stored, and matched, as text (``7`` and ``"7"`` are one
  unit).
- **Repairs** (one :class:`RepairedDataWarning` counts them; ``strict=True`` makes each a
  :class:`DataError` instead): spike, frame or behavior times out of order are sorted, carrying
  their unit ids or values along; NaN/inf times, behavior rows and frames holding NaN, samples and
  frames repeating a timestamp (the first is kept) and trials of zero length are dropped.
- **Errors** (:class:`DataError`): arrays that do not pair up (spike times and unit ids, behavior
  timestamps and rows of values, frame times and rows of trace values, trace columns and
  ``trace_unit_ids``, unit columns and unit ids, interval starts and ends), duplicate unit ids, a
  unit with both spikes and a trace, overlapping trials, and every problem
  :func:`~neuropoyo.data.validate.validate_recording` finds.
- **Domain** (the spans holding data): by default one span from the first to the last spike,
  frame or behavior time, its end moved just past the last one so that it lies inside the
  half-open span; a frame covers half a frame step (the median) either side of its time. Outside a
  given domain is a gap, not silence: spikes, frames, samples and trials there are dropped with one
  :class:`DroppedDataWarning`.
- **Splits**: as given, or none. A recording without splits gets them when written with
  :func:`~neuropoyo.data.directory.write_dataset` (:func:`~neuropoyo.data.splits.assign_splits`:
  held-out trials, or contiguous blocks without trials); call ``assign_splits`` to set them in memory.
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np

from neuropoyo.data.importers.common import (
    Repairs,
    brain_areas as unit_areas,
    keep_recorded,
    sorted_trials,
    time_sorted,
)
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import (
    TRACE_KINDS,
    Recording,
    RecordingInfo,
    Spikes,
    TimeSeries,
    Traces,
    Units,
)
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError

SOURCE = "from_arrays"

# Intervals, a (start, end) pair of arrays (or numbers), or a mapping with "start", "end" and
# per-interval columns (e.g. ``dict(dataframe)``).
SpanSet = Union[Intervals, tuple, Mapping[str, object]]


def _vector(values, what: str, dtype=None) -> np.ndarray:
    """``values`` as a 1-D array; DataError naming ``what`` otherwise."""
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise DataError(f"{SOURCE}: {what} must be numbers ({error})") from error
    if array.ndim != 1:
        raise DataError(f"{SOURCE}: {what} must be 1-D (one value per item), got shape {array.shape}")
    return array


def _spans(value: SpanSet, what: str) -> Intervals:
    """``value`` (see :data:`SpanSet`) as Intervals; DataError naming ``what``."""
    if isinstance(value, Intervals):
        return value
    if isinstance(value, Mapping):
        if "start" not in value or "end" not in value:
            raise DataError(
                f"{SOURCE}: {what} has keys {sorted(value)}; give 'start' and 'end' arrays "
                "(other keys become per-interval columns)"
            )
        start, end = value["start"], value["end"]
        columns = {k: np.asarray(v) for k, v in value.items() if k not in ("start", "end")}
    else:
        try:
            start, end = value
        except (TypeError, ValueError) as error:
            raise DataError(
                f"{SOURCE}: {what} must be Intervals, a (start, end) pair or a mapping with 'start' "
                f"and 'end'; got {type(value).__name__}"
            ) from error
        columns = {}
    try:
        return Intervals(np.atleast_1d(start), np.atleast_1d(end), columns)
    except (TypeError, ValueError) as error:
        raise DataError(f"{SOURCE}: {what}: {error}") from error


def _listed(ids: np.ndarray) -> str:
    """Up to 5 of ``ids``, quoted."""
    return ", ".join(map(repr, ids[:5].tolist())) + (", ..." if ids.size > 5 else "")


def _repeats(names: np.ndarray, argument: str, fix: str) -> None:
    """DataError naming ``argument`` when ``names`` holds an id twice."""
    distinct, counts = np.unique(names, return_counts=True)
    if distinct.size != names.size:
        raise DataError(f"{SOURCE}: {argument} repeats {_listed(distinct[counts > 1])}; {fix}")


def _rows_in(names: np.ndarray, ids: np.ndarray, argument: str, items: str) -> np.ndarray:
    """(K,) int64 row in the unit table ``names`` of each of ``ids`` (matched as text, one per
    spike or column: ``items``); DataError naming ``argument`` for ids not in the table."""
    ids = ids.astype(str)
    rows = np.zeros(ids.size, dtype=np.int64)
    known = np.zeros(ids.size, dtype=bool)
    if names.size:
        order = np.argsort(names)
        rows = order[np.minimum(np.searchsorted(names, ids, sorter=order), names.size - 1)]
        known = names[rows] == ids
    if not known.all():
        unknown = np.unique(ids[~known])
        raise DataError(
            f"{SOURCE}: {argument} holds {unknown.size} unit id(s) not in unit_ids "
            f"({_listed(unknown)}; {int((~known).sum())} {items}(s)); add them to unit_ids or drop "
            f"their {items}s"
        )
    return rows


def _unit_table(
    spike_unit_ids: np.ndarray,
    trace_unit_ids: np.ndarray,
    unit_ids,
    unit_columns: Mapping[str, object],
) -> tuple[Units, np.ndarray, np.ndarray]:
    """The unit table, (S,) int64 row of each spike's unit and (R,) of each trace column's."""
    shared = np.intersect1d(spike_unit_ids.astype(str), trace_unit_ids)
    if shared.size:
        raise DataError(
            f"{SOURCE}: spike_unit_ids and trace_unit_ids share unit id(s) {_listed(shared)}; a "
            "unit's activity comes as spikes or as a trace: give the trace its own unit id"
        )
    if unit_ids is None:
        names = np.concatenate([np.unique(spike_unit_ids).astype(str), trace_unit_ids])
    else:
        names = _vector(unit_ids, "unit_ids").astype(str)
    _repeats(names, "unit_ids", "give every unit a distinct id")
    spike_rows = _rows_in(names, spike_unit_ids, "spike_unit_ids", "spike")
    trace_rows = _rows_in(names, trace_unit_ids, "trace_unit_ids", "column")
    try:
        units = Units(names, {k: np.asarray(v) for k, v in unit_columns.items()})
    except ValueError as error:
        raise DataError(f"{SOURCE}: unit_columns: {error} (rows follow unit_ids)") from error
    return units, spike_rows, trace_rows


def _spike_arrays(spike_times, spike_unit_ids) -> tuple[np.ndarray, np.ndarray]:
    """(S,) float64 times and (S,) unit ids; empty when neither is given."""
    if (spike_times is None) != (spike_unit_ids is None):
        missing = "spike_unit_ids" if spike_unit_ids is None else "spike_times"
        raise DataError(
            f"{SOURCE}: {missing} is missing; give spike_times and spike_unit_ids together (one "
            "unit id per spike)"
        )
    if spike_times is None:
        return np.zeros(0), np.zeros(0, dtype=str)
    times = _vector(spike_times, "spike_times", np.float64)
    ids = _vector(spike_unit_ids, "spike_unit_ids")
    if times.size != ids.size:
        raise DataError(
            f"{SOURCE}: spike_times holds {times.size} times but spike_unit_ids holds {ids.size} "
            "unit ids; give one unit id per spike"
        )
    return times, ids


def _trace_arrays(traces, trace_unit_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F,) float64 frame times, (F, R) float32 values and (R,) str column ids; empty (R = 0)
    without traces."""
    if traces is None:
        if trace_unit_ids is not None:
            raise DataError(f"{SOURCE}: trace_unit_ids without traces; give traces=(timestamps, values)")
        return np.zeros(0), np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=str)
    try:
        timestamps, values = traces
    except (TypeError, ValueError) as error:
        raise DataError(
            f"{SOURCE}: traces must be a (timestamps (F,), values (F, R)) pair; got "
            f"{type(traces).__name__}"
        ) from error
    timestamps = _vector(timestamps, "traces timestamps", np.float64)
    try:
        values = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise DataError(f"{SOURCE}: traces values must be numbers ({error})") from error
    frames = timestamps.size
    if values.ndim != 2 or values.shape[0] != frames:
        transposed = values.ndim == 2 and values.shape[1] == frames
        raise DataError(
            f"{SOURCE}: traces: {frames} frame times but values of shape {values.shape}; give "
            f"values as (frames, units) = ({frames}, R)" + (" (transpose them)" if transposed else "")
        )
    if trace_unit_ids is None:
        ids = np.array([f"roi_{k:03d}" for k in range(values.shape[1])], dtype=str)
        return timestamps, values, ids
    ids = _vector(trace_unit_ids, "trace_unit_ids").astype(str)
    if ids.size != values.shape[1]:
        raise DataError(
            f"{SOURCE}: trace_unit_ids holds {ids.size} ids but traces values have "
            f"{values.shape[1]} columns; give one unit id per column"
        )
    _repeats(ids, "trace_unit_ids", "give every column a distinct unit id")
    return timestamps, values, ids


def _stream(name: str, stream, unit: str, repairs: Repairs) -> TimeSeries:
    """One behavior stream from a (timestamps, values) pair, time-sorted (a repair)."""
    what = f"behavior[{name!r}]"
    try:
        timestamps, values = stream
    except (TypeError, ValueError) as error:
        raise DataError(
            f"{SOURCE}: {what} must be a (timestamps, values) pair; got {type(stream).__name__}"
        ) from error
    timestamps = _vector(timestamps, f"{what} timestamps", np.float64)
    values = np.asarray(values)
    values = values[:, None] if values.ndim == 1 else values
    if values.ndim != 2:
        raise DataError(
            f"{SOURCE}: {what}: values of shape {values.shape}; give (N,) or (N, D) values"
        )
    if values.shape[0] != timestamps.size:
        raise DataError(
            f"{SOURCE}: {what}: {timestamps.size} timestamps but {values.shape[0]} rows of values; "
            "give one row of values per timestamp"
        )
    timestamps, values = time_sorted(timestamps, (values,), f"{name} sample", repairs)
    return TimeSeries(timestamps, values, unit)


def _default_domain(times: Sequence[np.ndarray], frames: np.ndarray) -> Intervals:
    """One span from the first to just past the last of the sorted ``times``, widened to cover
    the sorted ``frames`` with half a frame step (the median) either side."""
    bounds = [(float(t[0]), float(np.nextafter(t[-1], np.inf))) for t in times if t.size]
    if frames.size:
        steps = np.diff(frames)
        half = float(np.median(steps[steps > 0])) / 2 if (steps > 0).any() else 0.0
        end = frames[-1] + half if half > 0 else np.nextafter(frames[-1], np.inf)
        bounds.append((float(frames[0] - half), float(end)))
    if not bounds:
        raise DataError(
            f"{SOURCE}: no spike, frame or behavior sample to take the domain from; pass "
            "domain=(start, end)"
        )
    return Intervals.single(min(b[0] for b in bounds), max(b[1] for b in bounds))


def recording_from_arrays(
    *,
    recording_id: str,
    spike_times=None,
    spike_unit_ids=None,
    traces: tuple | None = None,
    trace_unit_ids=None,
    trace_kind: str = "dff",
    unit_ids=None,
    unit_columns: Mapping[str, object] = {},
    behavior: Mapping[str, tuple] = {},
    behavior_units: Mapping[str, str] = {},
    trials: SpanSet | None = None,
    intervals: Mapping[str, SpanSet] = {},
    domain: SpanSet | None = None,
    splits: Mapping[str, SpanSet] | None = None,
    brainset: str = "",
    subject: str = "",
    task: str = "unknown",
    species: str = "",
    brain_areas: Sequence[str] | None = None,
    extra: Mapping[str, str] = {},
    strict: bool = False,
) -> Recording:
    """A validated Recording from arrays (rules in the module docstring).

    spike_times: (S,) seconds. spike_unit_ids: (S,) the unit (str or int id) of each spike.
    traces: ((F,) frame times (frame or bin centres), (F, R) values); spikes, traces or both are
    required. trace_unit_ids: (R,) the unit of each column (default ``roi_000``, ...).
    trace_kind: ``"dff"``, ``"fluorescence"`` or ``"counts"`` (binned spike counts).
    unit_ids: (U,) the unit table in order, silent units included (default: the distinct ids of
    the spikes, sorted, then the trace columns'). unit_columns: name -> (U,) per-unit values (``brain_area``, ...), rows
    following ``unit_ids``. behavior: stream name -> ((N,) timestamps, (N,) or (N, D) values).
    behavior_units: stream name -> physical unit (``"m/s"``). trials, domain: spans (Intervals, a
    (start, end) pair or a mapping with ``start``, ``end`` and columns). intervals, splits: name ->
    spans (splits: ``train`` / ``valid`` / ``test``; None leaves them to ``write_dataset``).
    brainset (recordings of one brainset share a behavior scale), subject, task, species, extra:
    metadata; brain_areas defaults to the distinct ``brain_area`` (else ``location``) unit values.
    strict: refuse input that needs a repair (DataError) instead of repairing it with a warning.
    """
    repairs = Repairs(SOURCE, strict)
    if spike_times is None and spike_unit_ids is None and traces is None:
        raise DataError(
            f"{SOURCE}: no neural data; give spike_times and spike_unit_ids, or "
            "traces=(timestamps, values), or both"
        )
    if trace_kind not in TRACE_KINDS:
        raise DataError(f"{SOURCE}: trace_kind {trace_kind!r}; use one of {list(TRACE_KINDS)}")
    times, ids = _spike_arrays(spike_times, spike_unit_ids)
    frames, values, trace_ids = _trace_arrays(traces, trace_unit_ids)
    units, rows, columns = _unit_table(ids, trace_ids, unit_ids, unit_columns)
    times, rows = time_sorted(times, (rows,), "spike", repairs)
    frames, values = time_sorted(frames, (values,), "frame", repairs)
    unknown = sorted(set(behavior_units) - set(behavior))
    if unknown:
        raise DataError(
            f"{SOURCE}: behavior_units names {unknown}, not in behavior ({sorted(behavior)})"
        )
    streams = {
        name: _stream(name, stream, behavior_units.get(name, ""), repairs)
        for name, stream in behavior.items()
    }
    if domain is None:
        domain_spans = _default_domain([times, *(s.timestamps for s in streams.values())], frames)
    else:
        domain_spans = _spans(domain, "domain")
        if not domain_spans.is_disjoint():  # dropping data outside it needs sorted, disjoint spans
            raise DataError(
                f"{SOURCE}: domain spans must be finite, sorted by start and disjoint; got "
                f"{list(zip(domain_spans.start.tolist(), domain_spans.end.tolist()))[:5]}; merge "
                "overlapping spans (Intervals(start, end).merged())"
            )
    trial_spans = Intervals.empty()
    if trials is not None:
        trial_spans = sorted_trials(_spans(trials, "trials"), SOURCE, "fix trials=", repairs)
    named = {}
    for name, spans in intervals.items():
        spans = _spans(spans, f"intervals[{name!r}]")
        named[name] = spans.select(np.argsort(spans.start, kind="stable"))
    recording = Recording(
        info=RecordingInfo(
            recording_id=recording_id,
            brainset=brainset,
            subject=subject,
            task=task,
            species=species,
            brain_areas=unit_areas(units) if brain_areas is None else tuple(brain_areas),
            extra=extra,
        ),
        spikes=Spikes(times, rows),
        traces=Traces(frames, values, columns, trace_kind),
        units=units,
        behavior=streams,
        domain=domain_spans,
        trials=trial_spans,
        splits={name: _spans(s, f"splits[{name!r}]") for name, s in (splits or {}).items()},
        intervals=named,
    )
    recording = keep_recorded(recording, SOURCE, repairs)
    repairs.warn()
    validate_recording(recording, SOURCE)
    return recording
