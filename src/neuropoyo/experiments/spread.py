"""Means and spreads over seeds for the experiments' tables and figures: the sample standard
deviation (n - 1), a ``mean ± sd`` cell, and a cell of paired differences."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1), 0 for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def mean_and_spread(values: Sequence[float]) -> str:
    """``mean ± sd`` (sample sd) to 4 decimals, or the value alone when there is one."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {sample_sd(values):.4f}"


def paired_cell(differences: Sequence[float]) -> str:
    """``mean ± sd (k/n above 0)`` of paired differences (one per seed, or per seed and recording)."""
    d = np.asarray(differences, dtype=float)
    return f"{mean_and_spread(list(d))} ({int((d > 0).sum())}/{d.size} above 0)"
