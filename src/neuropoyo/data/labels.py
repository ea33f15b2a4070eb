"""Label streams: a trial's category (grating direction, reach target, choice) as a behavior stream
of class indices, the input of a classification readout.

A trial-level label becomes samples on a regular grid over the span of each trial that carries it
(by default the whole trial), all holding the trial's class; the model decodes every sample and
evaluation pools the samples of each trial into one decision
(:mod:`neuropoyo.evaluation.metrics`). A stream of labels that change within trials (per-timepoint
classification) is a label stream too: give its samples directly.
"""

from __future__ import annotations

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import TimeSeries
from neuropoyo.errors import DataError, MissingKeyError

LABEL_RATE_HZ = 10.0  # samples per second of a trial-level label stream


def class_names(values: np.ndarray) -> tuple[str, ...]:
    """The sorted distinct values of a label column as class names ("45", "90", "left")."""
    distinct = np.unique(np.asarray(values))
    if distinct.dtype.kind == "f" and np.all(distinct == np.round(distinct)):
        distinct = distinct.astype(np.int64)
    return tuple(str(v) for v in distinct)


def trial_label_stream(
    trials: Intervals,
    column: str,
    *,
    start_column: str = "start_time",
    stop_column: str = "stop_time",
    rate_hz: float = LABEL_RATE_HZ,
    classes: tuple[str, ...] | None = None,
    source: str = "trials",
) -> TimeSeries:
    """The label stream of trial column ``column``: for each trial, samples every 1 / rate_hz
    seconds over ``[start_column, stop_column)`` of that trial (trial columns of event times, or
    the trial bounds ``start_time`` / ``stop_time``), each holding the index of the trial's value in
    ``classes`` (default: the column's sorted distinct values).

    Returns a TimeSeries with (N, 1) int64 values and ``classes``. Trials whose value is missing
    (NaN, empty) or whose span is empty get no samples. DataError naming ``source``, the column and
    the fix for a value outside ``classes`` or a missing column.
    """
    if column not in trials.columns:
        raise MissingKeyError(
            f"{source}: no trial column {column!r} to take labels from; trial columns are "
            f"{sorted(trials.columns)}"
        )
    if not rate_hz > 0:
        raise ValueError(f"{source}: rate_hz must be > 0, got {rate_hz}")
    values = np.asarray(trials.columns[column]).reshape(len(trials), -1)[:, 0]
    missing = _missing(values)
    classes = class_names(values[~missing]) if classes is None else tuple(str(c) for c in classes)
    names = class_names_of(values)
    known = np.isin(np.array(names), classes) | missing
    if not known.all():
        k = int(np.flatnonzero(~known)[0])
        raise DataError(
            f"{source}: trial {k} has {column} = {names[k]!r}, not one of its classes {list(classes)}; "
            "fix the trial's value or list every class"
        )
    starts, stops = (_bounds(trials, name, source) for name in (start_column, stop_column))
    step = 1.0 / rate_hz
    times, labels = [], []
    lookup = {name: index for index, name in enumerate(classes)}
    for k in np.flatnonzero(~missing & np.isfinite(starts) & np.isfinite(stops) & (stops > starts)):
        grid = starts[k] + step * np.arange(int(np.ceil((stops[k] - starts[k]) / step)))
        times.append(grid)
        labels.append(np.full(grid.size, lookup[names[k]], dtype=np.int64))
    timestamps = np.concatenate(times) if times else np.zeros(0)
    order = np.argsort(timestamps, kind="stable")
    label_values = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    return TimeSeries(timestamps[order], label_values[order][:, None], "class", classes)


def class_names_of(values: np.ndarray) -> list[str]:
    """Each value of a label column as its class name (integral floats as integers)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return [str(int(v)) if np.isfinite(v) and v == round(v) else str(v) for v in values]
    return [str(v) for v in values]


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return ~np.isfinite(values)
    return np.array([str(v) == "" for v in values], dtype=bool)


def _bounds(trials: Intervals, name: str, source: str) -> np.ndarray:
    if name == "start_time":
        return trials.start
    if name == "stop_time":
        return trials.end
    if name not in trials.columns:
        raise MissingKeyError(
            f"{source}: no trial column {name!r} to bound the label samples; trial columns are "
            f"{sorted(trials.columns)}"
        )
    return np.asarray(trials.columns[name], dtype=np.float64).reshape(-1)
