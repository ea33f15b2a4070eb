"""Many recordings -> training and evaluation batches: the recording set, samplers, transforms, loaders."""

from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.pipeline.loader import (
    WindowDataset,
    collate_windows,
    evaluation_pipeline,
    training_pipeline,
    window_loader,
)
from neuropoyo.pipeline.recordings import RecordingSet
from neuropoyo.pipeline.samplers import (
    EpochBatches,
    RandomWindowSampler,
    RankBatches,
    Window,
    balanced_shares,
    batches_of,
    random_windows,
    sliding_windows,
)
from neuropoyo.pipeline.transforms import Compose, Sample

__all__ = [
    "AugmentConfig",
    "Compose",
    "EpochBatches",
    "LossConfig",
    "RandomWindowSampler",
    "RankBatches",
    "RecordingSet",
    "Sample",
    "Window",
    "WindowDataset",
    "balanced_shares",
    "batches_of",
    "collate_windows",
    "evaluation_pipeline",
    "random_windows",
    "sliding_windows",
    "training_pipeline",
    "window_loader",
]
