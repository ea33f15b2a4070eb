"""Turn one window of a recording into POYO tokens (paper sections 2.1-2.4, appendix A.2-A.3).

A window is ``recording.slice(t, t + T)`` (times relative to its start). Its tokens are:

* inputs: one token per spike (unit, time); one value token per frame and trace unit (unit, frame
  time, value: a calcium dF/F sample or a binned count, the POYO+ tokenisation); plus a START and an
  END delimiter for every unit of the recording at the edges of each span the window observed (its
  domain clipped to ``[0, T]``), so silent units are seen and a gap in the data is never read as
  silence;
* queries: one per behavior sample inside the observed spans, for each configured readout stream,
  with its target and its row in the window's stream.

The latent grid is the model's (:mod:`neuropoyo.model.latents`); loss weights and output sampling are
pipeline transforms; which samples count for evaluation is decided in :mod:`neuropoyo.evaluation`.
Everything is vectorised numpy: no Python loop runs over spikes, units or samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries
from neuropoyo.schema import END, SPIKE, START, VALUE


def input_tokens(
    window: Recording, *, observed: Intervals, unit_index: np.ndarray
) -> dict[str, np.ndarray]:
    """The INPUT_KEYS arrays (M,): spikes inside ``observed``, then value tokens (frame-major),
    then START tokens, then END tokens.

    unit_index: (U,) global rows of the window's units. Value tokens: every frame of the window's
    traces inside ``observed`` times every trace unit, ``input_values`` holding the sample (0 for
    the other tokens). Delimiters: for each observed span k (span-major) and each unit u, START at
    the span's start and END at its end: K * U of each.
    """
    spikes, traces = window.spikes, window.traces
    keep = observed.contains(spikes.times)
    frames = np.flatnonzero(observed.contains(traces.timestamps))
    n_units, n_spans, n_columns = unit_index.size, len(observed), traces.n_units
    units = np.concatenate(
        [
            unit_index[spikes.unit_index[keep]],
            np.tile(unit_index[traces.unit_index], frames.size),
            np.tile(unit_index, 2 * n_spans),
        ]
    )
    times = np.concatenate(
        [
            spikes.times[keep],
            np.repeat(traces.timestamps[frames], n_columns),
            np.repeat(observed.start, n_units),
            np.repeat(observed.end, n_units),
        ]
    )
    counts = [int(keep.sum()), frames.size * n_columns, n_spans * n_units, n_spans * n_units]
    values = np.zeros(units.size, dtype=np.float32)
    values[counts[0] : counts[0] + counts[1]] = traces.values[frames].reshape(-1)
    return {
        "input_unit_index": units,
        "input_timestamps": times.astype(np.float32),
        "input_token_type": np.repeat(np.array([SPIKE, VALUE, START, END], dtype=np.int64), counts),
        "input_values": values,
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


@dataclass(frozen=True, kw_only=True, eq=False)
class Tokenizer:
    """Tokenizes windows of recordings for the POYO model.

    readouts: behavior stream name -> index of its decoder in the model's readout list.
    context_length_s: T, the window length the model sees.
    """

    readouts: Mapping[str, int]
    context_length_s: float = 1.0

    def __post_init__(self):
        if not self.context_length_s > 0:
            raise ValueError(f"tokenizer: context_length_s must be > 0, got {self.context_length_s}")
        if any(int(d) < 0 for d in self.readouts.values()):
            raise ValueError(f"tokenizer: decoder indices must be >= 0, got {dict(self.readouts)}")
        object.__setattr__(self, "readouts", {k: int(v) for k, v in self.readouts.items()})

    def observed_spans(self, window: Recording) -> Intervals:
        """The window's recorded spans clipped to the context ``[0, T]``, touching spans fused,
        empty ones (``start == end``: no data) left out."""
        spans = window.domain.clip(0.0, self.context_length_s).merged()
        return spans.select(spans.end > spans.start)

    def tokenize(
        self, window: Recording, *, unit_index: np.ndarray, session_index: int
    ) -> dict[str, np.ndarray]:
        """Tokens of one window, unpadded.

        window: a slice of a recording, times relative to its start.
        unit_index: (U,) global vocabulary rows of the window's units, in unit table order.
        session_index: global vocabulary row of the window's session.
        Returns the INPUT_KEYS arrays (M,), the OUTPUT_KEYS arrays and output_sample_index (P,), and
        target_values (P, D).
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
            **self.queries(window, observed=observed, session_index=session_index),
        }

    def queries(
        self, window: Recording, *, observed: Intervals, session_index: int
    ) -> dict[str, np.ndarray]:
        """One query per readout sample inside ``observed``, stream by stream.

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
        }
