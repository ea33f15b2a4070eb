"""Behavior z-scoring shared by every recording of one brainset (paper A.4.3), and the removal of
periods of extreme acceleration from training (Appendix B.1)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from neuropoyo.errors import MissingKeyError
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries


@dataclass(frozen=True)
class Scale:
    """Per-dimension mean and standard deviation of one behavior stream, lists of D floats."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Normalizer:
    """brainset -> stream -> Scale, computed on training data and stored with the model."""

    scales: Mapping[str, Mapping[str, Scale]]

    @classmethod
    def fit(cls, samples: Mapping[tuple[str, str], list[np.ndarray]]) -> "Normalizer":
        """Scales from (brainset, stream) -> list of (N_i, D) training samples of each recording."""
        scales: dict[str, dict[str, Scale]] = defaultdict(dict)
        for (brainset, stream), chunks in samples.items():
            values = np.concatenate([np.asarray(c, dtype=np.float64) for c in chunks])
            if values.shape[0] < 2:
                raise ValueError(
                    f"normalizer: brainset {brainset!r} has {values.shape[0]} training sample(s) of "
                    f"{stream!r}; need at least 2 to compute a scale"
                )
            std = values.std(axis=0)
            std = np.where(std > 0, std, 1.0)
            scales[brainset][stream] = Scale(tuple(values.mean(axis=0)), tuple(std))
        return cls(dict(scales))

    def scale(self, brainset: str, stream: str) -> Scale:
        try:
            return self.scales[brainset][stream]
        except KeyError:
            raise MissingKeyError(
                f"normalizer: no scale for stream {stream!r} of brainset {brainset!r}; the model was "
                f"fitted on {sorted(self.scales)}. Finetune on this brainset to add it."
            ) from None

    def normalize(self, window: Recording, streams) -> Recording:
        """The window with the named behavior streams z-scored (float32)."""
        behavior = dict(window.behavior)
        for name in streams:
            if name in behavior:
                s = self.scale(window.info.brainset, name)
                stream = behavior[name]
                values = (stream.values - np.array(s.mean)) / np.array(s.std)
                behavior[name] = TimeSeries(stream.timestamps, values.astype(np.float32), stream.unit)
        return dataclasses.replace(window, behavior=behavior)

    def denormalize(self, values: np.ndarray, brainset: str, stream: str) -> np.ndarray:
        """(N, D) normalized values back in the stream's own units."""
        s = self.scale(brainset, stream)
        return values * np.array(s.std) + np.array(s.mean)

    def to_dict(self) -> dict:
        return {
            brainset: {name: dataclasses.asdict(s) for name, s in streams.items()}
            for brainset, streams in self.scales.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Normalizer":
        return cls(
            {
                brainset: {
                    name: Scale(tuple(s["mean"]), tuple(s["std"])) for name, s in streams.items()
                }
                for brainset, streams in data.items()
            }
        )


def extreme_acceleration_spans(
    stream: TimeSeries, *, factor: float, quantile: float = 0.99, pad_s: float = 0.0
) -> Intervals:
    """Spans around samples whose acceleration is extreme, to be left out of the training loss.

    Acceleration is the finite difference of the velocity stream over consecutive samples; a sample
    is extreme when the norm of its acceleration exceeds ``factor`` times its ``quantile`` over the
    stream (default: twice the 99th percentile), which flags glitches and artefacts but never the
    ordinary peaks of a reach. Each extreme step gives a span of +- max(pad_s, step) around it.
    """
    if len(stream) < 3:
        return Intervals.empty()
    dt = np.diff(stream.timestamps)
    accel = np.linalg.norm(np.diff(stream.values.astype(np.float64), axis=0), axis=1) / dt
    threshold = factor * np.quantile(accel, quantile)
    if threshold <= 0:
        return Intervals.empty()
    extreme = np.flatnonzero(accel > threshold)
    centers = 0.5 * (stream.timestamps[extreme] + stream.timestamps[extreme + 1])
    half = np.maximum(pad_s, dt[extreme])
    return Intervals(centers - half, centers + half).merged()
