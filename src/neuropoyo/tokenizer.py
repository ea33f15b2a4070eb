"""Turn one window of a recording into POYO tokens (paper sections 2.1-2.4, appendix A.2-A.3).

A window is ``recording.slice(t, t + T)`` (times relative to its start). Its tokens are:

* inputs: one token per spike (unit, time), plus a START and an END delimiter for every unit of the
  recording at the edges of each span the window observed (its domain clipped to ``[0, T]``), so
  silent units are seen and a gap in the data is never read as silence;
* latents: a fixed grid of learned latent tokens with timestamps (see :func:`latent_grid`);
* queries: one per behavior sample inside the observed spans, for each configured readout stream,
  with its target, loss weight and evaluation flag.

Everything is vectorised numpy: no Python loop runs over spikes, units or samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from neuropoyo.errors import MissingKeyError
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries

SPIKE, START, END = 0, 1, 2  # input_token_type values
LATENT_TIMINGS = ("uniform", "linspace", "bin_centers")  # "linspace" = "uniform" (model config name)
TRIALS = "trials"  # eval interval name meaning the recording's trials

INPUT_KEYS = ("input_unit_index", "input_timestamps", "input_token_type", "input_mask")
LATENT_KEYS = ("latent_index", "latent_timestamps")
OUTPUT_KEYS = ("output_session_index", "output_timestamps", "output_decoder_index", "output_mask")
MODEL_KEYS = INPUT_KEYS + LATENT_KEYS + OUTPUT_KEYS  # the model's forward arguments
TARGET_KEYS = ("target_values", "target_weights", "eval_mask", "output_sample_index")
QUERY_KEYS = OUTPUT_KEYS + TARGET_KEYS  # every per-query field, all with P rows


def latent_grid(
    *,
    num_latent_timestamps: int,
    latents_per_timestamp: int,
    context_length_s: float,
    timing: str = "uniform",
) -> tuple[np.ndarray, np.ndarray]:
    """The latent tokens: (N,) int64 embedding index and (N,) float64 timestamps.

    N = n * m with n = num_latent_timestamps and m = latents_per_timestamp, timestamp-major: latent j
    sits at t_{j // m} with embedding index j % m, so tokens sharing a timestamp all have different
    embeddings e_0..e_{m-1} and the same set is reused at every timestamp (paper A.3: 256 latents =
    8 timestamps x 32 embeddings). ``timing="uniform"`` (alias ``"linspace"``) gives
    t_k = k T / (n - 1), i.e. linspace(0, T, n) (t_0 = 0 when n = 1); ``"bin_centers"`` gives
    t_k = (k + 0.5) T / n.
    """
    n, m = num_latent_timestamps, latents_per_timestamp
    if n < 1 or m < 1:
        raise ValueError(f"latent_grid: need at least 1 timestamp and 1 latent each, got {n} and {m}")
    if timing in ("uniform", "linspace"):
        times = np.linspace(0.0, context_length_s, n)
    elif timing == "bin_centers":
        times = (np.arange(n) + 0.5) * context_length_s / n
    else:
        raise ValueError(f"latent_grid: unknown timing {timing!r}; use one of {LATENT_TIMINGS}")
    return np.tile(np.arange(m, dtype=np.int64), n), np.repeat(times, m)


def input_tokens(
    window: Recording, *, observed: Intervals, unit_index: np.ndarray
) -> dict[str, np.ndarray]:
    """The INPUT_KEYS arrays (M,): spikes inside ``observed``, then START tokens, then END tokens.

    unit_index: (U,) global rows of the window's units. Delimiters: for each observed span k
    (span-major) and each unit u, START at the span's start and END at its end: K * U of each.
    """
    spikes = window.spikes
    keep = observed.contains(spikes.times)
    n_units, n_spans = unit_index.size, len(observed)
    units = np.concatenate([unit_index[spikes.unit_index[keep]], np.tile(unit_index, 2 * n_spans)])
    times = np.concatenate(
        [spikes.times[keep], np.repeat(observed.start, n_units), np.repeat(observed.end, n_units)]
    )
    counts = [int(keep.sum()), n_spans * n_units, n_spans * n_units]
    return {
        "input_unit_index": units,
        "input_timestamps": times.astype(np.float32),
        "input_token_type": np.repeat(np.array([SPIKE, START, END], dtype=np.int64), counts),
        "input_mask": np.ones(units.size, dtype=bool),
    }


def stream_queries(
    stream: TimeSeries, *, observed: Intervals, decoder_index: int, dim: int
) -> dict[str, np.ndarray]:
    """Queries at the samples of one behavior stream inside ``observed``.

    Returns output_timestamps (P,) float64, output_decoder_index (P,) int64, target_values (P, dim)
    float32 (zero-padded past the stream's dim) and output_sample_index (P,) int64 (row in ``stream``).
    """
    sample = np.flatnonzero(observed.contains(stream.timestamps))
    values = np.zeros((sample.size, dim), dtype=np.float32)
    values[:, : stream.dim] = stream.values[sample]
    return {
        "output_timestamps": stream.timestamps[sample],
        "output_decoder_index": np.full(sample.size, decoder_index, dtype=np.int64),
        "target_values": values,
        "output_sample_index": sample.astype(np.int64),
    }


def in_spans(times: np.ndarray, spans: Intervals | None) -> np.ndarray:
    """(P,) bool: whether each time lies in ``spans`` (may overlap; None = no spans)."""
    if spans is None:
        return np.zeros(times.shape, dtype=bool)
    return spans.merged().contains(times)


def interval_weights(
    times: np.ndarray, *, intervals: Mapping[str, Intervals], weights: Mapping[str, float]
) -> np.ndarray:
    """(P,) float32 product of the weights of the named intervals holding each time (1 when none)."""
    out = np.ones(times.shape, dtype=np.float32)
    for name, weight in weights.items():
        out[in_spans(times, intervals.get(name))] *= weight
    return out


def successful_trials(window: Recording) -> Intervals:
    """The window's trials whose ``success`` column is truthy."""
    trials = window.trials
    if "success" not in trials.columns:
        raise MissingKeyError(
            f"{window.recording_id}: trials have no 'success' column (columns: "
            f"{sorted(trials.columns)}); use eval_successful_only=False for this recording"
        )
    return trials.select(trials.columns["success"].astype(bool))


def eval_spans(window: Recording, name: str) -> Intervals | None:
    """The named evaluation spans: ``"trials"`` means the window's trials; None when absent."""
    return window.trials if name == TRIALS else window.intervals.get(name)


def evaluation_mask(
    recording: Recording,
    times: np.ndarray,
    *,
    eval_intervals: tuple[str, ...] | None,
    successful_only: bool,
) -> np.ndarray:
    """(P,) bool: whether each time (in the recording's frame) counts for evaluation: inside any of
    the named ``eval_intervals`` (everywhere when None) and, with ``successful_only``, inside a
    successful trial. POYO and the baselines score exactly these samples."""
    if eval_intervals is None:
        mask = np.ones(times.shape, dtype=bool)
    else:
        mask = np.zeros(times.shape, dtype=bool)
        for name in eval_intervals:
            mask |= in_spans(times, eval_spans(recording, name))
    if successful_only:
        mask &= in_spans(times, successful_trials(recording))
    return mask


@dataclass(frozen=True, kw_only=True, eq=False)
class Tokenizer:
    """Tokenizes windows of recordings for the POYO model.

    readouts: behavior stream name -> index of its decoder in the model's readout list.
    latent_index, latent_timestamps: (N,) latent grid (see :func:`latent_grid`).
    context_length_s: T, the window length the model sees.
    interval_weights: interval name -> loss weight; a sample's weight is the product over the named
        intervals holding it (1 when none), e.g. ``{"reach": 5.0}`` (paper A.4.3).
    eval_intervals: an output counts for evaluation when it lies in any of these named intervals
        (``"trials"`` = the recording's trials); None counts the whole window.
    eval_successful_only: additionally require a trial with a truthy ``success`` column around the
        output (paper A.5: reaching segments of successful trials).
    """

    readouts: Mapping[str, int]
    latent_index: np.ndarray
    latent_timestamps: np.ndarray
    context_length_s: float = 1.0
    interval_weights: Mapping[str, float] = field(default_factory=dict)
    eval_intervals: tuple[str, ...] | None = None
    eval_successful_only: bool = False

    def __post_init__(self):
        index = np.array(self.latent_index, dtype=np.int64).reshape(-1)
        times = np.array(self.latent_timestamps, dtype=np.float32).reshape(-1)
        if index.shape != times.shape:
            raise ValueError(f"tokenizer: {index.size} latent indices but {times.size} timestamps")
        if not self.context_length_s > 0:
            raise ValueError(f"tokenizer: context_length_s must be > 0, got {self.context_length_s}")
        if any(int(d) < 0 for d in self.readouts.values()):
            raise ValueError(f"tokenizer: decoder indices must be >= 0, got {dict(self.readouts)}")
        if isinstance(self.eval_intervals, str):
            raise TypeError("tokenizer: eval_intervals must be a tuple of names, not a single str")
        index.flags.writeable = times.flags.writeable = False  # shared by every window
        object.__setattr__(self, "latent_index", index)
        object.__setattr__(self, "latent_timestamps", times)
        object.__setattr__(self, "readouts", {k: int(v) for k, v in self.readouts.items()})
        object.__setattr__(self, "interval_weights", dict(self.interval_weights))
        if self.eval_intervals is not None:
            object.__setattr__(self, "eval_intervals", tuple(self.eval_intervals))

    def observed_spans(self, window: Recording) -> Intervals:
        """The window's recorded spans clipped to the context ``[0, T]``, touching spans fused."""
        return window.domain.clip(0.0, self.context_length_s).merged()

    def tokenize(
        self, window: Recording, *, unit_index: np.ndarray, session_index: int
    ) -> dict[str, np.ndarray]:
        """Tokens of one window, unpadded: the MODEL_KEYS and TARGET_KEYS arrays.

        window: a slice of a recording, times relative to its start.
        unit_index: (U,) global vocabulary rows of the window's units, in unit table order.
        session_index: global vocabulary row of the window's session.
        Returns input_* (M,), latent_* (N,), output_*, target_weights, eval_mask,
        output_sample_index (P,) and target_values (P, D).
        """
        unit_index = np.asarray(unit_index, dtype=np.int64).reshape(-1)
        if unit_index.size != len(window.units):
            raise ValueError(
                f"{window.recording_id}: unit_index has {unit_index.size} rows but the window has "
                f"{len(window.units)} units; pass vocab.index(unit_keys(recording))"
            )
        observed = self.observed_spans(window)
        return {
            **input_tokens(window, observed=observed, unit_index=unit_index),
            "latent_index": self.latent_index,
            "latent_timestamps": self.latent_timestamps,
            **self.queries(window, observed=observed, session_index=session_index),
        }

    def queries(
        self, window: Recording, *, observed: Intervals, session_index: int
    ) -> dict[str, np.ndarray]:
        """The QUERY_KEYS arrays: one query per readout sample inside ``observed``, stream by stream.

        Readout streams the window lacks are skipped. target_values is (P, D) with D the largest dim
        among the window's readout streams, zero-padded.
        """
        streams = {name: window.behavior[name] for name in self.readouts if name in window.behavior}
        dim = max((stream.dim for stream in streams.values()), default=0)
        # The empty part fixes dtypes and shapes when the window has no readout stream.
        empty = TimeSeries(np.zeros(0), np.zeros((0, dim)))
        parts = [stream_queries(empty, observed=observed, decoder_index=0, dim=dim)]
        parts += [
            stream_queries(stream, observed=observed, decoder_index=self.readouts[name], dim=dim)
            for name, stream in streams.items()
        ]
        queries = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        times = queries.pop("output_timestamps")
        return {
            **queries,
            "output_timestamps": times.astype(np.float32),
            "output_session_index": np.full(times.size, session_index, dtype=np.int64),
            "output_mask": np.ones(times.size, dtype=bool),
            "target_weights": interval_weights(
                times, intervals=window.intervals, weights=self.interval_weights
            ),
            "eval_mask": self.eval_mask(window, times),
        }

    def eval_mask(self, window: Recording, times: np.ndarray) -> np.ndarray:
        """(P,) bool: whether each output time counts for evaluation."""
        return evaluation_mask(
            window,
            times,
            eval_intervals=self.eval_intervals,
            successful_only=self.eval_successful_only,
        )
