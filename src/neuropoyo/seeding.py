"""Independent random streams: one tag per use, so no two uses ever share a stream.

``np.random.default_rng([s, e])`` equals ``default_rng([s, e, 0])`` (trailing zeros are dropped
from the entropy), and with ``s = 0`` also ``default_rng(0)``: keys built by appending numbers to a
seed collide. A :class:`numpy.random.SeedSequence` with the seed as entropy and ``(tag, *key)`` as
its spawn key gives a distinct stream for every (tag, key).
"""

from __future__ import annotations

import numpy as np

SPLITS = 1  # train / valid / test assignment of one recording
EPOCH_WINDOWS = 2  # the random training windows of one epoch
AUGMENT = 3  # unit dropout and output sampling of one training window
TORCH = 4  # the seed of torch's generator (weights init, dropout)


def stream(seed: int, tag: int, *key: int) -> np.random.Generator:
    """The generator of use ``tag`` at ``key`` (e.g. epoch, position) for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(tag, *key)))


def torch_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for ``torch.manual_seed`` drawn from its own stream (``key``: e.g. the rank
    of a distributed process, which needs dropout masks of its own)."""
    return int(np.random.SeedSequence(seed, spawn_key=(TORCH, *key)).generate_state(2, np.uint64)[0] >> 1)
