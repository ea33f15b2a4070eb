"""Batches of tokenized windows (the per-window dicts of :meth:`Tokenizer.tokenize`).

:func:`collate` pads every field to the batch maximum along each axis (the paper pads to the
longest sequence in the batch, appendix A.2). Padding is 0, so the per-window masks (all True) come
out False exactly on padding. A packed layout (all windows concatenated, with offsets) would be
another function over the same per-window dicts.
"""

from __future__ import annotations

import numpy as np
import torch


def _check_same_fields(samples: list[dict[str, np.ndarray]]) -> None:
    """ValueError unless all samples have the same keys, dtypes and number of axes."""
    if not samples:
        raise ValueError("collate: no samples to batch")
    first = samples[0]
    for i, sample in enumerate(samples[1:], start=1):
        if sample.keys() != first.keys():
            raise ValueError(
                f"collate: sample {i} has keys {sorted(sample)} but sample 0 has {sorted(first)}"
            )
        for key, array in sample.items():
            if array.dtype != first[key].dtype or array.ndim != first[key].ndim:
                raise ValueError(
                    f"collate: {key!r} is {array.dtype} with {array.ndim} axes in sample {i} "
                    f"but {first[key].dtype} with {first[key].ndim} axes in sample 0"
                )


def pad_stack(arrays: list[np.ndarray]) -> np.ndarray:
    """(B, *max shape) stack of ``arrays``, each zero-padded at the end of every axis."""
    shape = np.max([array.shape for array in arrays], axis=0)
    out = np.zeros((len(arrays), *shape), dtype=arrays[0].dtype)
    for row, array in zip(out, arrays):
        row[tuple(slice(0, n) for n in array.shape)] = array
    return out


def collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad a list of per-window dicts into one batch: each (L, ...) field becomes (B, Lmax, ...).

    Padding is 0 (False for masks); dtypes are kept.
    """
    _check_same_fields(samples)
    return {
        key: torch.from_numpy(pad_stack([sample[key] for sample in samples]))
        for key in samples[0]
    }
