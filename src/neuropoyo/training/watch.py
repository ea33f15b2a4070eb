"""Training watches itself: validation R2 every N steps, the best model kept, collapse detected.

Validation scores the model on the valid split exactly as ``neuropoyo evaluate`` scores the test
split (stitched windows, the model's evaluation intervals) and draws nothing from training's random
streams, so a run trains the same weights whether or not it validates.

A model has **collapsed** when its predictions on the validation samples fall flat: in some stream
and dimension their spread (standard deviation across samples, as a fraction of the targets') is
under :data:`FALLEN_SPREAD` after an earlier validation had it above :data:`LEARNED_SPREAD` and
:data:`FALL` times wider; or it is still under :data:`FLAT_SPREAD` past half of the run (every
model starts flat: it predicts the mean until it has learned). That is what a too-high learning
rate does to POYO (outputs with a spread of 1e-6 on Stevenson at lr 1e-2): the loss sits at the
level of predicting the mean and the R2 near 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from neuropoyo import distributed
from neuropoyo.distributed import SINGLE, Ranks
from neuropoyo.evaluation.evaluate import predict
from neuropoyo.evaluation.metrics import r2_score
from neuropoyo.evaluation.report import label_metrics
from neuropoyo.pipeline import RecordingSet
from neuropoyo.trained import TrainedModel, load_model, publish_model

BEST_DIR = "best"
FLAT_SPREAD = 1e-3  # prediction spread / target spread: still this flat past half the run
LEARNED_SPREAD = 0.1  # a spread a model reaches once it has learned something
FALLEN_SPREAD = 0.05  # ... falling under this and FALL times narrower than it was: collapsed
FALL = 10.0
FLAT_AFTER = 0.5  # fraction of the run after which a flat model counts as collapsed


class CollapseWarning(UserWarning):
    """The model's predictions on the validation split have collapsed to (nearly) a constant."""


class NoValidationWarning(UserWarning):
    """The recordings have no validation samples: no validation R2, no best model kept."""


@dataclass(frozen=True)
class Validation:
    """One validation score. r2: mean over (recording, stream) of the R2 on the valid split (only
    the streams of ``training.select_on`` when it names some); a label stream (classification)
    scores its chance-corrected balanced accuracy (balanced - chance) / (1 - chance) instead, on
    the same scale (0: chance, 1: perfect).
    spread: the smallest ratio, over streams and dimensions, of the predictions' standard deviation
    across samples to the targets'; flattest: its "recording/stream"."""

    step: int
    r2: float
    spread: float
    flattest: str


