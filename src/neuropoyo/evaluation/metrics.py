"""Coefficient of determination, the paper's decoding score."""

from __future__ import annotations

import numpy as np


def r2_per_dim(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(D,) R2 of each output dimension: 1 - SS_res / SS_tot around the true mean.

    y_true, y_pred: (N, D) or (N,). A constant dimension scores 1.0 when predicted exactly and 0.0
    otherwise (the scikit-learn convention).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"r2: true values {y_true.shape} and predictions {y_pred.shape} differ")
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    if y_true.shape[0] < 2:
        raise ValueError(f"r2: need at least 2 samples, got {y_true.shape[0]}")
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    exact = ss_res == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, 0.0)
    return np.where(exact, 1.0, score)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R2 averaged uniformly over output dimensions."""
    return float(np.mean(r2_per_dim(y_true, y_pred)))
