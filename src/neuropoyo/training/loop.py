"""The training loop: random 1 s windows -> POYO -> weighted MSE -> LAMB, with checkpoints,
validation R2 every ``training.validate_every`` steps and the best model on validation kept
(:mod:`neuropoyo.training.watch`).

Under ``torchrun`` the same loop runs distributed data parallel (PyTorch's DDP; gloo on CPU,
NCCL on CUDA): every process draws the same global batches of ``training.batch_size`` windows,
takes its share balanced by token count (:class:`~neuropoyo.pipeline.RankBatches`) and reads only
those windows; the loss is divided by the whole batch's weight, so a step equals the one-process
step on the same global batch. Rank 0 alone writes the log, checkpoints and models; a run resumes
with any number of processes.

One DataLoader pass serves the whole run: :class:`EpochBatches` hands it every epoch's batches in
turn, so its workers never restart and keep prefetching across epoch boundaries. Epoch e's windows
come from their own random stream and each window's augmentation from (seed, epoch, position), so
results do not depend on the number of workers. The optimizer, schedule and torch random states are saved in
each checkpoint: on CPU, ``resume=True`` continues bit-identically where an uninterrupted run would
be. On CUDA the random states are restored too, but kernels are not bit-deterministic.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from neuropoyo import __version__, distributed, seeding
from neuropoyo.data.dataset import RUN_INFO, Dataset, load_dataset, run_dataset
from neuropoyo.data.directory import stream_classes
from neuropoyo.data.intervals import Intervals
from neuropoyo.devices import checked_device
from neuropoyo.distributed import Ranks
from neuropoyo.errors import ConfigError, DataError, TrainingError
from neuropoyo.evaluation.evaluate import recordings_for
from neuropoyo.interrupt import Interrupted, children_spared_signals, held_signals, raise_lost, signal_of
from neuropoyo.io import published_dir, write_text_atomic
from neuropoyo.model.poyo import POYO
from neuropoyo.pipeline import (
    EpochBatches,
    RandomWindowSampler,
    RankBatches,
    RecordingSet,
    Window,
    WindowDataset,
    training_pipeline,
    window_loader,
)
from neuropoyo.schema import MODEL_KEYS
from neuropoyo.trained import TrainedModel, load_model, save_model
from neuropoyo.training.checkpoint import load_trainer_state, save_checkpoint
from neuropoyo.training.config import RunConfig, TrainConfig, read_run_info
from neuropoyo.training.lamb import Lamb
from neuropoyo.training.loss import weighted_errors
from neuropoyo.training.schedule import lr_factor
from neuropoyo.training.watch import NoValidationWarning, Watch, validate

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
METRICS = "metrics.csv"
LOG_FIELDS = (
    "step", "epoch", "loss", "lr", "grad_norm", "seconds", "tokens", "padding", "rank_tokens", "valid_r2",
    "valid_spread", "event",
)
SPARSE_ROWS = ("unit_emb.weight", "session_emb.weight")  # rows absent from a batch stay put
# Settings that may change on --resume: they do not change what is computed.
RESUMABLE_CHANGES = (
    "training.num_workers", "training.log_every", "training.checkpoint_every", "training.max_nonfinite_steps",
    "training.validate_every",
)


@dataclass
class TrainResult:
    """steps: the run's step count at the end; steps_taken: those of this call (fewer on --resume);
    final_loss: the last step's loss (NaN when this call took no step)."""

    run_dir: Path
    steps: int
    final_loss: float
    seconds: float
    steps_taken: int


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


