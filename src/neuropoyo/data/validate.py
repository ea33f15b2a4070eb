"""Checks that a Recording is well formed, with errors that name the source, the field and the fix."""

from __future__ import annotations

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import TRACE_KINDS, Recording
from neuropoyo.errors import DataError


class InvalidRecordingError(DataError):
    """A recording (in memory or on disk) breaks the data model; the message lists every problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid recording ({len(problems)} problem(s)):\n{lines}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_times(times: np.ndarray, field: str, problems: list[str], strict: bool = False) -> None:
    """Times must be finite and sorted: non-decreasing, or increasing when ``strict``."""
    bad = ~np.isfinite(times)
    if bad.any():
        problems.append(
            f"{field}: {int(bad.sum())} non-finite value(s) (first at index {_first(bad)}); "
            "remove NaN/inf timestamps"
        )
        return
    steps = np.diff(times)
    if (steps < 0).any():
        i = _first(steps < 0)
        problems.append(
            f"{field}: not sorted (index {i + 1} is {times[i + 1]!r} after {times[i]!r}); "
            "sort by time (and reorder the paired arrays with the same permutation)"
        )
    elif strict and (steps == 0).any():
        i = _first(steps == 0)
        problems.append(
            f"{field}: {int((steps == 0).sum())} repeated timestamp(s) (first: index {i + 1} "
            f"repeats {times[i]!r} of index {i}); {field.split('/')[0]} timestamps must increase "
            "strictly: keep one sample per timestamp and drop the repeats"
        )


def _check_intervals(spans: Intervals, field: str, problems: list[str], disjoint: bool) -> None:
    if not (np.all(np.isfinite(spans.start)) and np.all(np.isfinite(spans.end))):
        problems.append(f"{field}: non-finite start/end; every interval needs finite bounds")
        return
    negative = spans.end < spans.start
    if negative.any():
        i = _first(negative)
        problems.append(
            f"{field}: {int(negative.sum())} interval(s) with negative duration (first: #{i}, "
            f"start {spans.start[i]!r} > end {spans.end[i]!r}); swap or drop them"
        )
    if not spans.is_sorted():
        problems.append(f"{field}: intervals not sorted by start time; sort them")
    elif disjoint and not spans.is_disjoint():
        i = _first(spans.start[1:] < spans.end[:-1])
        problems.append(
            f"{field}: intervals #{i} [{spans.start[i]}, {spans.end[i]}) and #{i + 1} "
            f"[{spans.start[i + 1]}, {spans.end[i + 1]}) overlap; {field} must not overlap"
        )


def _check_traces(recording: Recording, problems: list[str]) -> None:
    """Frame times finite and strictly increasing, values finite, each column a distinct unit of
    the table that has no spikes, a known kind."""
    traces, units = recording.traces, recording.units
    if traces.kind not in TRACE_KINDS:
        problems.append(
            f"traces/kind: {traces.kind!r} is not one of {list(TRACE_KINDS)}; name what the values are"
        )
    _check_times(traces.timestamps, "traces/timestamps", problems, strict=True)
    bad = ~np.isfinite(traces.values)
    if bad.any():
        frame, column = np.unravel_index(_first(bad.ravel()), bad.shape)
        row = traces.unit_index[column]
        unit = repr(str(units.ids[row])) if 0 <= row < len(units) else f"column {column}"
        problems.append(
            f"traces/values: {int(bad.any(axis=1).sum())} frame(s) hold NaN or inf (first: "
            f"{traces.values[frame, column]} at frame {frame} (t={traces.timestamps[frame]:.3f} s), "
            f"unit {unit}); drop or interpolate those frames"
        )
    out = (traces.unit_index < 0) | (traces.unit_index >= len(units))
    if out.any():
        i = _first(out)
        problems.append(
            f"traces/unit_index: {int(out.sum())} index(es) outside the unit table of {len(units)} "
            f"units (first: column {i} -> {int(traces.unit_index[i])}); every trace column must "
            "point to a row of units/ids"
        )
        return
    rows, counts = np.unique(traces.unit_index, return_counts=True)
    if (counts > 1).any():
        twice = np.flatnonzero(counts > 1)[0]
        problems.append(
            f"traces/unit_index: unit {str(units.ids[rows[twice]])!r} has {int(counts[twice])} "
            "trace columns; give each unit at most one column"
        )
    spiking = np.intersect1d(rows, recording.spikes.unit_index)
    if spiking.size:
        problems.append(
            f"traces/unit_index: {spiking.size} unit(s) have both spikes and a trace (first: "
            f"{str(units.ids[spiking[0]])!r}); a unit's activity comes as spikes or as a trace: "
            "give the trace its own unit id"
        )


def _check_labels(stream, field: str, problems: list[str]) -> None:
    """A label stream holds one class index in [0, len(classes)) per sample."""
    values, n = stream.values, len(stream.classes)
    if values.ndim != 2 or values.shape[1] != 1:
        problems.append(f"{field}/values: a label stream holds one class index per sample, got shape {values.shape}")
        return
    if values.size == 0:
        return
    integral = np.issubdtype(values.dtype, np.integer) or bool(np.all(values == np.round(values)))
    outside = ~((values >= 0) & (values < n)) if integral else np.ones(values.shape, dtype=bool)
    if outside.any():
        i = _first(outside[:, 0])
        problems.append(
            f"{field}/values: {int(outside.sum())} label(s) outside the {n} classes {list(stream.classes)} "
            f"(first: sample {i} at t={float(stream.timestamps[i]):.3f} s holds {values[i, 0].item()!r}); "
            f"labels are class indices 0..{n - 1}: fix the label or add its class"
        )
    if len(set(stream.classes)) != n or n < 2:
        problems.append(f"{field}: classes {list(stream.classes)} must be 2 or more distinct names")


def recording_problems(recording: Recording) -> list[str]:
    """Every problem found in ``recording`` (empty when it is valid)."""
    problems: list[str] = []
    spikes, n_units = recording.spikes, len(recording.units)
    _check_times(spikes.times, "spikes/times", problems)
    if len(spikes):
        out = (spikes.unit_index < 0) | (spikes.unit_index >= n_units)
        if out.any():
            i = _first(out)
            problems.append(
                f"spikes/unit_index: {int(out.sum())} index(es) outside the unit table of {n_units} "
                f"units (first: spike #{i} -> {int(spikes.unit_index[i])}); "
                "every spike must point to a row of units/ids"
            )
    if len(set(recording.units.ids.tolist())) != n_units:
        problems.append("units/ids: duplicate unit ids; give every unit a distinct id")
    for name, stream in recording.behavior.items():
        field = f"behavior/{name}"
        if stream.values.shape[0] != len(stream.timestamps):
            problems.append(
                f"{field}: {len(stream.timestamps)} timestamps but {stream.values.shape[0]} rows of "
                "values; give exactly one row of values per timestamp"
            )
        _check_times(stream.timestamps, f"{field}/timestamps", problems, strict=True)
        if stream.values.ndim != 2:
            problems.append(f"{field}/values: expected (N, D) values, got shape {stream.values.shape}")
        elif np.issubdtype(stream.values.dtype, np.floating) and np.isnan(stream.values).any():
            problems.append(
                f"{field}/values: {int(np.isnan(stream.values).any(axis=1).sum())} row(s) with NaN; "
                "drop those samples (and mark the span as a gap in the domain) instead"
            )
        if stream.is_labels:
            _check_labels(stream, field, problems)
    _check_traces(recording, problems)
    _check_intervals(recording.domain, "domain", problems, disjoint=True)
    _check_intervals(recording.trials, "trials", problems, disjoint=True)
    for name, spans in recording.splits.items():
        _check_intervals(spans, f"splits/{name}", problems, disjoint=True)
    for name, spans in recording.intervals.items():
        _check_intervals(spans, f"intervals/{name}", problems, disjoint=False)
    names = sorted(recording.splits)
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            first, second = recording.splits[a], recording.splits[b]
            if first.is_disjoint() and second.is_disjoint() and len(first.intersect(second)):
                problems.append(
                    f"splits: {a} and {b} overlap; no time may belong to two splits "
                    "(recompute them with neuropoyo.data.splits)"
                )
    if not problems:
        for field, times, what in (
            ("spikes/times", spikes.times, "spike"),
            ("traces/timestamps", recording.traces.timestamps, "frame"),
        ):
            outside = ~recording.domain.contains(times)
            if outside.any():
                problems.append(
                    f"{field}: {int(outside.sum())} {what}(s) outside the recorded domain "
                    f"(first at {float(times[_first(outside)])!r} s); widen the domain or drop them"
                )
    return problems


def validate_recording(recording: Recording, source: str = "<memory>") -> None:
    """Raise :class:`InvalidRecordingError` naming ``source`` if ``recording`` has any problem."""
    problems = recording_problems(recording)
    if problems:
        raise InvalidRecordingError(source, problems)
