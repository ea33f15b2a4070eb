"""The training loop: random 1 s windows -> POYO -> weighted MSE -> LAMB, with checkpoints.

Every random draw is a function of (seed, epoch, position), and the model's own random state is
saved in each checkpoint, so ``resume=True`` continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from neuropoyo import __version__
from neuropoyo.batching import collate
from neuropoyo.checkpoint import (
    TrainedModel,
    load_model,
    load_trainer_state,
    save_checkpoint,
    save_model,
)
from neuropoyo.data.dataset import RecordingSet, recording_set_for
from neuropoyo.data.directory import find_recordings
from neuropoyo.model.poyo import POYO
from neuropoyo.sampling import Window, random_windows
from neuropoyo.tokenizer import MODEL_KEYS
from neuropoyo.training.config import RunConfig
from neuropoyo.training.lamb import Lamb
from neuropoyo.training.loss import weighted_mse
from neuropoyo.training.schedule import lr_factor

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
LOG_FIELDS = ("step", "epoch", "loss", "lr", "grad_norm", "seconds")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_loss: float
    seconds: float


class _EpochWindows(torch.utils.data.Dataset):
    """Tokenized training windows of one epoch; window i draws its augmentation from (seed, epoch, i)."""

    def __init__(self, recordings: RecordingSet, windows: list[Window], seed: int, epoch: int):
        self.recordings, self.windows, self.seed, self.epoch = recordings, windows, seed, epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return self.recordings.tokens(self.windows[i], "train", rng)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _param_groups(model: POYO, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: not on biases, norms or embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        embedding = name.endswith("_emb.weight")
        (decay if p.ndim >= 2 and not embedding else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _autocast(device: torch.device, enabled: bool):
    use = enabled and device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use)


class _Log:
    """metrics.csv (and TensorBoard events when tensorboard is installed) of the training curve."""

    def __init__(self, run_dir: Path, start_step: int):
        self.path = run_dir / "metrics.csv"
        rows = []
        if start_step > 0 and self.path.is_file():
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) < start_step]
        with open(self.path, "w", newline="") as f:  # drop rows past the checkpoint on resume
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, LOG_FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            self.board = None

    def add(self, row: dict) -> None:
        self.writer.writerow(row)
        if self.board is not None:
            for key in ("loss", "lr", "grad_norm"):
                self.board.add_scalar(f"train/{key}", row[key], row["step"])

    def close(self) -> None:
        self.file.close()
        if self.board is not None:
            self.board.close()


def _setup(config: RunConfig, paths: list[Path], run_dir: Path, resume: bool, device):
    """(trained model, recordings, trainer state or None) for a fresh or resumed run."""
    checkpoint = run_dir / CHECKPOINT_DIR
    if resume and checkpoint.is_dir():
        trained = load_model(checkpoint, device=device)
        return trained, trained.recordings(paths), load_trainer_state(checkpoint)
    if resume:
        raise FileNotFoundError(f"{checkpoint}: no checkpoint to resume from")
    recordings = recording_set_for(paths, model_config=config.model, data_config=config.data)
    model_config = dataclasses.replace(
        config.model,
        num_units=len(recordings.unit_vocab),
        num_sessions=len(recordings.session_vocab),
    )
    trained = TrainedModel(
        model=POYO(model_config).to(device),
        data=config.data,
        unit_vocab=recordings.unit_vocab,
        session_vocab=recordings.session_vocab,
        normalizer=recordings.normalizer,
    )
    return trained, recordings, None


def _write_run_info(run_dir: Path, config: RunConfig, paths: list[Path], total_steps: int) -> None:
    info = {
        "neuropoyo_version": __version__,
        "git_commit": _git_commit(),
        "config": config.to_dict(),
        "data": [str(p) for p in paths],
        "total_steps": total_steps,
        "torch": torch.__version__,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))


def train(
    config: RunConfig,
    data: Sequence[str | Path],
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Train POYO on the training splits of ``data`` (recording files or folders) into ``run_dir``.

    run_dir gets ``model/`` (final model directory), ``checkpoint/`` (latest training checkpoint),
    ``metrics.csv`` (loss per step), ``run.json`` (resolved config, version, git commit).
    """
    tc = config.training
    torch.manual_seed(tc.seed)
    device = torch.device(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = find_recordings(data)
    trained, recordings, state = _setup(config, paths, run_dir, resume, device)
    model, model_config = trained.model, trained.model.config
    context = model_config.context_length_s
    train_spans = recordings.split_spans("train")
    windows_per_epoch = sum(math.ceil(s.total_duration() / context) for s in train_spans)
    steps_per_epoch = max(1, math.ceil(windows_per_epoch / tc.batch_size))
    total_steps = tc.max_steps if tc.max_steps is not None else tc.epochs * steps_per_epoch

    optimizer = Lamb(_param_groups(model, tc.weight_decay), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, decay_fraction=tc.decay_fraction)
    )
    start_step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_step = int(state["step"])
    else:
        _write_run_info(run_dir, config, paths, total_steps)
    readout_dims = {name: model_config.readouts[name] for name in model_config.readout_names}
    log = _Log(run_dir, start_step)
    bar = tqdm(total=total_steps, initial=start_step, desc="training", unit="step", disable=not progress)
    started, loss_value = time.perf_counter(), float("nan")
    step = start_step
    model.train()
    try:
        while step < total_steps:
            epoch, first = divmod(step, steps_per_epoch)
            windows = random_windows(
                train_spans, context_s=context, rng=np.random.default_rng([tc.seed, epoch])
            )
            batches = [
                list(range(b * tc.batch_size, min((b + 1) * tc.batch_size, len(windows))))
                for b in range(first, steps_per_epoch)
            ][: total_steps - step]
            loader = torch.utils.data.DataLoader(
                _EpochWindows(recordings, windows, tc.seed, epoch),
                batch_sampler=[b for b in batches if b],
                collate_fn=collate,
                num_workers=tc.num_workers,
                generator=torch.Generator().manual_seed(tc.seed + epoch),
            )
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                with _autocast(device, tc.amp):
                    predictions = model(**{k: batch[k] for k in MODEL_KEYS})
                loss = weighted_mse(predictions, batch, readout_dims)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                step += 1
                loss_value = loss.item()
                log.add(
                    {
                        "step": step - 1,
                        "epoch": epoch,
                        "loss": loss_value,
                        "lr": lr,
                        "grad_norm": float(grad_norm),
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                )
                bar.update()
                if step % tc.log_every == 0:
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
                    log.file.flush()
                if step % tc.checkpoint_every == 0 or step == total_steps:
                    save_checkpoint(
                        trained,
                        {
                            "step": step,
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "torch_rng": torch.get_rng_state(),
                        },
                        run_dir / CHECKPOINT_DIR,
                    )
                if step >= total_steps:
                    break
    finally:
        bar.close()
        log.close()
    save_model(trained, run_dir / MODEL_DIR)
    return TrainResult(run_dir, step, loss_value, time.perf_counter() - started)
