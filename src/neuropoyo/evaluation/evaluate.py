"""Evaluation: sliding windows over a split, stitched predictions, R2 per recording and stream (A.2, A.5).

Windows load through the evaluation pipeline and a DataLoader; each stream's predictions are
averaged per sample over the overlapping windows, and only then is it decided which samples count
(:func:`neuropoyo.evaluation.selection.evaluation_mask`), on the whole recording's intervals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from neuropoyo import distributed
from neuropoyo.data.dataset import Dataset, load_dataset, run_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.devices import checked_device
from neuropoyo.distributed import SINGLE, Ranks
from neuropoyo.errors import DataError
from neuropoyo.evaluation.report import RecordingResult, summarize, write_report
from neuropoyo.evaluation.selection import EvaluationConfig, split_evaluation_mask
from neuropoyo.evaluation.stitch import Stitcher
from neuropoyo.pipeline import (
    RecordingSet,
    WindowDataset,
    batches_of,
    evaluation_pipeline,
    sliding_windows,
    window_loader,
)
from neuropoyo.pipeline.transforms import ABSOLUTE_TIME
from neuropoyo.schema import MODEL_KEYS
from neuropoyo.trained import TrainedModel, load_model

TIME_TOLERANCE_S = 1e-6  # a query's absolute time maps back to its stream row within this


def recordings_for(
    trained: TrainedModel,
    recordings: Dataset | Sequence[str | Path],
    *,
    train_spans: Sequence[Intervals] | None = None,
) -> RecordingSet:
    """``recordings`` (files, or a Dataset with per-source options) read with the model's readouts,
    vocabularies and scales (their ids must be known); train_spans as in RecordingSet. A label
    stream must have the classes of the model's readout (DataError otherwise)."""
    recording_set = RecordingSet(
        recordings,
        readouts=trained.model.config.readouts,
        unit_vocab=trained.unit_vocab,
        session_vocab=trained.session_vocab,
        normalizer=trained.normalizer,
        grow=False,
        train_spans=train_spans,
    )
    expected = trained.model.config.classes
    for f, streams in zip(recording_set.files, recording_set.streams):
        for name in streams:
            own = list(f.behavior_classes.get(name, ()))
            if own != expected.get(name, []):
                raise DataError(
                    f"{f.path}: stream {name!r} has classes {own or 'none (a continuous stream)'} but the "
                    f"model's readout {name!r} has {expected.get(name) or 'none (a continuous readout)'}; "
                    "decode it with a model trained on the same classes, or re-import it with those classes"
                )
    return recording_set


def evaluation_config(trained: TrainedModel) -> EvaluationConfig:
    """The evaluation settings the model was trained with."""
    return EvaluationConfig.from_dict(trained.settings.get("evaluation"), source="model settings")


