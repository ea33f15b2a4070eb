"""Circular behavior streams: angles stored as (cos, sin), scored by angular error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuropoyo.data.circular import CIRCULAR_UNIT, angle_of, angular_error, to_unit_circle
from neuropoyo.data.recording import TimeSeries
from neuropoyo.errors import DataError
from neuropoyo.evaluation.report import RecordingResult, format_table, summarize

angles = st.floats(-50.0, 50.0, allow_nan=False)


def _series(values, unit="radian") -> TimeSeries:
    return TimeSeries(np.arange(len(values), dtype=np.float64), np.asarray(values), unit)


@given(st.lists(angles, min_size=1, max_size=20))
def test_unit_circle_round_trip_modulo_full_turns(values):
    stream = to_unit_circle(_series(values), "f.nwb: behavior ry")
    assert stream.unit == CIRCULAR_UNIT and stream.values.shape == (len(values), 2)
    np.testing.assert_allclose(np.hypot(*stream.values.T), 1.0)
    back = angle_of(stream.values)
    np.testing.assert_allclose(np.exp(1j * back), np.exp(1j * np.asarray(values)), atol=1e-9)


def test_degrees_are_converted_and_nan_is_kept():
    stream = to_unit_circle(_series([90.0, np.nan, 180.0], unit="deg"), "f")
    np.testing.assert_allclose(stream.values[[0, 2]], [[0.0, 1.0], [-1.0, 0.0]], atol=1e-12)
    assert np.isnan(stream.values[1]).all()


@given(angles, angles)
def test_angular_error_is_the_short_way_round(a, b):
    points = lambda t: np.array([[np.cos(t), np.sin(t)]])  # noqa: E731
    error = angular_error(points(a), 3.0 * points(b))  # the predicted point's length is irrelevant
    expected = abs((b - a + np.pi) % (2 * np.pi) - np.pi)
    assert 0.0 <= error[0] <= np.pi + 1e-12
    assert error[0] == pytest.approx(expected, abs=1e-7)
    assert angular_error(points(a), points(b))[0] == pytest.approx(
        angular_error(points(b), points(a))[0], abs=1e-12
    )


def test_wrong_width_or_unit_is_a_clear_error():
    with pytest.raises(DataError, match="f.nwb: behavior pos: a circular stream must hold one angle"):
        to_unit_circle(TimeSeries([0.0], [[1.0, 2.0]], "radian"), "f.nwb: behavior pos")
    with pytest.raises(DataError, match=r"f: unit 'm' is not an angle unit.*deg.*rad"):
        to_unit_circle(_series([1.0], unit="m"), "f")


def test_report_gives_angular_error_for_circular_streams_only():
    t = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    true = np.column_stack([np.cos(t), np.sin(t)])
    shifted = np.column_stack([np.cos(t + 0.1), np.sin(t + 0.1)])  # every prediction 0.1 rad ahead
    result = lambda rid, unit: RecordingResult(  # noqa: E731
        rid, "head_direction", "lab", "ry", t, true, shifted, np.zeros(100, dtype=int), unit
    )
    summary = summarize([result("hd", CIRCULAR_UNIT), result("plain", "m")], split="test")
    error = summary["recordings"]["hd"]["streams"]["ry"]["angular_error_deg"]
    assert error["mean"] == pytest.approx(np.degrees(0.1)) and error["median"] == pytest.approx(
        np.degrees(0.1)
    )
    assert "angular_error_deg" not in summary["recordings"]["plain"]["streams"]["ry"]
    assert "hd: angular error 5.7 deg mean, 5.7 deg median (ry as cos, sin)" in format_table(summary)
