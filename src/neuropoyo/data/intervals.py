"""Half-open time intervals ``[start, end)`` with per-interval columns, and their set algebra.

An :class:`Intervals` holds K spans as two float64 arrays plus any number of per-span columns
(trial condition, go-cue time, success flag, ...). Most operations assume the spans are sorted by
start and disjoint (true for trials, recorded spans and splits); :meth:`Intervals.is_disjoint` checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


def arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality, NaN equal to NaN (missing values in columns)."""
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def _as_1d(values, dtype, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"intervals: {name} must be 1-D, got shape {array.shape}")
    return array


@dataclass(frozen=True, eq=False)
class Intervals:
    """K spans ``[start[k], end[k])``.

    start, end: (K,) float64 seconds. columns: name -> (K, ...) array of per-span values.
    """

    start: np.ndarray
    end: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        start = _as_1d(self.start, np.float64, "start")
        end = _as_1d(self.end, np.float64, "end")
        if start.shape != end.shape:
            raise ValueError(f"intervals: start has {start.size} values but end has {end.size}")
        columns = {}
        for name, column in self.columns.items():
            column = np.asarray(column)
            if column.ndim == 0 or column.shape[0] != start.size:
                raise ValueError(
                    f"intervals: column {name!r} has {column.shape[0] if column.ndim else 0} rows, "
                    f"expected one per interval ({start.size})"
                )
            columns[name] = column
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "columns", columns)

    @classmethod
    def _checked(cls, start: np.ndarray, end: np.ndarray, columns: Mapping[str, np.ndarray]) -> "Intervals":
        """Skip __post_init__ for arrays derived from valid intervals: float64 (K,) start and end,
        columns with K rows. The window loader builds dozens of these per window."""
        intervals = object.__new__(cls)
        object.__setattr__(intervals, "start", start)
        object.__setattr__(intervals, "end", end)
        object.__setattr__(intervals, "columns", dict(columns))
        return intervals

    @classmethod
    def empty(cls, columns: Mapping[str, np.dtype] | None = None) -> "Intervals":
        cols = {name: np.zeros(0, dtype=dtype) for name, dtype in (columns or {}).items()}
        return cls(np.zeros(0), np.zeros(0), cols)

    @classmethod
    def single(cls, start: float, end: float) -> "Intervals":
        return cls(np.array([start]), np.array([end]))

    def __len__(self) -> int:
        return int(self.start.size)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Intervals):
            return NotImplemented
        return (
            np.array_equal(self.start, other.start)
            and np.array_equal(self.end, other.end)
            and self.columns.keys() == other.columns.keys()
            and all(arrays_equal(v, other.columns[k]) for k, v in self.columns.items())
        )

    def __repr__(self) -> str:
        cols = f", columns={sorted(self.columns)}" if self.columns else ""
        return f"Intervals(n={len(self)}, total={self.total_duration():.3f}s{cols})"

    def durations(self) -> np.ndarray:
        """(K,) float64 lengths."""
        return self.end - self.start

    def total_duration(self) -> float:
        return float(np.sum(self.durations()))

    def select(self, index) -> "Intervals":
        """Keep the spans picked by a boolean mask or an integer index array."""
        start = self.start[index]
        build = Intervals._checked if start.ndim == 1 else Intervals  # a scalar index: the checks name it
        return build(start, self.end[index], {k: v[index] for k, v in self.columns.items()})

    def shift(self, offset: float) -> "Intervals":
        return Intervals._checked(self.start + offset, self.end + offset, self.columns)

    def is_sorted(self) -> bool:
        return bool(np.all(np.diff(self.start) >= 0))

    def is_disjoint(self) -> bool:
        """True when sorted and no span starts before the previous one ends."""
        return self.is_sorted() and bool(np.all(self.start[1:] >= self.end[:-1]))

    def clip(self, start: float, end: float) -> "Intervals":
        """Spans cut to ``[start, end)``; spans with no overlap are dropped. Times stay absolute."""
        keep = (self.end > start) & (self.start < end)
        return Intervals._checked(
            np.maximum(self.start[keep], float(start)),
            np.minimum(self.end[keep], float(end)),
            {k: v[keep] for k, v in self.columns.items()},
        )

    def slice(self, start: float, end: float) -> "Intervals":
        """Spans cut to ``[start, end)`` and re-expressed relative to ``start``."""
        return self.clip(start, end).shift(-start)

    def contains(self, times: np.ndarray) -> np.ndarray:
        """(N,) bool: whether each time lies in some span. Needs sorted, disjoint spans."""
        times = np.asarray(times, dtype=np.float64)
        k = np.searchsorted(self.start, times, side="right") - 1
        inside = k >= 0
        inside[inside] = times[inside] < self.end[k[inside]]
        return inside

    def intersect(self, other: "Intervals") -> "Intervals":
        """Pieces of self that lie inside other (both sorted and disjoint); keeps self's columns."""
        if len(self) == 0 or len(other) == 0:
            return self.select(np.zeros(len(self), dtype=bool))
        # Each overlapping pair (i in self, j in other) gives one piece.
        j_lo = np.searchsorted(other.end, self.start, side="right")
        j_hi = np.searchsorted(other.start, self.end, side="left")
        counts = np.maximum(j_hi - j_lo, 0)
        i = np.repeat(np.arange(len(self)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        j = np.repeat(j_lo, counts) + offsets
        start = np.maximum(self.start[i], other.start[j])
        end = np.minimum(self.end[i], other.end[j])
        keep = end > start
        rows = i[keep]
        return Intervals._checked(start[keep], end[keep], {k: v[rows] for k, v in self.columns.items()})

    def complement(self, start: float, end: float) -> "Intervals":
        """The gaps of self inside ``[start, end)`` (self sorted and disjoint); no columns."""
        edges_start = np.concatenate([[start], self.end])
        edges_end = np.concatenate([self.start, [end]])
        gaps = Intervals(edges_start, edges_end)
        return gaps.select(gaps.end > gaps.start).clip(start, end)

    def difference(self, other: "Intervals") -> "Intervals":
        """Pieces of self outside other (both sorted and disjoint); keeps self's columns."""
        if len(self) == 0 or len(other) == 0:
            return self
        lo = min(self.start[0], other.start[0])
        hi = max(self.end[-1], other.end[-1])
        return self.intersect(other.complement(lo, hi))

    def union(self, other: "Intervals") -> "Intervals":
        """Merged spans covered by self or other; no columns."""
        start = np.concatenate([self.start, other.start])
        end = np.concatenate([self.end, other.end])
        return Intervals(start, end).merged()

    def merged(self) -> "Intervals":
        """Overlapping or touching spans fused into one; no columns."""
        if len(self) == 0:
            return Intervals.empty()
        order = np.argsort(self.start, kind="stable")
        start, end = self.start[order], self.end[order]
        running_end = np.maximum.accumulate(end)
        new_group = np.concatenate([[True], start[1:] > running_end[:-1]])
        first = np.flatnonzero(new_group)
        last = np.concatenate([first[1:] - 1, [start.size - 1]])
        return Intervals._checked(start[first], running_end[last], {})
