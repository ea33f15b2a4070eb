"""Behavior z-scoring shared by every recording of one brainset (paper A.4.3), and the removal of
periods of extreme acceleration from training (Appendix B.1)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries
from neuropoyo.errors import DataError, MissingKeyError

SCALES = ("per_dim", "lab_scalar")


@dataclass(frozen=True)
class Scale:
    """Per-dimension mean and standard deviation of one behavior stream, tuples of D floats (one
    value repeated D times for a ``lab_scalar`` scale)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Normalizer:
    """brainset -> stream -> Scale, computed on training data and stored with the model."""

    scales: Mapping[str, Mapping[str, Scale]]

    @classmethod
    def fit(
        cls, samples: Mapping[tuple[str, str], list[np.ndarray]], *, scale: str = "per_dim"
    ) -> "Normalizer":
        """Scales from (brainset, stream) -> list of (N_i, D) training samples of each recording.

        scale: ``"per_dim"``, a mean and a std per dimension; ``"lab_scalar"``, the paper's
        lab-level z-scoring: one mean and one std over every value (all dimensions, all
        recordings) of the stream in the brainset. Either way, all recordings are pooled.
        """
        if scale not in SCALES:
            raise ValueError(f"normalizer: unknown scale {scale!r}; use one of {list(SCALES)}")
        axis = 0 if scale == "per_dim" else None
        scales: dict[str, dict[str, Scale]] = defaultdict(dict)
        for (brainset, stream), chunks in samples.items():
            values = np.concatenate([np.asarray(c, dtype=np.float64) for c in chunks])
            if values.shape[0] < 2:
                raise DataError(
                    f"normalizer: brainset {brainset!r} has {values.shape[0]} training sample(s) of "
                    f"{stream!r}; need at least 2 to compute a scale (check the recordings' train split "
                    "and their behavior timestamps: `neuropoyo inspect FILE`)"
                )
            dims = (values.shape[1],)
            mean = np.broadcast_to(values.mean(axis=axis), dims)
            std = np.broadcast_to(values.std(axis=axis), dims)
            std = np.where(std > 0, std, 1.0)
            scales[brainset][stream] = Scale(tuple(map(float, mean)), tuple(map(float, std)))
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
                behavior[name] = dataclasses.replace(stream, values=values.astype(np.float32))
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
    stream: TimeSeries,
    *,
    factor: float,
    quantile: float = 0.99,
    pad_s: float = 0.0,
    reference: Intervals | None = None,
) -> Intervals:
    """Spans around samples whose acceleration is extreme, to be left out of the training loss.

    Acceleration is the finite difference of the velocity stream over consecutive samples; a sample
    is extreme when the norm of its acceleration exceeds ``factor`` times its ``quantile`` (default:
    twice the 99th percentile), which flags glitches and artefacts but never the ordinary peaks of a
    reach. The quantile is taken over the steps whose two samples both lie in ``reference`` (pass
    the training split, so held-out data never set it; None: the whole stream); no such step, no
    spans. Extreme steps are found over the whole stream, each giving a span of
    +- max(pad_s, step) around it.
    """
    if len(stream) < 3:
        return Intervals.empty()
    dt = np.diff(stream.timestamps)
    accel = np.linalg.norm(np.diff(stream.values.astype(np.float64), axis=0), axis=1) / dt
    steps = accel
    if reference is not None:
        inside = reference.merged().contains(stream.timestamps)
        steps = accel[inside[:-1] & inside[1:]]
        if steps.size == 0:
            return Intervals.empty()
    threshold = factor * np.quantile(steps, quantile)
    if threshold <= 0:
        return Intervals.empty()
    extreme = np.flatnonzero(accel > threshold)
    centers = 0.5 * (stream.timestamps[extreme] + stream.timestamps[extreme + 1])
    half = np.maximum(pad_s, dt[extreme])
    return Intervals(centers - half, centers + half).merged()
