"""Evaluation: sliding windows over a split, stitched predictions, R2 per recording (A.2, A.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from neuropoyo.batching import collate
from neuropoyo.checkpoint import TrainedModel, load_model
from neuropoyo.data.dataset import RecordingSet
from neuropoyo.data.directory import find_recordings
from neuropoyo.errors import DataError
from neuropoyo.evaluation.report import RecordingResult, write_report
from neuropoyo.evaluation.stitch import Stitcher
from neuropoyo.sampling import Window, sliding_windows
from neuropoyo.tokenizer import MODEL_KEYS

TIME_TOLERANCE_S = 1e-6  # a window's relative sample time maps back to its stream row within this


def _window_queries(recordings: RecordingSet, window: Window, split: str) -> tuple[dict, dict]:
    """Tokens of an evaluation window, and readout name -> (P_name,) absolute times of its queries."""
    data = recordings.window(window, split)
    tokens = recordings.tokenizers[window.recording].tokenize(
        data,
        unit_index=recordings.unit_rows[window.recording],
        session_index=recordings.session_rows[window.recording],
    )
    return tokens, {
        name: window.start + stream.timestamps for name, stream in data.behavior.items()
    }


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
    batch_size: int = 32,
    device: str = "cpu",
) -> list[RecordingResult]:
    """Stitched predictions on ``split`` for every recording and readout stream it holds."""
    model = trained.model.to(device).eval()
    names = model.config.readout_names
    spans = recordings.split_spans(split)
    windows = sliding_windows(
        spans, context_s=model.config.context_length_s, step_s=recordings.config.eval_step_s
    )
    streams = {
        (r, name): f.stream(name)
        for r, f in enumerate(recordings.files)
        for name in names
        if name in f.behavior_names
    }
    stitchers = {key: Stitcher(len(s), s.dim) for key, s in streams.items()}
    evaluated = {key: np.zeros(len(s), dtype=bool) for key, s in streams.items()}
    starts = range(0, len(windows), batch_size)
    for first in tqdm(starts, desc=f"evaluating ({split})", unit="batch", disable=None):
        chunk = windows[first : first + batch_size]
        tokens, times = zip(*(_window_queries(recordings, w, split) for w in chunk))
        batch = {k: v.to(device) for k, v in collate(list(tokens)).items()}
        outputs = {k: v.float().cpu().numpy() for k, v in model(**{k: batch[k] for k in MODEL_KEYS}).items()}
        for b, (window, sample) in enumerate(zip(chunk, tokens)):
            for d, name in enumerate(names):
                mine = sample["output_decoder_index"] == d
                if not mine.any():
                    continue
                key = (window.recording, name)
                rows = _stream_rows(
                    streams[key].timestamps, times[b][name][sample["output_sample_index"][mine]]
                )
                stitchers[key].add(rows, outputs[name][b, : len(mine)][mine, : streams[key].dim])
                evaluated[key][rows] |= sample["eval_mask"][mine]
    results = []
    for (r, name), stream in streams.items():
        keep = evaluated[(r, name)] & stitchers[(r, name)].covered
        f = recordings.files[r]
        predicted = recordings.normalizer.denormalize(
            stitchers[(r, name)].mean()[keep], f.info.brainset, name
        )
        times_kept = stream.timestamps[keep]
        results.append(
            RecordingResult(
                recording_id=f.recording_id,
                task=f.info.task,
                brainset=f.info.brainset,
                stream=name,
                timestamps=times_kept,
                true=stream.values[keep].astype(np.float64),
                predicted=predicted,
                segment=np.searchsorted(spans[r].start, times_kept, side="right") - 1,
                units=stream.unit,
            )
        )
    return results


def evaluate(
    model: str | Path | TrainedModel,
    data: Sequence[str | Path],
    out_dir: str | Path,
    *,
    split: str = "test",
    batch_size: int = 32,
    device: str = "cpu",
) -> dict:
    """Score a trained model on ``split`` of ``data`` and write the report to ``out_dir``.

    Returns the summary written to ``out_dir/metrics.json``.
    """
    trained = model if isinstance(model, TrainedModel) else load_model(model, device=device)
    recordings = trained.recordings(find_recordings(data))
    results = predict(trained, recordings, split=split, batch_size=batch_size, device=device)
    empty = [r.recording_id for r in results if len(r.timestamps) < 2]
    if empty:
        raise DataError(
            f"evaluation: no {split} samples inside the evaluation intervals of {empty}; "
            "check the data config's eval_intervals"
        )
    return write_report(results, Path(out_dir), split=split)
