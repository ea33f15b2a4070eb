"""Resume checkpoints of a training run: a model directory plus ``trainer.pt`` (optimizer state,
step, random states) — only tensors, numbers and strings, read back with
``torch.load(weights_only=True)``. Rewritten all through a run, a checkpoint is published with
:func:`neuropoyo.io.publish_dir`: the path is a symlink to a complete hidden version, switched
atomically, so even a crash at any moment leaves a complete checkpoint to resume from.
"""

from __future__ import annotations

from pathlib import Path

import torch

from neuropoyo.io import publish_dir, published_dir
from neuropoyo.trained import TrainedModel, write_model_files

TRAINER_FILE = "trainer.pt"


def save_checkpoint(trained: TrainedModel, trainer_state: dict, folder: str | Path) -> Path:
    """A model directory plus ``trainer.pt`` (optimizer state, step, random states), published
    with :func:`neuropoyo.io.publish_dir`: a crash at any moment leaves a complete checkpoint."""

    def write(tmp: Path) -> None:
        write_model_files(tmp, trained)
        torch.save(trainer_state, tmp / TRAINER_FILE)

    return publish_dir(folder, write)


def load_trainer_state(folder: str | Path) -> dict:
    """The ``trainer.pt`` of a checkpoint, read without executing code."""
    return torch.load(published_dir(folder) / TRAINER_FILE, weights_only=True)
