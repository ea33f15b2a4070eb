"""The per-window transforms: small callables composed into the training and evaluation pipelines.

A window travels as a :class:`Sample`: the recording inside it (times relative to its start) and
its vocabulary rows, then its tokens. Each transform takes the sample and the window's random
generator (None for evaluation) and returns a new sample::

    training:   RestrictToSplit("train") -> MarkExcluded -> ZScore -> ZScoreTraces -> UnitDropout
                -> Tokenize -> LossWeights -> SampleOutputs
    evaluation: RestrictToSplit(split) -> ZScore -> ZScoreTraces -> Tokenize -> AbsoluteQueryTimes

Transforms never mutate their input; the ones that draw need a generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.normalize import Normalizer
from neuropoyo.data.recording import Recording, Spikes, Traces, Units
from neuropoyo.data.splits import WHOLE_RECORDING
from neuropoyo.pipeline.samplers import Window
from neuropoyo.schema import QUERY_KEYS
from neuropoyo.tokens.tokenizer import Tokenizer

EXCLUDED = "excluded"  # interval name of spans left out of the training loss (weight 0)
ABSOLUTE_TIME = "output_absolute_time"  # (P,) float64 absolute time of each query (evaluation)


@dataclass(frozen=True, eq=False)
class Sample:
    """One window on its way to tokens.

    window: where it was read. data: the recording inside it, times relative to window.start.
    unit_rows: (U,) unit vocabulary rows of data.units. session_row: session vocabulary row.
    tokens: the token arrays, once tokenized.
    """

    window: Window
    data: Recording
    unit_rows: np.ndarray
    session_row: int
    tokens: Mapping[str, np.ndarray] | None = None

    def replace(self, **changes) -> "Sample":
        return dataclasses.replace(self, **changes)

    def tokenized(self) -> Mapping[str, np.ndarray]:
        if self.tokens is None:
            raise ValueError("pipeline: this transform needs tokens; put it after Tokenize")
        return self.tokens


Transform = Callable[[Sample, "np.random.Generator | None"], Sample]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


def _need(rng: np.random.Generator | None, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"pipeline: {name} draws at random and needs a generator")
    return rng


@dataclass(frozen=True)
class RestrictToSplit:
    """Keep only the window's data inside one split (:data:`WHOLE_RECORDING`: keep everything);
    the rest reads as a gap (unobserved)."""

    split: str

    def __call__(self, sample: Sample, rng=None) -> Sample:
        data = sample.data
        if self.split == WHOLE_RECORDING:
            return sample
        return sample.replace(data=data.restrict(data.splits[self.split]))


class MarkExcluded:
    """Add the interval :data:`EXCLUDED` (weight 0 in :class:`LossWeights`) from per-recording spans.

    spans: recording index -> absolute spans to leave out of the loss (e.g. extreme acceleration).
    """

    def __init__(self, spans: Sequence[Intervals]):
        self.spans = list(spans)

    def __call__(self, sample: Sample, rng=None) -> Sample:
        window = sample.window
        excluded = self.spans[window.recording].slice(window.start, window.end)
        intervals = {**sample.data.intervals, EXCLUDED: excluded}
        return sample.replace(data=dataclasses.replace(sample.data, intervals=intervals))


class ZScore:
    """Z-score the readout streams with the scale of the window's brainset."""

    def __init__(self, normalizer: Normalizer, streams: Sequence[str]):
        self.normalizer, self.streams = normalizer, tuple(streams)

    def __call__(self, sample: Sample, rng=None) -> Sample:
        return sample.replace(data=self.normalizer.normalize(sample.data, self.streams))


class ZScoreTraces:
    """Z-score each trace column (calcium dF/F, binned counts) with its recording's scale
    (:attr:`RecordingSet.trace_scales`): every ROI's values then carry information on one scale.
    Raw dF/F, whose baselines and ranges differ by ROI, left the simulated calcium session at valid
    R2 0.00 after 300 steps of the CPU recipe; z-scored, 0.54.

    scales: recording index -> (mean (R,), std (R,)) or None (no traces)."""

    def __init__(self, scales: Sequence[tuple[np.ndarray, np.ndarray] | None]):
        self.scales = list(scales)

    def __call__(self, sample: Sample, rng=None) -> Sample:
        scale = self.scales[sample.window.recording]
        traces = sample.data.traces
        if scale is None or not traces.n_units:
            return sample
        mean, std = scale
        values = (traces.values - mean) / std
        scaled = Traces(traces.timestamps, values.astype(np.float32), traces.unit_index, traces.kind)
        return sample.replace(data=dataclasses.replace(sample.data, traces=scaled))


