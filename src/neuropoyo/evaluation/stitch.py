"""Stitching: average the predictions of overlapping windows per behavior sample (Appendix A.2)."""

from __future__ import annotations

import numpy as np


class Stitcher:
    """Accumulates window predictions for the N samples of one behavior stream.

    Each window reports the stream rows it predicted (``sample_index``) and its predictions; a sample
    predicted by several windows gets the mean of them.
    """

    def __init__(self, n_samples: int, dim: int):
        self.sums = np.zeros((n_samples, dim), dtype=np.float64)
        self.counts = np.zeros(n_samples, dtype=np.int64)

    def add(self, sample_index: np.ndarray, predictions: np.ndarray) -> None:
        """sample_index: (P,) int rows of the stream; predictions: (P, D)."""
        np.add.at(self.sums, sample_index, predictions)
        np.add.at(self.counts, sample_index, 1)

    @property
    def covered(self) -> np.ndarray:
        """(N,) bool: samples predicted by at least one window."""
        return self.counts > 0

    def mean(self) -> np.ndarray:
        """(N, D) averaged predictions; NaN where no window predicted the sample."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None]
