"""Decoding scores: the coefficient of determination (the paper's), the median Euclidean error
(the place-cell literature's position error, in the stream's own unit), and for classification
tasks accuracy and balanced accuracy of decisions pooled per trial."""

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


def median_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Median over samples of the Euclidean distance between true and predicted (N, D) or (N,)
    values, in their unit (e.g. pixels for a position)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"median error: true values {y_true.shape} and predictions {y_pred.shape} differ")
    if y_true.shape[0] < 1:
        raise ValueError("median error: need at least 1 sample, got 0")
    difference = (y_true - y_pred).reshape(y_true.shape[0], -1)
    return float(np.median(np.sqrt(np.sum(difference**2, axis=1))))


def pooled_decisions(logits: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One class decision per group of samples (e.g. per trial): the argmax of the mean
    log-probability of the group's samples. logits: (N, K); groups: (N,) int, samples of group
    < 0 each decide alone. Returns (decided class (G,), the first sample row of each group (G,)),
    groups in the order of their first sample."""
    logits = np.asarray(logits, dtype=np.float64)
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    groups = np.asarray(groups).reshape(-1)
    alone = groups < 0
    keys = np.where(alone, -1 - np.arange(groups.size), groups)  # a distinct key per lone sample
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    sums = np.zeros((first.size, logits.shape[1]))
    np.add.at(sums, inverse, log_p)
    order = np.argsort(first)  # groups in the order of their first sample
    return sums.argmax(axis=1)[order], first[order]


def accuracy(labels: np.ndarray, decided: np.ndarray) -> float:
    """Fraction of decisions equal to the labels (both (G,) class indices)."""
    labels, decided = np.asarray(labels).reshape(-1), np.asarray(decided).reshape(-1)
    if labels.size == 0:
        raise ValueError("accuracy: need at least 1 decision, got 0")
    return float(np.mean(labels == decided))


def balanced_accuracy(labels: np.ndarray, decided: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of the fraction of their decisions that are right
    (the recall per class): chance is 1 / K whatever the class frequencies."""
    labels, decided = np.asarray(labels).reshape(-1), np.asarray(decided).reshape(-1)
    if labels.size == 0:
        raise ValueError("balanced accuracy: need at least 1 decision, got 0")
    return float(np.mean([np.mean(decided[labels == c] == c) for c in np.unique(labels)]))
