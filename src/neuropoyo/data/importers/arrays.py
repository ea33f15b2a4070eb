"""Recordings from arrays already in memory (:func:`recording_from_arrays`, also reached as
:meth:`Recording.from_arrays <neuropoyo.data.recording.Recording.from_arrays>`).

The rules of the file importers (:mod:`.common`) apply; messages name the argument at fault,
prefixed ``from_arrays:``.

- **Units**: ``unit_ids`` lists the unit table in order; an id there without a spike is a unit
  that never fired in this recording (a real thing: it is kept and gets no spike). A spike whose
  unit id is not in ``unit_ids`` is an error. Without ``unit_ids`` the table is the distinct ids
  of ``spike_unit_ids``, sorted. Ids are stored, and matched, as text (``7`` and ``"7"`` are one unit).
- **Repairs** (one :class:`RepairedDataWarning` counts them; ``strict=True`` makes each a
  :class:`DataError` instead): spike or behavior times out of order are sorted, carrying their
  unit ids or values along; NaN/inf times, behavior rows holding NaN, samples repeating a
  timestamp (the first is kept) and trials of zero length are dropped.
- **Errors** (:class:`DataError`): arrays that do not pair up (spike times and unit ids, behavior
  timestamps and rows of values, unit columns and unit ids, interval starts and ends), duplicate
  unit ids, overlapping trials, and every problem :func:`~neuropoyo.data.validate.validate_recording`
  finds.
- **Domain** (the spans holding data): by default from the first to the last spike or behavior
  time, its end moved just past the last one so that it lies inside the half-open span. Outside a
  given domain is a gap, not silence: spikes, samples and trials there are dropped with one
  :class:`DroppedDataWarning`.
- **Splits**: as given, or none. A recording without splits gets them when written with
  :func:`~neuropoyo.data.directory.write_dataset` (:func:`~neuropoyo.data.splits.assign_splits`:
  held-out trials, or contiguous blocks without trials); call ``assign_splits`` to set them in memory.

Spikes are the one kind of neural data read today; other kinds (binned counts, calcium traces)
would come as further keyword arguments beside ``spike_times``.
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
from neuropoyo.data.recording import Recording, RecordingInfo, Spikes, TimeSeries, Units
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


def _unit_table(
    spike_unit_ids: np.ndarray, unit_ids, unit_columns: Mapping[str, object]
) -> tuple[Units, np.ndarray]:
    """The unit table and (S,) int64 row of each spike's unit."""
    table = np.unique(spike_unit_ids) if unit_ids is None else _vector(unit_ids, "unit_ids")
    names = table.astype(str)
    distinct, counts = np.unique(names, return_counts=True)
    if distinct.size != names.size:
        repeated = ", ".join(map(repr, distinct[counts > 1][:5].tolist()))
        raise DataError(f"{SOURCE}: unit_ids repeats {repeated}; give every unit a distinct id")
    spike_names = spike_unit_ids.astype(str)
    rows = np.zeros(spike_names.size, dtype=np.int64)
    known = np.zeros(spike_names.size, dtype=bool)
    if names.size:
        order = np.argsort(names)
        at = np.minimum(np.searchsorted(names, spike_names, sorter=order), names.size - 1)
        rows = order[at]
        known = names[rows] == spike_names
    if not known.all():
        unknown = np.unique(spike_names[~known])
        listed = ", ".join(map(repr, unknown[:5].tolist())) + (", ..." if unknown.size > 5 else "")
        raise DataError(
            f"{SOURCE}: spike_unit_ids holds {unknown.size} unit id(s) not in unit_ids ({listed}; "
            f"{int((~known).sum())} spike(s)); add them to unit_ids or drop their spikes"
        )
    try:
        units = Units(names, {k: np.asarray(v) for k, v in unit_columns.items()})
    except ValueError as error:
        raise DataError(f"{SOURCE}: unit_columns: {error} (rows follow unit_ids)") from error
    return units, rows


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


def _default_domain(times: Sequence[np.ndarray]) -> Intervals:
    """From the first to just past the last of the sorted ``times`` (one span)."""
    present = [t for t in times if t.size]
    if not present:
        raise DataError(
            f"{SOURCE}: no spike or behavior sample to take the domain from; pass domain=(start, end)"
        )
    first = min(float(t[0]) for t in present)
    last = max(float(t[-1]) for t in present)
    return Intervals.single(first, np.nextafter(last, np.inf))


def recording_from_arrays(
    *,
    recording_id: str,
    spike_times,
    spike_unit_ids,
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
    unit_ids: (U,) the unit table in order, silent units included (default: the distinct ids of
    the spikes, sorted). unit_columns: name -> (U,) per-unit values (``brain_area``, ...), rows
    following ``unit_ids``. behavior: stream name -> ((N,) timestamps, (N,) or (N, D) values).
    behavior_units: stream name -> physical unit (``"m/s"``). trials, domain: spans (Intervals, a
    (start, end) pair or a mapping with ``start``, ``end`` and columns). intervals, splits: name ->
    spans (splits: ``train`` / ``valid`` / ``test``; None leaves them to ``write_dataset``).
    brainset (recordings of one brainset share a behavior scale), subject, task, species, extra:
    metadata; brain_areas defaults to the distinct ``brain_area`` (else ``location``) unit values.
    strict: refuse input that needs a repair (DataError) instead of repairing it with a warning.
    """
    repairs = Repairs(SOURCE, strict)
    times = _vector(spike_times, "spike_times", np.float64)
    ids = _vector(spike_unit_ids, "spike_unit_ids")
    if times.size != ids.size:
        raise DataError(
            f"{SOURCE}: spike_times holds {times.size} times but spike_unit_ids holds {ids.size} "
            "unit ids; give one unit id per spike"
        )
    units, rows = _unit_table(ids, unit_ids, unit_columns)
    times, rows = time_sorted(times, (rows,), "spike", repairs)
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
        domain_spans = _default_domain([times, *(s.timestamps for s in streams.values())])
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