def lamb_groups(model: POYO, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (not biases, norms or embeddings); the unit and session tables
    get sparse-row LAMB, so rows of units and sessions absent from a batch do not move."""
    decay, no_decay, sparse = [], [], []
    for name, p in model.named_parameters():
        if name in SPARSE_ROWS:
            sparse.append(p)
        elif p.ndim >= 2 and not name.endswith("_emb.weight"):
            decay.append(p)
        else:
            no_decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": sparse, "weight_decay": 0.0, "sparse_rows": True},
    ]


def _autocast(device: torch.device, enabled: bool):
    use = enabled and device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use)


class _Log:
    """metrics.csv (and TensorBoard events when tensorboard is installed) of the training curve;
    written by rank 0 only (``enabled``), the other ranks' calls do nothing."""

    def __init__(self, run_dir: Path, start_step: int, *, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        self.path = run_dir / METRICS
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
        if not self.enabled:
            return
        self.writer.writerow(row)
        if self.board is not None:
            for key in ("loss", "lr", "grad_norm"):
                self.board.add_scalar(f"train/{key}", row[key], row["step"])
            if row.get("valid_r2", "") != "":
                self.board.add_scalar("valid/r2", row["valid_r2"], row["step"])
                self.board.add_scalar("valid/spread", row["valid_spread"], row["step"])

    def flush(self, *, sync: bool = True) -> None:
        """Put every row so far on disk (with ``sync``, before a checkpoint, so a crash loses none
        it covers)."""
        if not self.enabled:
            return
        self.file.flush()
        if sync:
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.board is not None:
            self.board.close()


def _setup(config: RunConfig, dataset: Dataset, run_dir: Path, resume: bool, device, train_spans):
    """(trained model, recordings, trainer state or None) for a fresh or resumed run."""
    checkpoint = run_dir / CHECKPOINT_DIR
    if resume:
        if not published_dir(checkpoint).is_dir():
            raise FileNotFoundError(f"{checkpoint}: no checkpoint to resume from")
        trained = load_model(checkpoint, device=device)
        recordings = recordings_for(trained, dataset, train_spans=train_spans)
        return trained, recordings, load_trainer_state(checkpoint)
    recordings = RecordingSet(
        dataset, readouts=config.model.readouts, normalize=config.loss.normalize, train_spans=train_spans
    )
    classes = {**stream_classes([f.path for f in recordings.files], list(recordings.readouts)), **config.model.classes}
    named = {"loss.task_weights": config.loss.task_weights, "training.select_on": config.training.select_on}
    for field, names in named.items():
        unknown = sorted(set(names) - set(config.model.readouts))
        if unknown:
            raise ConfigError(
                f"{field} names {unknown}, which are not readouts of the model ({list(config.model.readouts)})"
            )
    model_config = dataclasses.replace(
        config.model,
        num_units=len(recordings.unit_vocab),
        num_sessions=len(recordings.session_vocab),
        # traces in any recording (calcium imaging, binned counts) need the value projection
        value_inputs=config.model.value_inputs or any(f.has_traces for f in recordings.files),
        classes=classes,
        # several tasks, one a classification: each readout's queries get their own embedding (POYO+)
        task_embedding=config.model.task_embedding or (bool(classes) and len(config.model.readouts) > 1),
    )
    trained = TrainedModel(
        model=POYO(model_config).to(device),
        unit_vocab=recordings.unit_vocab,
        session_vocab=recordings.session_vocab,
        normalizer=recordings.normalizer,
        settings=config.settings(),
    )
    return trained, recordings, None


def _check_run_dir(run_dir: Path, model: torch.nn.Module) -> None:
    """ConfigError before any step when ``run_dir`` cannot take the run: not writable, or with less
    free space than the final model, two checkpoint versions (weights and optimizer moments) and
    the log need."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"neuropoyo")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"training: cannot write to the run directory {run_dir} ({type(error).__name__}: {error}); "
            "choose a writable folder"
        ) from None
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    needed = 7 * weights + (16 << 20)  # model + 2 x (weights + 2 moments) + log and metadata
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise ConfigError(
            f"training: {run_dir} has {free / 2**20:.1f} MiB free but the run needs about "
            f"{needed / 2**20:.1f} MiB (model, two checkpoint versions, log); free space or choose another folder"
        )


def _run_info(config: RunConfig, dataset: Dataset, total_steps: int | None, train_spans) -> dict:
    return {
        "neuropoyo_version": __version__,
        "git_commit": _git_commit(),
        "config": config.to_dict(),
        "data": [str(p.resolve()) for p in dataset.paths],
        "dataset": dataset.to_dict(),
        "train_spans": None if train_spans is None else [span_list(s) for s in train_spans],
        "total_steps": total_steps,
        "torch": torch.__version__,
    }


def span_list(spans: Intervals) -> list[list[float]]:
    """[[start, end], ...] of ``spans`` (s), as run.json records a few-shot training set."""
    return [[float(a), float(b)] for a, b in zip(spans.start, spans.end)]


def _differences(old, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            diff
            for key in sorted(set(old) | set(new))
            for diff in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


def _check_resume(run_dir: Path, info: dict) -> None:
    """ConfigError unless this call trains what the interrupted run trained."""
    path = run_dir / RUN_INFO
    if not path.is_file():
        return
    started = read_run_info(path)
    changed = [d for d in _differences(started.get("config"), info["config"]) if d not in RESUMABLE_CHANGES]
    problems = [f"config {key}: {_lookup(started['config'], key)!r} -> {_lookup(info['config'], key)!r}" for key in changed]
    if started.get("data") is not None and started["data"] != info["data"]:
        problems.append(f"data: {started['data']} -> {info['data']}")
    elif started.get("dataset") is not None and started["dataset"] != info["dataset"]:
        problems.append("the dataset's per-source options (readouts, normalize, weights, intervals) differ")
    if started.get("train_spans") != info["train_spans"]:
        problems.append("the training spans (few-shot subset) differ from the interrupted run's")
    if info["total_steps"] is not None and started.get("total_steps") not in (None, info["total_steps"]):
        problems.append(
            f"total steps: {started['total_steps']} -> {info['total_steps']} (it would reshape the "
            "learning-rate schedule mid-run)"
        )
    if problems:
        raise ConfigError(
            f"{run_dir}: --resume must continue the same run, but this call changes\n  - "
            + "\n  - ".join(problems)
            + f"\nresume with the --config, --data (or no --data: the run's own) and --max-steps/--epochs of {path}, "
            "or train into a new --out"
        )


def _lookup(tree, dotted: str):
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _random_states(device: torch.device) -> dict:
    states = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def _all_random_states(device: torch.device, ranks: Ranks) -> dict:
    """Rank 0's random states at the top level (as a one-process run saves them) and, in a
    distributed run, every rank's under ``ranks``."""
    states = distributed.gather(_random_states(device), ranks)
    return {**states[0], "ranks": states} if ranks.distributed else states[0]


def _restore_random_states(state: dict, device: torch.device, ranks: Ranks, seed: int) -> None:
    """This rank's saved random states; a rank the saved run did not have (resumed with more
    processes) starts a stream of its own, drawn from (seed, rank, step)."""
    saved = state.get("ranks", [state])
    if ranks.rank >= len(saved):
        torch.manual_seed(seeding.torch_seed(seed, ranks.rank, int(state["step"])))
        return
    mine = saved[ranks.rank]
    torch.set_rng_state(mine["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in mine:
        torch.cuda.set_rng_state_all(mine["cuda_rng"])


def train(
    config: RunConfig,
    data: Dataset | Sequence[str | Path] | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    train_spans: Sequence[Intervals] | None = None,
    after_step: Callable[[int, TrainedModel], None] | None = None,
) -> TrainResult:
    """Train POYO on the training splits of ``data`` into ``run_dir``.

    data: recording files, folders, globs or dataset files with per-source options
    (:mod:`neuropoyo.data.dataset`); None on ``resume``: the dataset recorded in ``run.json``.
    train_spans: one Intervals per recording to train on instead of its training split (a few-shot
    subset, :func:`~neuropoyo.data.directory.few_shot_spans`); after_step: as in :func:`fit`.
    run_dir gets ``model/`` (final model directory), ``best/`` (the best model on validation),
    ``checkpoint/`` (latest training checkpoint), ``metrics.csv`` (loss per step, validation R2 and
    prediction spread where scored), ``run.json`` (resolved config, data and dataset with its
    options, version, git commit). ``resume`` continues from ``checkpoint/`` and refuses a config,
    dataset or length that differs from ``run.json``. Ctrl-C or SIGTERM saves the checkpoint of the
    current step and raises :class:`~neuropoyo.interrupt.Interrupted` (see :func:`fit`); ``resume``
    goes on from there.
    """
    ranks = distributed.join(checked_device(device))
    device = checked_device(distributed.device_for(str(device), ranks))
    seed = config.training.seed
    torch.manual_seed(seeding.torch_seed(seed))
    run_dir = Path(run_dir)
    if data is None and not resume:
        raise ConfigError("training: name the recordings to train on (--data); only --resume reads them from run.json")
    dataset = run_dataset(run_dir) if data is None else load_dataset(data)
    if resume:
        _check_resume(run_dir, _run_info(config, dataset, None, train_spans))
    trained, recordings, state = _setup(config, dataset, run_dir, resume, device, train_spans)
    if ranks.rank > 0:  # the same initial weights on every rank, dropout masks of its own
        torch.manual_seed(seeding.torch_seed(seed, ranks.rank))
    if ranks.is_main:  # the one rank that writes
        _check_run_dir(run_dir, trained.model)
    batches = epoch_batches(recordings, config)
    total_steps = run_length(config.training, batches)
    info = _run_info(config, dataset, total_steps, train_spans)
    if resume:
        _check_resume(run_dir, info)
    elif ranks.is_main:
        write_run_info(run_dir, {**info, "processes": ranks.world})
    return fit(
        trained, recordings, config, run_dir, batches=batches, total_steps=total_steps, state=state,
        device=device, progress=progress, after_step=after_step, resumable=True,
    )


class NonFiniteStepWarning(UserWarning):
    """A training step was skipped: its loss or gradient norm was NaN or infinite."""


def _batch_origin(windows: Sequence[Window], recordings: RecordingSet) -> str:
    """Which recordings a batch came from, and its first window, for messages."""
    counts = Counter(window.recording for window in windows)
    named = ", ".join(f"{recordings.files[r].path} ({n} windows)" for r, n in counts.most_common(5))
    first = windows[0]
    more = f" and {len(counts) - 5} more recordings" if len(counts) > 5 else ""
    span = f"[{first.start:.3f}, {first.end:.3f}) s"
    return f"{named}{more}; first window {recordings.files[first.recording].path} {span}"


def _nonfinite_step(
    step: int, loss: torch.Tensor, grad_norm: torch.Tensor, windows, recordings, in_a_row: int, limit: int
) -> None:
    """Warn about a skipped step; raise TrainingError at the limit of skipped steps in a row."""
    what = (
        f"loss {loss.item():.4g}, gradient norm {grad_norm.item():.4g}; "
        f"batch from {_batch_origin(windows, recordings)}"
    )
    if in_a_row >= limit:
        raise TrainingError(
            f"training: {in_a_row} steps in a row with NaN/inf loss or gradients, stopping at step {step} "
            f"({what}). The checkpoint keeps the last good state: check these recordings for NaN/inf "
            "values (`neuropoyo validate`) or train again with a lower training.lr; training.max_nonfinite_steps "
            "sets the limit (it may change on --resume)"
        )
    warnings.warn(
        f"training: step {step} skipped ({what}); {in_a_row} in a row, stopping at {limit}",
        NonFiniteStepWarning,
        stacklevel=3,
    )


def _require_finite(model: torch.nn.Module, step: int, run_dir: Path) -> None:
    """Raise TrainingError, before anything is written, if a parameter holds NaN/inf."""
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise TrainingError(
                f"training: parameter {name} holds NaN/inf after step {step}; nothing was saved, "
                f"{run_dir / CHECKPOINT_DIR} keeps the last good state. Train again with a lower "
                "training.lr or training.grad_clip"
            )


def epoch_batches(recordings: RecordingSet, config: RunConfig) -> EpochBatches:
    """The random training batches of ``recordings``, epoch after epoch (seeded by the config)."""
    tc = config.training
    spans = recordings.split_spans("train")
    windows = RandomWindowSampler(
        spans, context_s=config.model.context_length_s, seed=tc.seed, weights=recordings.weights
    )
    if windows.windows_per_epoch == 0:
        names = [str(f.path) for f in recordings.files]
        raise DataError(f"training: the recordings {names} hold no training split")
    return EpochBatches(windows, batch_size=tc.batch_size)


def run_length(tc: TrainConfig, batches: EpochBatches) -> int:
    """Total optimisation steps: ``max_steps`` when set, else ``epochs`` passes."""
    return tc.max_steps if tc.max_steps is not None else tc.epochs * batches.steps_per_epoch


def write_run_info(run_dir: Path, info: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / RUN_INFO, json.dumps(info, indent=2))


def _token_counts(input_mask: torch.Tensor, ranks: Ranks) -> dict:
    """The metrics.csv fields of a step's input tokens: real tokens of the whole batch, the
    fraction of padding, and each rank's real tokens (space-separated; one number in one process).

    input_mask: (B, M) bool, this rank's batch.
    """
    mine = torch.zeros(2 * ranks.world, dtype=torch.float64)
    mine[ranks.rank] = float(input_mask.sum())
    mine[ranks.world + ranks.rank] = float(input_mask.numel())
    counts = distributed.all_sum(mine, ranks).tolist()
    real, padded = counts[: ranks.world], counts[ranks.world :]
    return {
        "tokens": int(sum(real)),
        "padding": round(1.0 - sum(real) / max(sum(padded), 1.0), 4),
        "rank_tokens": " ".join(str(int(n)) for n in real),
    }


def _validation_row(
    watch, trained, recordings, step, total_steps, run_dir, tc, lr, optimizer, device, ranks
) -> dict:
    """Score the model on the valid split and let ``watch`` act on it; the metrics.csv fields."""
    valid = validate(trained, recordings, step, device, streams=tc.select_on, ranks=ranks)
    if valid is None:  # no valid samples in the evaluation intervals
        return {}
    with held_signals():  # the best model on disk and the watch's record of it change together
        event = watch.update(
            valid, trained, run_dir, progress=step / total_steps, lr=lr, on_collapse=tc.on_collapse,
            optimizer=optimizer, ranks=ranks,
        )
    return {"valid_r2": valid.r2, "valid_spread": valid.spread, "event": event}


def _backward(network, model, windows, batch, objective: dict, tc: TrainConfig, device, ranks: Ranks):
    """Forward and backward of one batch: (the whole batch's loss, clipped gradient norm, token counts).
    objective: the keyword arguments of :func:`weighted_errors` (readout dims and kinds, task weights)."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with _autocast(device, tc.amp):
        predictions = network(**{k: batch[k] for k in MODEL_KEYS})
    errors, weight = weighted_errors(predictions, batch, **objective)
    if windows[0].stand_in:
        errors, weight = errors * 0.0, weight * 0.0
    tokens = _token_counts(batch["input_mask"], ranks)
    total_weight = distributed.all_sum(weight.detach(), ranks).clamp(min=1e-8)
    loss = errors / total_weight  # this rank's part of the whole batch's weighted MSE
    (loss * ranks.world).backward()  # DDP averages the ranks' gradients: their sum is the batch's
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    return distributed.all_sum(loss.detach(), ranks), grad_norm, tokens


def _whole_batches(loader, count: int):
    """The next ``count`` batches of ``loader`` (it never ends), each received whole: Ctrl-C while
    one is handed over from a worker waits for it (cut short, the hand-over prints a traceback),
    and the workers never see Ctrl-C (they would stop mid-hand-over; the loader stops them)."""
    with children_spared_signals():
        batches = iter(loader)  # forks the workers
    for _ in range(count):
        raise_lost()
        with held_signals():
            item = next(batches)
        yield item


def _has_valid_samples(recordings: RecordingSet, streams: tuple[str, ...] = ()) -> bool:
    """Whether some recording's valid split holds a sample of a stream it decodes (of ``streams``
    when given)."""
    return any(
        spans.merged().contains(stream.timestamps).any()
        for r, spans in enumerate(recordings.split_spans("valid"))
        if spans.total_duration() > 0
        for name, stream in recordings.readout_streams(r).items()
        if not streams or name in streams
    )


def _validation_period(tc: TrainConfig, recordings: RecordingSet, ranks: Ranks) -> int:
    """Steps between validations: ``validate_every``, or 0 (with a warning) when no valid split holds
    a sample of the decoded streams (of those of ``training.select_on`` when it names some)."""
    if tc.validate_every and not _has_valid_samples(recordings, tc.select_on):
        if ranks.is_main:
            which, other = (
                (f"the streams of training.select_on {list(tc.select_on)}", ", name other readouts in training.select_on")
                if tc.select_on else ("the decoded streams", "")
            )
            warnings.warn(
                f"training: no valid split holds a sample of {which}, so no validation R2 "
                "is logged and no best model is kept (RUN/model is the last); assign splits where the "
                "behavior exists (re-import with `neuropoyo prepare`, or neuropoyo.data.splits."
                f"assign_splits){other} or set training.validate_every: 0",
                NoValidationWarning,
                stacklevel=4,
            )
        return 0
    return tc.validate_every


def _save_checkpoint(trained, run_dir: Path, step: int, optimizer, scheduler, watch: Watch, random_states: dict) -> None:
    """``run_dir/checkpoint`` after ``step`` steps: the model and the trainer state --resume reads."""
    trainer_state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "watch": watch.to_dict(),
        **random_states,
    }
    save_checkpoint(trained, trainer_state, run_dir / CHECKPOINT_DIR)


def _interrupt_line(step: int, first_step: int, total_steps: int, checkpoint: Path, resumable: bool) -> str:
    """What an interrupted run kept and how to go on, in one line."""
    again = "rerun the same command to start over"
    if step == 0:
        return f"before the first step; nothing was saved; {again}"
    go_on = "to resume, rerun the same command with --resume" if resumable else f"this run cannot resume: {again}"
    if step == first_step:
        return f"before step {step + 1} of {total_steps}; {checkpoint} still holds step {step}; {go_on}"
    return f"step {step} of {total_steps} saved in {checkpoint}; {go_on}"


def _optimization(groups: list[dict], tc: TrainConfig, total_steps: int, state: dict | None, device, ranks: Ranks):
    """(LAMB over ``groups``, its schedule, the validation watch, the step to start at), restored
    from a checkpoint's trainer ``state`` (with the random states) when one is given."""
    optimizer = Lamb(groups, lr=tc.lr, weight_decay=tc.weight_decay)
    watch = Watch(**state["watch"]) if state is not None and "watch" in state else Watch()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: watch.lr_scale * lr_factor(s, total_steps, decay_fraction=tc.decay_fraction)
    )
    if state is None:
        return optimizer, scheduler, watch, 0
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _restore_random_states(state, device, ranks, tc.seed)
    return optimizer, scheduler, watch, int(state["step"])


def _training_loader(recordings: RecordingSet, config: RunConfig, batches: EpochBatches, device, ranks: Ranks):
    """The one DataLoader of the run: the training pipeline over ``batches`` (this rank's share of
    each under DDP, balanced by tokens)."""
    pipeline = training_pipeline(
        recordings, context_length_s=config.model.context_length_s, loss=config.loss, augment=config.augment
    )
    shares = batches
    if ranks.distributed:
        shares = RankBatches(batches, recordings.token_estimate, rank=ranks.rank, world=ranks.world)
    return window_loader(
        WindowDataset(recordings, pipeline, seed=config.training.seed),
        shares,
        num_workers=config.training.num_workers,
        pin_memory=device.type == "cuda",
    )


def fit(
    trained: TrainedModel,
    recordings: RecordingSet,
    config: RunConfig,
    run_dir: Path,
    *,
    batches: EpochBatches,
    total_steps: int,
    state: dict | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    param_groups: list[dict] | None = None,
    before_step: Callable[[int], None] | None = None,
    after_step: Callable[[int, TrainedModel], None] | None = None,
    resumable: bool = False,
) -> TrainResult:
    """The optimisation loop: ``total_steps`` LAMB steps on ``batches``, checkpoints, log, model.

    state: a checkpoint's trainer state to continue from. param_groups: LAMB's groups (default
    :func:`lamb_groups`). before_step(step) runs before each step (e.g. to unfreeze weights at a
    given step); parameters without a gradient are left untouched. after_step(steps, trained) runs
    after each optimiser step with the number of steps taken (e.g. to score the model during
    training; the model is put back in train mode when the call returns). Every
    ``training.validate_every`` steps and at the last, the model is scored on the valid split, the
    best kept in ``run_dir/best`` and a collapse reported (:class:`~neuropoyo.training.watch.Watch`).
    In a distributed run (:mod:`neuropoyo.distributed`) each rank holds its share of every batch
    and the model is wrapped in DDP; param_groups and before_step (finetuning) need one process.

    A KeyboardInterrupt (Ctrl-C; SIGTERM under :func:`~neuropoyo.interrupt.sigterm_interrupts`)
    after a step of this call makes rank 0 write the checkpoint of that step, as the periodic one,
    and raise :class:`~neuropoyo.interrupt.Interrupted` whose line says how to go on (resumable:
    with ``--resume``, else start over); a validation it cuts short is not redone, and
    ``run_dir/model``, the sign of a finished run, is not written. Other ranks re-raise.
    """
    tc = config.training
    device = checked_device(device)
    ranks = distributed.join(device)
    if ranks.distributed and (param_groups is not None or before_step is not None):
        raise ConfigError(
            "finetuning (frozen or gradually unfrozen weights) runs in one process; start it without torchrun"
        )
    if ranks.distributed:
        torch.set_num_threads(distributed.thread_share(ranks, workers=tc.num_workers))
    model = trained.model.to(device)
    steps_per_epoch = batches.steps_per_epoch
    groups = param_groups if param_groups is not None else lamb_groups(model, tc.weight_decay)
    optimizer, scheduler, watch, step = _optimization(groups, tc, total_steps, state, device, ranks)
    first_step = step
    batches.epoch, batches.start = divmod(step, steps_per_epoch)
    loader = _training_loader(recordings, config, batches, device, ranks)
    network = model
    if ranks.distributed:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False
        )
    objective = dict(
        readout_dims=dict(model.config.readouts),
        classification=set(model.config.classes),
        task_weights=config.loss.task_weights,
    )
    validate_every = _validation_period(tc, recordings, ranks)
    log = _Log(run_dir, step, enabled=ranks.is_main)
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not (progress and ranks.is_main))
    started, loss_value, nonfinite = time.perf_counter(), float("nan"), 0
    saved, row = step, None  # the step the checkpoint holds; the row of a step taken, until logged
    model.train()
    try:
        for windows, batch in _whole_batches(loader, total_steps - step):
            epoch = step // steps_per_epoch
            if before_step is not None:
                before_step(step)
            optimizer.zero_grad(set_to_none=True)
            loss, grad_norm, tokens = _backward(network, model, windows, batch, objective, tc, device, ranks)
            lr = optimizer.param_groups[0]["lr"]
            finite = bool(torch.isfinite(torch.stack([loss.float(), grad_norm.float()])).all())
            with held_signals():  # `step` counts exactly the optimizer steps applied, whenever Ctrl-C comes
                if finite:
                    optimizer.step()
                    nonfinite = 0
                else:  # a NaN/inf step would poison every weight: skip it, stop if it persists
                    nonfinite += 1
                    _nonfinite_step(step, loss, grad_norm, windows, recordings, nonfinite, tc.max_nonfinite_steps)
                step += 1
                loss_value = loss.item()
                row = {
                    "step": step - 1,
                    "epoch": epoch,
                    "loss": loss_value,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "seconds": round(time.perf_counter() - started, 3),
                    **tokens,
                }
            if after_step is not None:
                after_step(step, trained)
                model.train()
            if validate_every and (step % validate_every == 0 or step == total_steps):
                row.update(
                    _validation_row(
                        watch, trained, recordings, step, total_steps, run_dir, tc, lr, optimizer, device, ranks
                    )
                )
                model.train()
            with held_signals():
                scheduler.step()  # after validation: a restart's new learning rate applies from the next step
                log.add(row)
                row = None
            bar.update()
            if step % tc.log_every == 0:
                postfix = {"loss": f"{loss_value:.4f}", "lr": f"{lr:.2e}"}
                if watch.best_step >= 0:
                    postfix["best_valid_r2"] = f"{watch.best_r2:.3f}"
                bar.set_postfix(postfix)
                log.flush(sync=False)
            if step % tc.checkpoint_every == 0 or step == total_steps:
                _require_finite(model, step, run_dir)
                log.flush()
                random_states = _all_random_states(device, ranks)
                if ranks.is_main:
                    _save_checkpoint(trained, run_dir, step, optimizer, scheduler, watch, random_states)
                saved = step
        if ranks.is_main:
            save_model(trained, run_dir / MODEL_DIR)
    except KeyboardInterrupt as error:
        if not ranks.is_main:
            raise
        with held_signals():  # another Ctrl-C waits for this checkpoint (a third one abandons it)
            if row is not None:  # the step's schedule and log, as the loop would have ended it
                scheduler.step()
                log.add(row)
            if step > saved:
                _require_finite(model, step, run_dir)
                log.flush()
                _save_checkpoint(trained, run_dir, step, optimizer, scheduler, watch, _random_states(device))
            line = _interrupt_line(step, first_step, total_steps, run_dir / CHECKPOINT_DIR, resumable)
            raise Interrupted(signal_of(error), line) from None
    finally:
        bar.close()
        log.close()
    distributed.barrier(ranks)  # every rank returns once the model is written
    return TrainResult(run_dir, step, loss_value, time.perf_counter() - started, step - first_step)
