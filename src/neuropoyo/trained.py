"""A trained model on disk: model directories, written atomically, loaded without running code.

A model directory holds::

    model.safetensors   weights
    config.json         {"model": POYOConfig, "loss": ..., "augment": ..., "evaluation": ...,
                        "neuropoyo_version": ...}: the network and the settings that fed it
    units.json          unit vocabulary (row i = unit id i)
    sessions.json       session vocabulary
    normalizer.json     behavior scale per brainset and stream

A training run's resume checkpoint (a model directory plus the trainer's state) is
:mod:`neuropoyo.training.checkpoint`.
The best model on validation that a run keeps (``RUN/best``) is a model directory plus
``selection.json`` (the step and the validation R2 that chose it); a run directory given where a
model is expected means that one when it exists, else the last model (``RUN/model``).
A model directory is a plain folder written under a temporary name and renamed into place
(:func:`neuropoyo.io.write_dir_atomic`), so it can be copied and shared as it is. The best model,
rewritten all through a run, is published with :func:`neuropoyo.io.publish_dir`: the path is a
symlink to a complete hidden version, switched atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from neuropoyo import __version__
from neuropoyo.data.normalize import Normalizer
from neuropoyo.errors import CheckpointError
from neuropoyo.io import publish_dir, published_dir, write_dir_atomic
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO
from neuropoyo.settings import sections_from_legacy_data
from neuropoyo.tokens.vocab import Vocabulary

MODEL_FILES = ("model.safetensors", "config.json", "units.json", "sessions.json", "normalizer.json")
SELECTION_FILE = "selection.json"
RUN_MODELS = ("best", "model")  # a run directory's models, in the order a bare run path picks them


@dataclass
class TrainedModel:
    """A POYO network with everything needed to feed it: vocabularies, behavior scales, and the
    settings sections it was trained with (``loss``, ``augment``, ``evaluation``; plain JSON here,
    read into their config classes by the layers that use them)."""

    model: POYO
    unit_vocab: Vocabulary
    session_vocab: Vocabulary
    normalizer: Normalizer
    settings: Mapping[str, Any]


def write_model_files(folder: Path, trained: TrainedModel) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in trained.model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    config = {
        "model": trained.model.config.to_dict(),
        **trained.settings,
        "neuropoyo_version": __version__,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    trained.unit_vocab.save(folder / "units.json")
    trained.session_vocab.save(folder / "sessions.json")
    (folder / "normalizer.json").write_text(json.dumps(trained.normalizer.to_dict(), indent=2))


def save_model(trained: TrainedModel, folder: str | Path) -> Path:
    """Write ``trained`` as a model directory at ``folder``: a plain folder, written atomically."""
    return write_dir_atomic(folder, lambda tmp: write_model_files(tmp, trained))


def publish_model(trained: TrainedModel, folder: str | Path, selection: Mapping[str, Any]) -> Path:
    """A model directory rewritten during a run (the best on validation so far), published with
    :func:`neuropoyo.io.publish_dir`, with ``selection`` (why it was kept) as ``selection.json``."""

    def write(tmp: Path) -> None:
        write_model_files(tmp, trained)
        (tmp / SELECTION_FILE).write_text(json.dumps(dict(selection), indent=2))

    return publish_dir(folder, write)


def model_selection(path: str | Path) -> dict | None:
    """What ``selection.json`` of the model directory of ``path`` says; None for a model that was
    not selected (a last model, an imported one)."""
    file = model_dir(path) / SELECTION_FILE
    return _read_json(file) if file.is_file() else None


def model_dir(path: str | Path) -> Path:
    """The model directory of ``path``: itself, or for a run directory ``path/best`` (the best on
    validation) when it exists, else ``path/model``; for a published directory, the version it
    links to (:func:`neuropoyo.io.published_dir`)."""
    path = Path(path)
    for folder in (published_dir(path), *(published_dir(path / name) for name in RUN_MODELS)):
        if (folder / "model.safetensors").is_file():
            return folder
    raise FileNotFoundError(
        f"{path}: no model here (expected model.safetensors in it or in {path / 'model'}); "
        "train one with `neuropoyo train`"
    )


_DAMAGED = "the model directory is damaged or incomplete: copy it again, or re-save it from its run"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error}); {_DAMAGED}") from None


def _read_vocabulary(path: Path) -> Vocabulary:
    try:
        return Vocabulary.load(path)
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{error}; {_DAMAGED}") from None


def _read_weights(path: Path, model: POYO, source: str) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, checked against ``model`` (built from ``source``) name by name."""
    try:
        weights = load_file(path)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error}); {_DAMAGED}") from None
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in expected]
    problems += [
        f"{k} is {tuple(weights[k].shape)} in the weights but {tuple(v.shape)} by the config"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise CheckpointError(
            f"{path} does not match {source} ({shown}): the two files come from different models; "
            "restore the directory's own config.json or model.safetensors"
        )
    return weights


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> TrainedModel:
    """Read a model directory (or a run directory holding ``model/``)."""
    folder = model_dir(path)
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: incomplete model directory, missing {missing}")
    config = _read_json(folder / "config.json")
    source = str(folder / "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{source}: no \"model\" section; this is not a neuropoyo model directory")
    model = POYO(POYOConfig.from_dict(config.pop("model"), source=source))
    model.load_state_dict(_read_weights(folder / "model.safetensors", model, source))
    config.pop("neuropoyo_version", None)
    if "data" in config:  # written by neuropoyo 0.1.0
        legacy = config.pop("data")
        config.update(sections_from_legacy_data(legacy, source=source))
    return TrainedModel(
        model=model.to(device),
        unit_vocab=_read_vocabulary(folder / "units.json"),
        session_vocab=_read_vocabulary(folder / "sessions.json"),
        normalizer=Normalizer.from_dict(_read_json(folder / "normalizer.json")),
        settings=config,
    )