@dataclass(frozen=True)
class UnitDropout:
    """Train on a random subset of the population (paper A.4.2).

    K units are kept, K uniform in [min(min_units, U), U]; a population of at most ``min_units`` is
    kept whole. Dropped units lose their spikes, trace columns and, since they leave the unit
    table, their delimiters.
    """

    min_units: int = 30

    def __call__(self, sample: Sample, rng: np.random.Generator | None) -> Sample:
        rng = _need(rng, "UnitDropout")
        window = sample.data
        n_units = len(window.units)
        if n_units <= self.min_units:
            return sample
        n_keep = int(rng.integers(self.min_units, n_units + 1))
        keep = np.sort(rng.choice(n_units, size=n_keep, replace=False))
        new_index = np.full(n_units, -1, dtype=np.int32)
        new_index[keep] = np.arange(n_keep, dtype=np.int32)
        spikes = window.spikes.select(new_index[window.spikes.unit_index] >= 0)
        units = Units(window.units.ids[keep], {k: v[keep] for k, v in window.units.columns.items()})
        traces = window.traces
        columns = new_index[traces.unit_index] >= 0
        traces = Traces(traces.timestamps, traces.values[:, columns], new_index[traces.unit_index[columns]], traces.kind)
        data = dataclasses.replace(
            window, spikes=Spikes(spikes.times, new_index[spikes.unit_index]), units=units, traces=traces
        )
        return sample.replace(data=data, unit_rows=np.asarray(sample.unit_rows)[keep])


class Tokenize:
    """The window's tokens (:meth:`Tokenizer.tokenize`)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, sample: Sample, rng=None) -> Sample:
        tokens = self.tokenizer.tokenize(
            sample.data, unit_index=sample.unit_rows, session_index=sample.session_row
        )
        return sample.replace(tokens=tokens)


def query_times(sample: Sample, readouts: Mapping[str, int]) -> np.ndarray:
    """(P,) float64 time of each query, relative to the window start, read from its stream.

    readouts: stream name -> decoder index, as given to the Tokenizer. The float32
    ``output_timestamps`` of the tokens are for the model; weights and stitching use these.
    """
    tokens = sample.tokenized()
    decoder, row = tokens["output_decoder_index"], tokens["output_sample_index"]
    times = np.zeros(decoder.shape, dtype=np.float64)
    for name, index in readouts.items():
        mine = decoder == index
        if mine.any():
            times[mine] = sample.data.behavior[name].timestamps[row[mine]]
    return times


def interval_weights(
    times: np.ndarray, *, intervals: Mapping[str, Intervals], weights: Mapping[str, float]
) -> np.ndarray:
    """(P,) float32 product of the weights of the named intervals holding each time (1 when none)."""
    out = np.ones(times.shape, dtype=np.float32)
    for name, weight in weights.items():
        spans = intervals.get(name)
        if spans is not None:
            out[spans.merged().contains(times)] *= weight
    return out


class LossWeights:
    """``target_weights`` (P,): the product of the weights of the intervals holding each query
    (paper A.4.3: 5 inside reach), 0 inside :data:`EXCLUDED` spans.

    weights: interval name -> weight; per_recording: recording index -> weights that replace them
    for that recording (None: ``weights``), e.g. a dataset source's interval_weights.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        readouts: Mapping[str, int],
        *,
        per_recording: Sequence[Mapping[str, float] | None] = (),
    ):
        self.weights = {**weights, EXCLUDED: 0.0}
        self.per_recording = [None if w is None else {**w, EXCLUDED: 0.0} for w in per_recording]
        self.readouts = dict(readouts)

    def __call__(self, sample: Sample, rng=None) -> Sample:
        recording = sample.window.recording
        own = self.per_recording[recording] if recording < len(self.per_recording) else None
        times = query_times(sample, self.readouts)
        weights = interval_weights(times, intervals=sample.data.intervals, weights=own or self.weights)
        return sample.replace(tokens={**sample.tokenized(), "target_weights": weights})


@dataclass(frozen=True)
class SampleOutputs:
    """Keep at most ``n`` random queries of each readout stream among those of weight > 0 (A.4.3).

    Each stream gets its own budget, so a 1 kHz stream does not crowd out a 100 Hz one, and no slot
    goes to a sample the loss ignores. Kept queries stay in their original order.
    """

    n: int = 100

    def __call__(self, sample: Sample, rng: np.random.Generator | None) -> Sample:
        rng = _need(rng, "SampleOutputs")
        tokens = sample.tokenized()
        decoder, weight = tokens["output_decoder_index"], tokens["target_weights"]
        keep = []
        for index in np.unique(decoder):
            candidates = np.flatnonzero((decoder == index) & (weight > 0))
            if candidates.size > self.n:
                candidates = rng.choice(candidates, size=self.n, replace=False)
            keep.append(candidates)
        keep = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
        return sample.replace(tokens={**tokens, **{key: tokens[key][keep] for key in QUERY_KEYS}})


class AbsoluteQueryTimes:
    """:data:`ABSOLUTE_TIME` (P,) float64: each query's absolute time, to stitch predictions back."""

    def __init__(self, readouts: Mapping[str, int]):
        self.readouts = dict(readouts)

    def __call__(self, sample: Sample, rng=None) -> Sample:
        times = sample.window.start + query_times(sample, self.readouts)
        return sample.replace(tokens={**sample.tokenized(), ABSOLUTE_TIME: times})