def _stream_rows(stream_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    rows = np.clip(np.searchsorted(stream_times, times - TIME_TOLERANCE_S), 0, len(stream_times) - 1)
    if np.any(np.abs(stream_times[rows] - times) > TIME_TOLERANCE_S):
        raise RuntimeError("evaluation: a window's sample does not map back to its stream")
    return rows


@torch.no_grad()
def predict(
    trained: TrainedModel,
    recordings: RecordingSet,
    *,
    split: str = "test",
    evaluation: EvaluationConfig | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    ranks: Ranks = SINGLE,
) -> list[RecordingResult]:
    """Stitched predictions on ``split``, one result per recording and stream it decodes, keeping
    the samples ``evaluation`` (default: the model's settings) scores, or those of the recording's
    source's evaluation_intervals. progress: a bar at a terminal. ranks: in a distributed run each
    rank predicts every ``world``-th batch and the stitched sums are added up across ranks, so
    every rank returns the one-process results."""
    evaluation = evaluation or evaluation_config(trained)
    model = trained.model.to(device).eval()
    context = model.config.context_length_s
    spans = recordings.split_spans(split)
    windows = sliding_windows(spans, context_s=context, step_s=evaluation.step_s)
    loader = window_loader(
        WindowDataset(recordings, evaluation_pipeline(recordings, context_length_s=context, split=split)),
        batches_of(windows, batch_size)[ranks.rank :: ranks.world],
        num_workers=num_workers,
        pin_memory=torch.device(device).type == "cuda",
    )
    streams = {
        (r, name): stream for r in range(len(recordings)) for name, stream in recordings.readout_streams(r).items()
    }
    widths = {key: len(s.classes) or s.dim for key, s in streams.items()}  # logits of a label stream
    stitchers = {key: Stitcher(len(s), widths[key]) for key, s in streams.items()}
    names = model.config.readout_names
    shown = progress and ranks.is_main
    bar = tqdm(loader, desc=f"evaluating ({split})", unit="batch", disable=None if shown else True)
    for chunk, batch in bar:
        outputs = model(**{k: batch[k].to(device) for k in MODEL_KEYS})
        outputs = {k: v.float().cpu().numpy() for k, v in outputs.items()}
        real = batch["output_mask"].numpy()
        decoder = batch["output_decoder_index"].numpy()
        times = batch[ABSOLUTE_TIME].numpy()
        for b, window in enumerate(chunk):
            for d, name in enumerate(names):
                mine = real[b] & (decoder[b] == d)
                if not mine.any():
                    continue
                key = (window.recording, name)
                rows = _stream_rows(streams[key].timestamps, times[b][mine])
                stitchers[key].add(rows, outputs[name][b][mine, : widths[key]])
    for stitcher in stitchers.values():
        stitcher.sums = distributed.all_sum(stitcher.sums, ranks)
        stitcher.counts = distributed.all_sum(stitcher.counts, ranks)
    results = []
    for (r, name), stream in streams.items():
        f = recordings.files[r]
        rows = np.flatnonzero(stitchers[(r, name)].covered)
        own = recordings.options[r].evaluation_intervals
        scored = evaluation if own is None else evaluation.with_intervals(own)
        rows = rows[split_evaluation_mask(f, spans[r], stream.timestamps[rows], scored)]
        predicted = stitchers[(r, name)].mean()[rows]
        if not stream.is_labels:
            predicted = recordings.normalizer.denormalize(predicted, f.info.brainset, name)
        results.append(
            RecordingResult.in_split(
                f.info, name, stream.unit, spans[r], stream.timestamps[rows],
                true=stream.values[rows].astype(np.float64), predicted=predicted,
                classes=stream.classes, trials=f.trials,
            )
        )
    return results


def evaluate(
    model: str | Path | TrainedModel,
    data: Dataset | Sequence[str | Path] | None,
    out_dir: str | Path | None,
    *,
    split: str = "test",
    eval_intervals: Sequence[str] | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Score a trained model on ``split`` of ``data`` and write the report to ``out_dir`` (None:
    return the summary without writing files).

    data: recording files, folders, globs or dataset files (:mod:`neuropoyo.data.dataset`); None:
    the dataset the run of ``model`` (a run directory or a model folder in one) recorded in its
    run.json, with its per-source options. eval_intervals: interval names that count for every
    task and recording instead of the model's settings and the sources' evaluation_intervals
    (``["all"]``: the whole split). Returns the summary written to ``out_dir/metrics.json``.
    Under ``torchrun`` the ranks share the windows; rank 0 writes the report and every rank
    returns the same summary.
    """
    ranks = distributed.join(checked_device(device))
    device = checked_device(distributed.device_for(str(device), ranks))
    if data is None and isinstance(model, TrainedModel):
        raise ValueError("evaluate: name the recordings (data) to score an in-memory model on")
    dataset = run_dataset(model) if data is None else load_dataset(data)
    trained = model if isinstance(model, TrainedModel) else load_model(model, device=device)
    evaluation = evaluation_config(trained)
    if eval_intervals:
        evaluation = evaluation.with_intervals(eval_intervals)
        dataset = dataset.without_evaluation_intervals()
    recordings = recordings_for(trained, dataset)
    results = predict(
        trained, recordings, split=split, evaluation=evaluation, batch_size=batch_size,
        num_workers=num_workers, device=device, progress=progress, ranks=ranks,
    )
    empty = [f"{r.recording_id}/{r.stream}" for r in results if len(r.timestamps) < 2]
    if empty:
        raise DataError(
            f"evaluation: no {split} samples to score in {empty}; check the evaluation intervals "
            "(--eval-intervals all scores the whole split); a split without samples of the stream lies "
            "where it was not recorded: re-import the recording (`neuropoyo prepare` draws every split "
            "where the behavior exists)"
        )
    if out_dir is None or not ranks.is_main:
        return summarize(results, split=split)
    return write_report(results, Path(out_dir), split=split)
