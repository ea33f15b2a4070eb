"""Unit dropout (paper A.4.2): train on a random subset of the population, at least 30 units."""

from __future__ import annotations

import dataclasses

import numpy as np

from neuropoyo.data.recording import Recording, Spikes, Units


def unit_dropout(
    window: Recording, unit_rows: np.ndarray, rng: np.random.Generator, *, min_units: int = 30
) -> tuple[Recording, np.ndarray]:
    """Keep a random subset of the window's units; returns the window and its (K,) global rows.

    K is uniform in [min(min_units, U), U]; a population of at most ``min_units`` is kept whole.
    Dropped units lose their spikes and, since they leave the unit table, their delimiters.
    """
    n_units = len(window.units)
    if n_units <= min_units:
        return window, unit_rows
    n_keep = int(rng.integers(min_units, n_units + 1))
    keep = np.sort(rng.choice(n_units, size=n_keep, replace=False))
    new_index = np.full(n_units, -1, dtype=np.int32)
    new_index[keep] = np.arange(n_keep, dtype=np.int32)
    spikes = window.spikes.select(new_index[window.spikes.unit_index] >= 0)
    units = Units(window.units.ids[keep], {k: v[keep] for k, v in window.units.columns.items()})
    window = dataclasses.replace(
        window, spikes=Spikes(spikes.times, new_index[spikes.unit_index]), units=units
    )
    return window, np.asarray(unit_rows)[keep]
