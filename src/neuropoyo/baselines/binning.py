"""Spike-count designs for classic decoders: binned counts and causal lagged histories.

Every behavior sample at time t is decoded from the spike counts of the ``n_lags`` bins of width
``bin_s`` just before it: lag k counts the spikes in ``[t - (k + 1) * bin_s, t - k * bin_s)``, so no
spike at or after t is ever used. A history that leaves the recorded domain (or crosses a gap in it)
is not data, and the sample is marked invalid.
"""

from __future__ import annotations

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.errors import MissingKeyError

BIN_S = 0.01  # 10 ms bins
N_LAGS = 20  # 200 ms of history, covering the 50-150 ms lead of motor cortex over the hand


def _check_grid(bin_s: float, n_lags: int) -> None:
    if not bin_s > 0:
        raise ValueError(f"binning: bin_s must be > 0 seconds, got {bin_s}")
    if int(n_lags) != n_lags or n_lags < 1:
        raise ValueError(f"binning: n_lags must be an integer >= 1, got {n_lags}")


def bin_spikes(
    spike_times: np.ndarray, unit_index: np.ndarray, n_units: int, bin_edges: np.ndarray
) -> np.ndarray:
    """(T, U) int64 spike counts in the half-open bins ``[bin_edges[k], bin_edges[k + 1])``.

    spike_times, unit_index: (S,). bin_edges: (T + 1,) strictly increasing. Spikes outside the
    edges are ignored.
    """
    times = np.asarray(spike_times, dtype=np.float64).reshape(-1)
    units = np.asarray(unit_index).reshape(-1)
    edges = np.asarray(bin_edges, dtype=np.float64).reshape(-1)
    if times.size != units.size:
        raise ValueError(f"bin_spikes: {times.size} spike times but {units.size} unit indices")
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bin_spikes: bin_edges must hold at least 2 strictly increasing values")
    if units.size and (units.min() < 0 or units.max() >= n_units):
        raise ValueError(
            f"bin_spikes: unit indices must lie in [0, {n_units}), got {units.min()}..{units.max()}"
        )
    n_bins = edges.size - 1
    bins = np.searchsorted(edges, times, side="right") - 1
    inside = (bins >= 0) & (bins < n_bins)
    flat = bins[inside].astype(np.int64) * n_units + units[inside]
    return np.bincount(flat, minlength=n_bins * n_units).reshape(n_bins, n_units)


def history_edges(times: np.ndarray, bin_s: float, n_lags: int) -> np.ndarray:
    """(N, n_lags + 1) bin edges going back from each time: column k is ``t - k * bin_s``."""
    return np.asarray(times, dtype=np.float64)[:, None] - bin_s * np.arange(n_lags + 1)


def history_inside(domain: Intervals, times: np.ndarray, bin_s: float, n_lags: int) -> np.ndarray:
    """(N,) bool: whether ``[t - n_lags * bin_s, t)`` lies inside one recorded span (no gap)."""
    spans = domain.merged()
    times = np.asarray(times, dtype=np.float64)
    first = history_edges(times, bin_s, n_lags)[:, -1]
    k = np.searchsorted(spans.start, first, side="right") - 1
    valid = k >= 0
    valid[valid] = times[valid] <= spans.end[k[valid]]
    return valid


def lagged_counts(
    recording: Recording, times: np.ndarray, *, bin_s: float = BIN_S, n_lags: int = N_LAGS
) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts of the ``n_lags`` bins before each time, and which histories are real data.

    times: (N,) seconds. Returns counts (N, n_lags, U) float32, where lag k covers
    ``[t - (k + 1) * bin_s, t - k * bin_s)``, and valid (N,) bool, False when the history is not
    entirely inside one span of ``recording.domain``.
    """
    _check_grid(bin_s, n_lags)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    edges = history_edges(times, bin_s, n_lags)
    spikes = recording.spikes
    counts = np.zeros((times.size, n_lags, len(recording.units)), dtype=np.float32)
    order = np.lexsort((spikes.times, spikes.unit_index))  # by unit, then time
    bounds = np.searchsorted(spikes.unit_index[order], np.arange(len(recording.units) + 1))
    for u in range(len(recording.units)):
        unit_times = spikes.times[order[bounds[u] : bounds[u + 1]]]
        below = np.searchsorted(unit_times, edges, side="left")  # spikes before each edge
        counts[:, :, u] = below[:, :-1] - below[:, 1:]
    return counts, history_inside(recording.domain, times, bin_s, n_lags)


def design(
    recording: Recording,
    stream: str,
    spans: Intervals,
    *,
    bin_s: float = BIN_S,
    n_lags: int = N_LAGS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoding design for the samples of ``stream`` inside ``spans`` (e.g. a split).

    The recording is first restricted to ``spans`` (as evaluation does), so histories never reach
    outside them; samples without a full history are dropped. Returns X (N, n_lags, U) float32
    lagged counts, y (N, D) float64 behavior values and times (N,) seconds.
    """
    if stream not in recording.behavior:
        raise MissingKeyError(
            f"design: no behavior stream {stream!r}; streams are {sorted(recording.behavior)}"
        )
    inside = recording.restrict(spans)
    series = inside.behavior[stream]
    X, valid = lagged_counts(inside, series.timestamps, bin_s=bin_s, n_lags=n_lags)
    y = np.asarray(series.values[valid], dtype=np.float64)
    return X[valid], y, series.timestamps[valid]
