"""Adapt a trained model to new recordings: unit identification and finetuning (paper 2.5, A.6).

Both modes add a row to the unit vocabulary for every unit of the new recordings (initialised at
random) and one for each new session (initialised at the mean of the model's trained session rows),
and a readout head for a stream the model has none for:

* ``unit-id``: everything else stays frozen; only those rows (and new heads) train;
* ``full``: unit identification until step ``unfreeze_at`` (default 0: at once), then every
  weight trains (LAMB, lr 4e-3, weight decay 1e-4). The paper's A.6 unfreezes gradually at lr
  1e-4; on real recordings that stayed below training from scratch, where this beat it
  (``benchmarks/RESULTS.md``, "Full finetuning: its defaults").

Rows of the model's old units and sessions never move (their gradients are masked out), so after
unit identification the old sessions' predictions are bit-identical. ``trials`` / ``minutes`` keep
only the first trials (or minutes) of each new recording's training split (few-shot); the valid and
test splits are the files' own, so scores compare across training-set sizes. The result is an
ordinary run directory whose ``model/`` ``evaluate`` reads unchanged.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from neuropoyo import seeding
from neuropoyo.data.dataset import load_dataset
from neuropoyo.data.directory import few_shot_spans, stream_classes, stream_dims
from neuropoyo.data.normalize import Normalizer
from neuropoyo.data.store import open_recording
from neuropoyo.devices import checked_device
from neuropoyo.errors import ConfigError, DataError
from neuropoyo.evaluation.selection import EvaluationConfig
from neuropoyo.pipeline import AugmentConfig, LossConfig, RecordingSet
from neuropoyo.settings import from_mapping
from neuropoyo.tokens.vocab import session_key_of, unit_keys
from neuropoyo.trained import TrainedModel, load_model
from neuropoyo.training.config import RunConfig, TrainConfig
from neuropoyo.training.loop import (
    TrainResult,
    epoch_batches,
    fit,
    lamb_groups,
    write_run_info,
)

MODES = ("unit-id", "full")
STEPS = {"unit-id": 600, "full": 900}  # default max_steps per mode (full: the from-scratch recipe's)


@dataclass(frozen=True)
class FinetuneConfig:
    """How a model is adapted (defaults: unit identification, sized for a CPU).

    max_steps: optimisation steps (default 600 for unit-id, 900 for full: the steps of the
    from-scratch recipe it competes with). embedding_lr: LAMB learning rate of the new unit and
    session rows (and new heads); lr: of every other weight once unfrozen (the pretraining
    recipe's 4e-3; the paper's A.6: 1e-4).
    unfreeze_at: the step at which ``full`` mode unfreezes the network (default 0: at once; the
    paper's gradual unfreezing: e.g. max_steps // 3). trials / minutes: few-shot size per new
    recording.
    """

    mode: str = "unit-id"
    max_steps: int | None = None
    unfreeze_at: int | None = None
    embedding_lr: float = 2e-2
    lr: float = 4e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    trials: int | None = None
    minutes: float | None = None
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"finetune: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.max_steps is None:
            object.__setattr__(self, "max_steps", STEPS[self.mode])
        if self.max_steps < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("finetune: need max_steps >= 1, batch_size >= 1 and num_workers >= 0")
        if self.mode == "unit-id" and self.unfreeze_at is not None:
            raise ConfigError("finetune: unfreeze_at applies to mode full only (unit-id never unfreezes)")
        if self.mode == "full":
            if self.unfreeze_at is None:
                object.__setattr__(self, "unfreeze_at", 0)
            if not 0 <= self.unfreeze_at < self.max_steps:
                raise ConfigError(
                    f"finetune: unfreeze_at must be in [0, max_steps = {self.max_steps}), got {self.unfreeze_at}"
                )
        if not (self.embedding_lr > 0 and self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError("finetune: need embedding_lr > 0, lr > 0 and weight_decay >= 0")
        if self.trials is not None and self.minutes is not None:
            raise ConfigError("finetune: give trials or minutes, not both")
        if (self.trials is not None and self.trials < 1) or (self.minutes is not None and not self.minutes > 0):
            raise ConfigError("finetune: trials must be >= 1 and minutes > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, *, source: str = "finetune config") -> "FinetuneConfig":
        return from_mapping(cls, data, source=source, section="finetune")


def _add_readouts(trained: TrainedModel, paths: Sequence[Path], readouts: Sequence[str] | None) -> list[str]:
    """Add a head for each requested stream the model lacks; returns the streams adapted to."""
    model = trained.model
    if readouts is None:
        held = {name for p in paths for name in open_recording(p).behavior_names}
        readouts = [name for name in model.readout_names if name in held]
        if not readouts:
            raise DataError(
                f"finetune: the recordings hold none of the model's readout streams "
                f"{list(model.readout_names)}; name the stream to decode with --readout STREAM"
            )
    added = [name for name in readouts if name not in model.config.readouts]
    classes = stream_classes(list(paths), added)
    for name, dim in stream_dims(list(paths), added).items():
        model.add_readout(name, dim, classes.get(name))
        warnings.warn(
            f"finetune: the model had no readout for {name!r}; added a new {dim}-dim head, trained "
            "from scratch with the new embeddings",
            stacklevel=3,
        )
    return list(readouts)


def _grow(trained: TrainedModel, paths: Sequence[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """New vocabulary and embedding rows for the recordings' units and sessions; returns the
    (num_units,) and (num_sessions,) float masks of the rows that train.

    New unit rows are random (as in the paper); new session rows start at the mean of the trained
    ones. The session row is the decoder's query, so a random one starts every output far from
    anything the network was trained on, and the unit rows then learn to undo that instead of
    identifying the units: on a held-out simulated animal unit identification stalled at test R2
    0.38 from a random session row and reached 0.87 from the mean (benchmarks/RESULTS.md).
    """
    model = trained.model
    units = [key for p in paths for key in unit_keys(open_recording(p))]
    sessions = [session_key_of(open_recording(p)) for p in paths]
    known = [key for key in sessions if key in trained.session_vocab]
    if known:
        raise DataError(
            f"finetune: session(s) {known} are already in the model; unit identification adapts a "
            "model to new sessions (to re-identify a known one, give its recording another id)"
        )
    model.grow_units(len(trained.unit_vocab.extend(units)))
    trained_sessions = model.session_emb.num_embeddings
    new_sessions = model.grow_sessions(len(trained.session_vocab.extend(sessions)))
    if trained_sessions:
        with torch.no_grad():
            table = model.session_emb.weight
            table[new_sessions] = table[:trained_sessions].mean(dim=0)
    unit_mask = torch.zeros(len(trained.unit_vocab))
    unit_mask[torch.from_numpy(trained.unit_vocab.index(units))] = 1.0
    session_mask = torch.zeros(len(trained.session_vocab))
    session_mask[torch.from_numpy(trained.session_vocab.index(sessions))] = 1.0
    return unit_mask, session_mask


def _scales(trained: TrainedModel, recordings: RecordingSet) -> Normalizer:
    """The model's scales, plus scales fitted on the new data for brainsets / streams it lacks."""
    fitted = recordings.normalizer.scales
    merged = {b: dict(streams) for b, streams in trained.normalizer.scales.items()}
    for brainset, streams in fitted.items():
        for name, scale in streams.items():
            merged.setdefault(brainset, {}).setdefault(name, scale)
    return Normalizer(merged)


class _Freezer:
    """Which weights train at each step: the masked embedding rows and the new heads, then (full
    mode, from ``unfreeze_at``) every weight. Gradients of other embedding rows are zeroed."""

    def __init__(self, model, unit_mask, session_mask, new_heads: Sequence[str], config: FinetuneConfig):
        self.model, self.config = model, config
        self.open = {id(p) for name in new_heads for p in model.readouts[name].parameters()}
        self.open |= {id(model.unit_emb.weight), id(model.session_emb.weight)}
        model.unit_emb.weight.register_hook(lambda g: g * unit_mask.to(g)[:, None])
        model.session_emb.weight.register_hook(lambda g: g * session_mask.to(g)[:, None])
        self.unfrozen = None
        self(0)

    def __call__(self, step: int) -> None:
        unfrozen = self.config.mode == "full" and step >= self.config.unfreeze_at
        if unfrozen == self.unfrozen:
            return
        for p in self.model.parameters():
            p.requires_grad_(unfrozen or id(p) in self.open)
        self.unfrozen = unfrozen


def finetune(
    model: str | Path | TrainedModel,
    data: Sequence[str | Path],
    run_dir: str | Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    readouts: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    after_step: Callable[[int, TrainedModel], None] | None = None,
) -> TrainResult:
    """Adapt ``model`` (a model or run directory) to the new recordings ``data`` into ``run_dir``.

    readouts: the streams to decode (default: the model's readouts the data hold); a stream the
    model has no head for gets a new one. after_step: as in :func:`~neuropoyo.training.loop.fit`. Returns the TrainResult; ``run_dir/model`` is the adapted
    model, its vocabularies extended by the new units and sessions. Ctrl-C or SIGTERM keeps the
    model so far in ``run_dir/checkpoint`` (a model directory ``evaluate`` reads) and raises
    :class:`~neuropoyo.interrupt.Interrupted`; finetuning does not resume, a rerun starts over.
    """
    device = checked_device(device)
    torch.manual_seed(seeding.torch_seed(config.seed))
    trained = model if isinstance(model, TrainedModel) else load_model(model)
    dataset = load_dataset(data)
    paths = list(dataset.paths)
    _check_value_inputs(trained, paths)
    old_heads = set(trained.model.readout_names)
    streams = _add_readouts(trained, paths, readouts)
    unit_mask, session_mask = _grow(trained, paths)
    settings = trained.settings
    loss = LossConfig.from_dict(settings.get("loss"), source="model settings")
    run = RunConfig(
        model=trained.model.config,
        loss=loss,
        augment=AugmentConfig.from_dict(settings.get("augment"), source="model settings"),
        evaluation=EvaluationConfig.from_dict(settings.get("evaluation"), source="model settings"),
        training=TrainConfig(
            batch_size=config.batch_size, lr=config.embedding_lr, weight_decay=config.weight_decay,
            max_steps=config.max_steps, seed=config.seed, num_workers=config.num_workers,
            checkpoint_every=config.max_steps,
        ),
    )
    recordings = RecordingSet(
        dataset,
        readouts=run.model.readouts,
        streams=streams,
        unit_vocab=trained.unit_vocab,
        session_vocab=trained.session_vocab,
        normalize=loss.normalize,
        grow=False,
        train_spans=few_shot_spans(paths, trials=config.trials, minutes=config.minutes),
    )
    trained.normalizer = recordings.normalizer = _scales(trained, recordings)
    model_ = trained.model
    freezer = _Freezer(model_, unit_mask, session_mask, sorted(set(streams) - old_heads), config)
    groups = _learning_rates(lamb_groups(model_, config.weight_decay), freezer.open, config)
    batches = epoch_batches(recordings, run)
    run_dir = Path(run_dir)
    source = "in memory" if isinstance(model, TrainedModel) else str(Path(model).resolve())
    info = {"finetune": config.to_dict(), "model": source, "streams": streams, "config": run.to_dict()}
    write_run_info(run_dir, {**info, "data": [str(p.resolve()) for p in paths], "dataset": dataset.to_dict()})
    return fit(
        trained, recordings, run, run_dir, batches=batches, total_steps=config.max_steps,
        device=device, progress=progress, param_groups=groups, before_step=freezer,
        after_step=after_step,
    )


def _check_value_inputs(trained: TrainedModel, paths: list[Path]) -> None:
    """ConfigError naming the fix when a recording holds traces the model cannot read."""
    if trained.model.value_emb is not None:
        return
    with_traces = []
    for path in paths:
        with open_recording(path) as file:
            if file.has_traces:
                with_traces.append(path.name)
    if with_traces:
        raise ConfigError(
            f"finetune: {', '.join(with_traces)} hold traces (calcium imaging or binned counts) but the model "
            "was trained on spikes only and has no value inputs; pretrain with model.value_inputs: true or "
            "with at least one recording that holds traces"
        )


def _learning_rates(groups: list[dict], fast_ids: set[int], config: FinetuneConfig) -> list[dict]:
    """LAMB groups with the new embedding rows and new heads at ``embedding_lr`` (listed first, so
    the log shows their rate) and the pretrained weights at ``lr``."""
    fast, slow = [], []
    for group in groups:
        if group.get("sparse_rows"):
            fast.append({**group, "lr": config.embedding_lr})
            continue
        heads = [p for p in group["params"] if id(p) in fast_ids]
        rest = [p for p in group["params"] if id(p) not in fast_ids]
        if heads:
            fast.append({**group, "params": heads, "lr": config.embedding_lr})
        if rest:
            slow.append({**group, "params": rest, "lr": config.lr})
    return fast + slow
