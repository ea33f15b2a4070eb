"""Settings of the training pipeline, one dataclass per concern (defaults: the paper's, A.4, B.1).

:class:`LossConfig` says what the loss sees (behavior normalisation, weighted intervals, excluded samples,
sampled outputs); :class:`AugmentConfig` how windows are perturbed. Evaluation settings live with
the evaluation (:class:`neuropoyo.evaluation.selection.EvaluationConfig`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from neuropoyo.data.normalize import SCALES
from neuropoyo.errors import ConfigError
from neuropoyo.settings import from_mapping, weights_by_name


@dataclass(frozen=True)
class LossConfig:
    """What the loss sees.

    normalize: behavior z-scoring (formerly ``scale``); ``"per_dim"`` (default) gives every dimension of a stream its own
        mean and std per brainset, so the MSE weighs each dimension as the per-dimension R2 that is
        reported does; ``"lab_scalar"`` is the paper's (A.4.3): one scalar per lab and stream, which
        keeps the relative size of the dimensions.
    interval_weights: interval name -> loss weight; a sample's weight is the product over the named
        intervals holding it (1 when none), e.g. {reach: 5.0} (A.4.3).
    exclude_acceleration_factor: training samples whose acceleration exceeds this many times its
        99th percentile over the training split get weight 0 (B.1); None keeps every sample.
    output_samples: queries drawn per readout stream and training window among its samples of
        weight > 0 (A.4.3: 100).
    task_weights: readout name -> weight of its queries' loss (default 1 for every readout: a
        continuous readout adds its z-scored squared error, a classification readout its
        cross-entropy, query by query).
    """

    normalize: str = "per_dim"
    interval_weights: Mapping[str, float] = field(default_factory=lambda: {"reach": 5.0})
    exclude_acceleration_factor: float | None = 2.0
    output_samples: int = 100
    task_weights: Mapping[str, float] = field(default_factory=dict)
    RENAMED: ClassVar[dict[str, str]] = {"scale": "normalize"}

    def __post_init__(self):
        if self.normalize not in SCALES:
            raise ConfigError(f"loss.normalize must be one of {', '.join(SCALES)}; got {self.normalize!r}")
        object.__setattr__(self, "interval_weights", weights_by_name(self.interval_weights, field="loss.interval_weights"))
        factor = self.exclude_acceleration_factor
        if factor is not None and not (math.isfinite(factor) and factor > 0):
            raise ConfigError(f"loss.exclude_acceleration_factor must be > 0 or null, got {factor}")
        object.__setattr__(self, "task_weights", weights_by_name(self.task_weights, field="loss.task_weights"))
        if self.output_samples < 1:
            raise ConfigError(
                f"loss.output_samples must be >= 1 (queries per stream and window), got {self.output_samples}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "loss config") -> "LossConfig":
        return from_mapping(cls, data, source=source, section="loss")


@dataclass(frozen=True)
class AugmentConfig:
    """How training windows are perturbed.

    unit_dropout: train on a random subset of each window's units (A.4.2); false turns it off.
    unit_dropout_min: unit dropout keeps a uniform number of units in [min(this, U), U]. Run files
        written before ``unit_dropout`` existed turned it off with ``unit_dropout_min: 1000``; that
        still works (a population of at most that many units is kept whole).
    """

    unit_dropout: bool = True
    unit_dropout_min: int = 30

    def __post_init__(self):
        if self.unit_dropout_min < 1:
            raise ConfigError(f"augment.unit_dropout_min must be >= 1, got {self.unit_dropout_min}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "augment config") -> "AugmentConfig":
        return from_mapping(cls, data, source=source, section="augment")
