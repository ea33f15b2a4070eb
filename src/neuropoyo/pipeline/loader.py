"""Windows -> batches: the composed pipelines and the DataLoaders that run them.

:class:`WindowDataset` is a map-style dataset indexed by :class:`Window`; a batch sampler says which
windows go together (:class:`EpochBatches` for training: every epoch in one pass, so the workers
never restart; :func:`batches_of` sliding windows for evaluation). A training window's augmentation
draws from the stream named by its key, so results do not depend on the number of workers.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from neuropoyo import seeding
from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.pipeline.recordings import RecordingSet
from neuropoyo.pipeline.samplers import Window
from neuropoyo.pipeline.transforms import (
    AbsoluteQueryTimes,
    Compose,
    LossWeights,
    MarkExcluded,
    RestrictToSplit,
    SampleOutputs,
    Tokenize,
    UnitDropout,
    ZScore,
    ZScoreTraces,
)
from neuropoyo.tokens.collate import collate
from neuropoyo.tokens.tokenizer import Tokenizer


def training_pipeline(
    recordings: RecordingSet, *, context_length_s: float, loss: LossConfig, augment: AugmentConfig
) -> Compose:
    """Training split only -> excluded spans -> z-score (behavior, traces) -> unit dropout -> tokens
    -> weights -> outputs.

    Each recording's loss weights are its source's interval_weights, else ``loss.interval_weights``;
    unit dropout only when ``augment.unit_dropout``."""
    readouts = recordings.decoder_index
    dropout = [UnitDropout(augment.unit_dropout_min)] if augment.unit_dropout else []
    return Compose(
        [
            RestrictToSplit("train"),
            MarkExcluded(recordings.excluded_spans(loss.exclude_acceleration_factor)),
            ZScore(recordings.normalizer, readouts),
            ZScoreTraces(recordings.trace_scales),
            *dropout,
            Tokenize(Tokenizer(readouts=readouts, context_length_s=context_length_s)),
            LossWeights(
                loss.interval_weights, readouts, per_recording=[o.interval_weights for o in recordings.options]
            ),
            SampleOutputs(loss.output_samples),
        ]
    )


def evaluation_pipeline(recordings: RecordingSet, *, context_length_s: float, split: str) -> Compose:
    """One split only -> z-score (behavior, traces) -> tokens at every sample -> absolute query times."""
    readouts = recordings.decoder_index
    return Compose(
        [
            RestrictToSplit(split),
            ZScore(recordings.normalizer, readouts),
            ZScoreTraces(recordings.trace_scales),
            Tokenize(Tokenizer(readouts=readouts, context_length_s=context_length_s)),
            AbsoluteQueryTimes(readouts),
        ]
    )


class WindowDataset(torch.utils.data.Dataset):
    """``dataset[window]`` -> (window, tokens): the window read and passed through ``pipeline``.

    A window with a key (a training draw) gets the generator (seed, AUGMENT, *key); one without is
    transformed without randomness.
    """

    def __init__(self, recordings: RecordingSet, pipeline: Compose, *, seed: int = 0):
        self.recordings, self.pipeline, self.seed = recordings, pipeline, seed

    def __getitem__(self, window: Window) -> tuple[Window, dict[str, np.ndarray]]:
        rng = seeding.stream(self.seed, seeding.AUGMENT, *window.key) if window.key else None
        sample = self.pipeline(self.recordings.read(window), rng)
        return window, dict(sample.tokenized())


def collate_windows(items: Sequence[tuple[Window, dict]]) -> tuple[list[Window], dict[str, torch.Tensor]]:
    """(windows, padded batch) of a list of dataset items."""
    windows, tokens = zip(*items)
    return list(windows), collate(list(tokens))


def window_loader(
    dataset: WindowDataset,
    batches: Iterable[list[Window]],
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader yielding (windows, padded batch) for each list of windows in ``batches``.

    Workers persist if the loader is iterated again. It has a generator of its own: starting a pass
    draws worker seeds from it, never from torch's global generator (which dropout uses), so a
    resumed run's dropout masks equal an uninterrupted run's.
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate_windows,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
    )
