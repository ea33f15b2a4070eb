"""Spike-count designs for classic decoders: binned counts and causal lagged histories.

Units with traces (calcium dF/F, counts already binned) enter the same design: lag k of such a unit
holds its last frame before the lag's end, ``t - k * bin_s`` (a frame older than two frame steps
is not held: 0), so the design never reads a frame at or after t either.

Every behavior sample at time t is decoded from the spike counts of the ``n_lags`` bins of width
``bin_s`` just before it: lag k counts the spikes in ``[t - (k + 1) * bin_s, t - k * bin_s)``, so no
spike at or after t is ever used. Part of a history may lie outside the recorded domain (before a
split segment starts, or in a gap): its counts are zero, and a second feature per lag, the fraction
of the bin that was observed, tells the decoder that these zeros are missing data, not silence —
as POYO's START/END tokens do. So every sample is decoded, the first 200 ms of a segment included.
"""

from __future__ import annotations

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.errors import MissingKeyError

BIN_S = 0.01  # 10 ms bins
N_LAGS = 20  # 200 ms of history, covering the 50-150 ms lead of motor cortex over the hand
# The place-field decoder's one window: place cells fire ~1 Hz, so it needs 0.25-0.5 s or more (on
# nelpy_linear_track, 2-fold within the training split: median error ~30-70 px at 0.5 s, 40-110 at 0.25 s).
BAYES_BIN_S = 0.5
BAYES_N_LAGS = 1


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


def observed_length(domain: Intervals, times: np.ndarray) -> np.ndarray:
    """Recorded time before each of ``times``: the length of ``domain`` inside ``(-inf, t)``."""
    spans = domain.merged()
    if len(spans) == 0:
        return np.zeros(np.shape(times))
    lengths = spans.end - spans.start
    before = np.concatenate([[0.0], np.cumsum(lengths)])  # recorded time before span k starts
    k = np.searchsorted(spans.start, times, side="right") - 1
    inside = np.clip(times - spans.start[np.maximum(k, 0)], 0.0, lengths[np.maximum(k, 0)])
    return np.where(k >= 0, before[np.maximum(k, 0)] + inside, 0.0)


def observed_fraction(domain: Intervals, times: np.ndarray, bin_s: float, n_lags: int) -> np.ndarray:
    """(N, n_lags) float32: the fraction of each history bin of each time that ``domain`` covers."""
    covered = observed_length(domain, history_edges(times, bin_s, n_lags))
    return ((covered[:, :-1] - covered[:, 1:]) / bin_s).clip(0.0, 1.0).astype(np.float32)


def lagged_counts(
    recording: Recording, times: np.ndarray, *, bin_s: float = BIN_S, n_lags: int = N_LAGS
) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts of the ``n_lags`` bins before each time, and how much of each bin is data.

    times: (N,) seconds. Returns counts (N, n_lags, U) float32, where lag k covers
    ``[t - (k + 1) * bin_s, t - k * bin_s)``, and observed (N, n_lags) float32, the fraction of
    each of these bins inside ``recording.domain`` (1 = fully recorded, 0 = no data).
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
    traces = recording.traces
    if traces.n_units and len(traces):
        counts[:, :, traces.unit_index] = held_frames(traces.timestamps, traces.values, edges[:, :-1])
    return counts, observed_fraction(recording.domain, times, bin_s, n_lags)


def held_frames(frame_times: np.ndarray, values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(*ends.shape, R) float32: the last frame strictly before each end time, 0 where there is
    none within two median frame steps. frame_times: (F,) increasing; values: (F, R)."""
    step = float(np.median(np.diff(frame_times))) if frame_times.size > 1 else np.inf
    last = np.searchsorted(frame_times, ends, side="left") - 1
    fresh = (last >= 0) & (ends - frame_times[np.maximum(last, 0)] <= 2 * step)
    held = values[np.maximum(last, 0)].astype(np.float32)
    return np.where(fresh[..., None], held, np.float32(0.0))


def design(
    recording: Recording,
    stream: str,
    spans: Intervals,
    *,
    bin_s: float = BIN_S,
    n_lags: int = N_LAGS,
    one_per_bin: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoding design for every sample of ``stream`` inside ``spans`` (e.g. a split).

    The recording is first restricted to ``spans`` (as evaluation does), so histories never read
    spikes outside them. Returns X (N, n_lags, U + 1) float32 — the lagged counts, then the observed
    fraction of each lag — y (N, D) float64 behavior values and times (N,) seconds. one_per_bin:
    keep only the first sample in each ``bin_s`` step of time (for training sets: behavior sampled
    faster than the bins adds near-copies of the same rows, and memory, but no information).
    """
    if stream not in recording.behavior:
        raise MissingKeyError(
            f"design: no behavior stream {stream!r}; streams are {sorted(recording.behavior)}"
        )
    inside = recording.restrict(spans)
    series = inside.behavior[stream]
    if one_per_bin:
        _, first = np.unique(np.floor(series.timestamps / bin_s), return_index=True)
        series = series.select(first)
    counts, observed = lagged_counts(inside, series.timestamps, bin_s=bin_s, n_lags=n_lags)
    X = np.concatenate([counts, observed[:, :, None]], axis=2)
    return X, np.asarray(series.values, dtype=np.float64), series.timestamps