def validate(
    trained: TrainedModel, recordings: RecordingSet, step: int, device: torch.device, *,
    streams: tuple[str, ...] = (), ranks: Ranks = SINGLE,
) -> Validation | None:
    """Score ``trained`` on the valid split of ``recordings`` (None when it has no samples),
    leaving torch's random state as it found it; the model is left in eval mode. The score is the
    mean over ``streams`` (empty: every stream); the spread watches every stream. In a distributed
    run the ranks share the windows and all get the same score."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        results = predict(trained, recordings, split="valid", device=device, progress=False, ranks=ranks)
    results = [r for r in results if len(r.timestamps) >= 2]
    if not results:
        return None
    spreads = {}
    for r in results:
        if r.is_labels:
            continue
        true_std = r.true.std(axis=0)
        varied = true_std > 0
        if varied.any():
            spreads[f"{r.recording_id}/{r.stream}"] = float(np.min(r.predicted.std(axis=0)[varied] / true_std[varied]))
    flattest = min(spreads, key=spreads.get) if spreads else ""
    scored = [r for r in results if not streams or r.stream in streams]
    if not scored:
        return None
    return Validation(
        step=step,
        r2=float(np.mean([_score(r) for r in scored])),
        spread=spreads.get(flattest, math.inf),
        flattest=flattest,
    )


def _score(result) -> float:
    """R2 of a continuous stream; chance-corrected balanced accuracy of a label stream."""
    if not result.is_labels:
        return r2_score(result.true, result.predicted)
    metrics = label_metrics(result)
    chance = metrics["chance"]
    return (metrics["balanced_accuracy"] - chance) / (1.0 - chance)


@dataclass
class Watch:
    """What validation has seen so far in a run; saved in the trainer state so --resume goes on.

    best_step / best_r2: the best validation so far (kept in ``RUN/best``). widest_spread: the
    widest prediction spread seen. lr_scale: the learning-rate factor left by restarts.
    """

    best_step: int = -1
    best_r2: float = -math.inf
    widest_spread: float = 0.0
    lr_scale: float = 1.0
    restarts: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def collapsed(self, valid: Validation, progress: float) -> bool:
        """Whether the predictions of ``valid``, taken at ``progress`` (fraction of the run done),
        have collapsed (module docstring)."""
        fallen = (
            self.widest_spread >= LEARNED_SPREAD
            and valid.spread < FALLEN_SPREAD
            and FALL * valid.spread < self.widest_spread
        )
        return fallen or (valid.spread < FLAT_SPREAD and progress >= FLAT_AFTER)

    def update(
        self, valid: Validation, trained: TrainedModel, run_dir: Path, *, progress: float, lr: float,
        on_collapse: str, optimizer: torch.optim.Optimizer, ranks: Ranks = SINGLE,
    ) -> str:
        """Keep ``trained`` in ``run_dir/best`` if ``valid`` is the best so far; on a collapse warn,
        and with ``on_collapse == "restart"`` go back to the best model with fresh optimizer moments
        at half the learning rate. Returns the events to log ("best", "collapse", "restart ...").
        Every rank of a distributed run calls it with the same score and so takes the same
        decisions; rank 0 alone writes and warns."""
        events = []
        if valid.r2 > self.best_r2:
            self.best_step, self.best_r2 = valid.step, valid.r2
            selection = {"selected_by": "valid_r2", "step": valid.step, "valid_r2": valid.r2}
            if ranks.is_main:
                publish_model(trained, run_dir / BEST_DIR, selection)
            events.append("best")
        if self.collapsed(valid, progress):
            events.append(self._collapse(valid, trained, run_dir, lr, on_collapse, optimizer, ranks))
        self.widest_spread = max(self.widest_spread, valid.spread if math.isfinite(valid.spread) else 0.0)
        return "; ".join(events)

    def _collapse(self, valid, trained, run_dir, lr, on_collapse, optimizer, ranks: Ranks) -> str:
        what = (
            f"training: at step {valid.step} the predictions of {valid.flattest} have collapsed to "
            f"nearly a constant (their spread is {valid.spread:.2g} of the targets' on the valid "
            f"split; valid R2 {valid.r2:.3f}). The usual cause is a learning rate too high for this "
            f"data (lr now {lr:.3g}), or too few steps to learn"
        )
        if on_collapse != "restart" or self.best_step < 0:
            if not ranks.is_main:
                return "collapse"
            warnings.warn(
                f"{what}: train again with a lower training.lr (e.g. {lr / 4:.2g}), or set "
                "training.on_collapse: restart to go back to the best model at half the learning "
                "rate; RUN/best keeps the best model so far",
                CollapseWarning,
                stacklevel=3,
            )
            return "collapse"
        distributed.barrier(ranks)  # rank 0 has written the best model
        best = load_model(run_dir / BEST_DIR, device=next(trained.model.parameters()).device)
        trained.model.load_state_dict(best.model.state_dict())
        optimizer.state.clear()  # moments of the collapsed trajectory would push it back there
        self.lr_scale /= 2
        self.restarts += 1
        event = f"restart from step {self.best_step} at lr x{self.lr_scale:g}"
        if ranks.is_main:
            warnings.warn(f"{what}: {event} (training.on_collapse: restart)", CollapseWarning, stacklevel=3)
        return event
