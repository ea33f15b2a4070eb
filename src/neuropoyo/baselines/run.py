"""Fit the classic decoders on each recording's training split and score them like POYO.

Each recording gets its own decoder trained from scratch (as the paper's baselines are), on at most
one behavior sample per bin, with the validation split choosing the ridge penalty or stopping the
networks. It is scored on exactly the test samples ``neuropoyo evaluate`` scores (same split, same
:func:`~neuropoyo.evaluation.selection.evaluation_mask`); reports go to ``OUT/<method>/`` in the
same format.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from neuropoyo.baselines.binning import BIN_S, N_LAGS, design
from neuropoyo.baselines.decoders import GRUDecoder, MLPDecoder, WienerFilter
from neuropoyo.data.dataset import recording_paths
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.data.store import read_recording
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.report import RecordingResult, write_report
from neuropoyo.evaluation.selection import EvaluationConfig, split_evaluation_mask
from neuropoyo.interrupt import Interrupted, raise_lost, signal_of

METHODS = {"wiener": WienerFilter, "mlp": MLPDecoder, "gru": GRUDecoder}


def _decoder(method: str, seed: int):
    if method not in METHODS:
        raise ConfigError(f"baselines: unknown method {method!r}; choose from {', '.join(METHODS)}")
    return METHODS[method]() if method == "wiener" else METHODS[method](seed=seed)


class _Progress:
    """One step per (recording, method) fit: a tqdm bar on a terminal, otherwise a line on stderr
    as each fit starts and ends, so logs of long runs stay readable."""

    def __init__(self, total: int):
        self.total, self.done, self.label, self.started = total, 0, "", 0.0
        self.bar = tqdm(total=total, desc="baselines", unit="fit") if sys.stderr.isatty() else None

    def _line(self, text: str) -> None:
        print(f"baselines [{self.done + 1}/{self.total}] {text}", file=sys.stderr, flush=True)

    def start(self, recording_id: str, method: str) -> None:
        self.label, self.started = f"{method} on {recording_id}", time.perf_counter()
        if self.bar is not None:
            self.bar.set_postfix_str(self.label)
        else:
            self._line(f"fitting {self.label}")

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.update()
        else:
            self._line(f"{self.label}: done in {time.perf_counter() - self.started:.1f} s")
        self.done, self.label = self.done + 1, ""

    def interrupted(self) -> str:
        """Where an interrupt stopped the fits, and how to go on, in one line."""
        where = f"during {self.label}" if self.label else "between fits"
        return (
            f"{where}, {self.done} of {self.total} fits done; nothing was written (the reports come at "
            "the end); rerun the same command to start over"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _test_design(
    recording: Recording, stream: str, evaluation: EvaluationConfig, bin_s: float, n_lags: int
):
    """Test samples that count for evaluation: (X, y, times)."""
    test_spans = recording.splits["test"]
    X, y, times = design(recording, stream, test_spans, bin_s=bin_s, n_lags=n_lags)
    keep = split_evaluation_mask(recording, test_spans, times, evaluation)
    return X[keep], y[keep], times[keep]


def run_baselines(
    data: Sequence[str | Path],
    out_dir: str | Path,
    *,
    methods: Sequence[str] = tuple(METHODS),
    stream: str = "hand_vel",
    evaluation: EvaluationConfig | None = None,
    bin_s: float = BIN_S,
    n_lags: int = N_LAGS,
    seed: int = 0,
    train_spans: Sequence[Intervals] | None = None,
) -> dict[str, dict]:
    """Fit every method on every recording of ``data``; returns method -> summary (metrics.json).

    evaluation: which test samples are scored (default :class:`EvaluationConfig`, as evaluate).
    train_spans: one Intervals per recording (in ``recording_paths`` order) to fit on instead of
    its training split (a few-shot subset); the validation and test splits stay the file's.
    Ctrl-C or SIGTERM raises :class:`~neuropoyo.interrupt.Interrupted` before any report is written.
    """
    evaluation = evaluation or EvaluationConfig()
    for method in methods:
        _decoder(method, seed)  # fail on an unknown method before any work
    paths = recording_paths(data)
    if train_spans is not None and len(train_spans) != len(paths):
        raise ConfigError(f"baselines: {len(train_spans)} train_spans for {len(paths)} recordings")
    results: dict[str, list[RecordingResult]] = {method: [] for method in methods}
    progress = _Progress(len(paths) * len(methods))
    try:
        for k, path in enumerate(paths):
            recording = read_recording(path)
            fit_spans = {
                "train": recording.splits["train"] if train_spans is None else train_spans[k],
                "valid": recording.splits["valid"],
            }
            splits = {
                name: design(recording, stream, spans, bin_s=bin_s, n_lags=n_lags, one_per_bin=True)
                for name, spans in fit_spans.items()
            }
            X_test, y_test, times = _test_design(recording, stream, evaluation, bin_s, n_lags)
            for method in methods:
                raise_lost()
                progress.start(recording.recording_id, method)
                decoder = _decoder(method, seed)
                decoder.fit(splits["train"][0], splits["train"][1], splits["valid"][0], splits["valid"][1])
                results[method].append(
                    RecordingResult.in_split(
                        recording.info, stream, recording.behavior[stream].unit,
                        recording.splits["test"], times, true=y_test, predicted=decoder.predict(X_test),
                    )
                )
                progress.finish()
    except KeyboardInterrupt as error:
        raise Interrupted(signal_of(error), progress.interrupted()) from None
    finally:
        progress.close()
    out_dir = Path(out_dir)
    return {
        method: write_report(method_results, out_dir / method, split="test")
        for method, method_results in results.items()
    }
