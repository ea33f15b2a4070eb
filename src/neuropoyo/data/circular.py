"""Angles as decoding targets: stored as points on the unit circle, scored by angular error.

An angle (head direction, reach direction) jumps from 2*pi to 0 where the animal turns through
the wrap, so regressing it directly punishes predictions that are nearly right. A circular stream
holds ``(cos, sin)`` of the angle instead: a (N, 2) target without a discontinuity, decoded by an
ordinary 2-D readout. Its unit is :data:`CIRCULAR_UNIT`, which is what tells the evaluation to
report the angular error of ``atan2(sin, cos)`` next to the R2 of the two coordinates.
"""

from __future__ import annotations

import numpy as np

from neuropoyo.data.recording import TimeSeries
from neuropoyo.errors import DataError

CIRCULAR_UNIT = "unit circle (cos, sin)"
RADIANS_PER = {  # angle unit -> radians per unit
    **dict.fromkeys(("rad", "radian", "radians"), 1.0),
    **dict.fromkeys(("deg", "degree", "degrees"), np.pi / 180),
}


def to_unit_circle(series: TimeSeries, where: str) -> TimeSeries:
    """A 1-D angle series (unit rad or deg) as its (N, 2) ``(cos, sin)`` circular stream.

    where: names the series in errors (file and stream). NaN angles stay NaN in both columns.
    """
    if series.dim != 1:
        raise DataError(
            f"{where}: a circular stream must hold one angle per sample, got {series.dim} columns; "
            "name a single angle series"
        )
    scale = RADIANS_PER.get(series.unit.strip().lower())
    if scale is None:
        raise DataError(
            f"{where}: unit {series.unit!r} is not an angle unit; circular streams need one of "
            f"{', '.join(sorted(RADIANS_PER))} (fix the series' unit attribute)"
        )
    angle = series.values[:, 0].astype(np.float64) * scale
    return TimeSeries(series.timestamps, np.column_stack([np.cos(angle), np.sin(angle)]), CIRCULAR_UNIT)


def angle_of(points: np.ndarray) -> np.ndarray:
    """(N,) angles in (-pi, pi] of (N, 2) ``(cos, sin)`` points (any length but zero)."""
    points = np.asarray(points, dtype=np.float64)
    return np.arctan2(points[:, 1], points[:, 0])


def angular_error(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(N,) absolute angle between (N, 2) true and predicted ``(cos, sin)`` points, in [0, pi]."""
    difference = angle_of(predicted) - angle_of(true)
    return np.abs(np.angle(np.exp(1j * difference)))
