"""Fit the classic decoders on each recording's training split and score them like POYO.

Each recording gets its own decoder trained from scratch (as the paper's baselines are), on at most
one behavior sample per bin, with the validation split choosing the ridge penalty, stopping the
networks or choosing the place-field decoder's estimate. It is scored on exactly the test samples
``neuropoyo evaluate`` scores (same split, same
:func:`~neuropoyo.evaluation.selection.evaluation_mask`); reports go to ``OUT/<method>/`` in the
same format.

Bins: Wiener, MLP and GRU read 20 lags of 10 ms (:data:`~neuropoyo.baselines.binning.BIN_S`,
``N_LAGS``); the place-field decoder (``bayes``) one window of 0.5 s (``BAYES_BIN_S``). A bin
width or lag count given explicitly applies to every method. A split holding fewer than two samples
of the stream is an error naming the split and the fix (a file imported before splits were drawn
where the behavior exists, or a stream recorded only in part of the session).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from neuropoyo.baselines.binning import BAYES_BIN_S, BAYES_N_LAGS, BIN_S, N_LAGS, design
from neuropoyo.baselines.decoders import (
    BayesDecoder,
    GRUDecoder,
    LogisticRegression,
    MLPClassifier,
    MLPDecoder,
    WienerFilter,
)
from neuropoyo.data.dataset import recording_paths
from neuropoyo.data.directory import stream_classes
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.data.store import read_recording
from neuropoyo.errors import ConfigError, DataError
from neuropoyo.evaluation.report import RecordingResult, write_report
from neuropoyo.evaluation.selection import EvaluationConfig, split_evaluation_mask
from neuropoyo.interrupt import Interrupted, raise_lost, signal_of

METHODS = {"wiener": WienerFilter, "mlp": MLPDecoder, "gru": GRUDecoder, "bayes": BayesDecoder}
DEFAULT_METHODS = ("wiener", "mlp", "gru")  # bayes decodes positions only: asked for by name
CLASSIFIERS = {"logistic": LogisticRegression, "mlp": MLPClassifier}  # the methods of a label stream
DEFAULT_CLASSIFIERS = ("logistic", "mlp")
GRIDS = {"bayes": (BAYES_BIN_S, BAYES_N_LAGS)}  # (bin_s, n_lags) of a method; the others: BIN_S, N_LAGS
# classifiers read 1 s of history in 100 ms bins: what POYO's 1 s context sees of a slow trial response
CLASSIFIER_GRID = (0.1, 10)
_SEEDED = ("mlp", "gru")
_RESPLIT = (
    "re-import the recording (`neuropoyo prepare` draws every split where the behavior exists) or "
    "assign its splits again with neuropoyo.data.splits.assign_splits"
)


def _decoder(method: str, seed: int, classes: tuple[str, ...] = ()):
    """A new estimator of ``method``: a classifier of ``classes`` for a label stream."""
    known = CLASSIFIERS if classes else METHODS
    if method not in known:
        kind = "a label stream (classification)" if classes else "a continuous stream"
        raise ConfigError(f"baselines: unknown method {method!r} for {kind}; choose from {', '.join(known)}")
    arguments = {"n_classes": len(classes)} if classes else {}
    if method in _SEEDED:
        arguments["seed"] = seed
    return known[method](**arguments)


def _grid(method: str, bin_s: float | None, n_lags: int | None, labels: bool = False) -> tuple[float, int]:
    """The (bin_s, n_lags) ``method`` reads: the given values, else the method's own."""
    own_bin_s, own_n_lags = CLASSIFIER_GRID if labels else GRIDS.get(method, (BIN_S, N_LAGS))
    return (own_bin_s if bin_s is None else bin_s, own_n_lags if n_lags is None else n_lags)


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
    if keep.sum() < 2:
        raise DataError(
            f"baselines: {recording.recording_id} has {int(keep.sum())} test sample(s) of {stream} to "
            f"score ({len(times)} in the test split before the evaluation intervals); with none in the "
            f"split, {_RESPLIT}; else check the evaluation intervals (--eval-intervals all scores the "
            "whole split)"
        )
    return X[keep], y[keep], times[keep]


def _designs(recording: Recording, stream: str, fit_spans: dict, evaluation: EvaluationConfig, grid) -> dict:
    """split -> (X, y, times) on one (bin_s, n_lags) grid: train and valid (one sample per bin) to
    fit on, test to score; a split with under two samples of the stream is a DataError."""
    bin_s, n_lags = grid
    designs = {
        name: design(recording, stream, spans, bin_s=bin_s, n_lags=n_lags, one_per_bin=True)
        for name, spans in fit_spans.items()
    }
    for name, (_, y, _) in designs.items():
        if len(y) < 2:
            use = "to fit on" if name == "train" else "to choose the penalty, stopping epoch or estimate on"
            raise DataError(
                f"baselines: the {name} split of {recording.recording_id} holds {len(y)} sample(s) of "
                f"{stream} (the baselines need at least 2 {use}): the split lies where {stream} was "
                f"not recorded; {_RESPLIT}"
            )
    designs["test"] = _test_design(recording, stream, evaluation, bin_s, n_lags)
    return designs


def _check_dims(methods: Sequence[str], recording: Recording, stream: str) -> None:
    """The place-field decoder needs a 1-D or 2-D stream."""
    if "bayes" in methods and stream in recording.behavior and recording.behavior[stream].dim > 2:
        raise ConfigError(
            f"baselines: bayes decodes a 1-D or 2-D position, but {stream} of {recording.recording_id} "
            f"has {recording.behavior[stream].dim} dimensions; leave bayes out of --methods or choose "
            "a position stream with --readout"
        )


def run_baselines(
    data: Sequence[str | Path],
    out_dir: str | Path,
    *,
    methods: Sequence[str] | None = None,
    stream: str = "hand_vel",
    evaluation: EvaluationConfig | None = None,
    bin_s: float | None = None,
    n_lags: int | None = None,
    seed: int = 0,
    train_spans: Sequence[Intervals] | None = None,
) -> dict[str, dict]:
    """Fit every method on every recording of ``data``; returns method -> summary (metrics.json).

    methods: of :data:`METHODS`, or of :data:`CLASSIFIERS` for a label stream (a classification
    task, scored like POYO by decisions pooled per trial); None: :data:`DEFAULT_METHODS`, or
    :data:`DEFAULT_CLASSIFIERS` for a label stream.

    evaluation: which test samples are scored (default :class:`EvaluationConfig`, as evaluate).
    bin_s, n_lags: the bins of every method (None: each method's own, :data:`GRIDS`).
    train_spans: one Intervals per recording (in ``recording_paths`` order) to fit on instead of
    its training split (a few-shot subset); the validation and test splits stay the file's.
    Ctrl-C or SIGTERM raises :class:`~neuropoyo.interrupt.Interrupted` before any report is written.
    """
    evaluation = evaluation or EvaluationConfig()
    paths = recording_paths(data)
    classes = stream_classes(paths, [stream]).get(stream, ())
    methods = methods or (DEFAULT_CLASSIFIERS if classes else DEFAULT_METHODS)
    for method in methods:
        _decoder(method, seed, tuple(classes))  # fail on an unknown method before any work
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
            _check_dims(methods, recording, stream)
            designs: dict[tuple, dict] = {}  # (bin_s, n_lags) -> split -> (X, y, times)
            for method in methods:
                raise_lost()
                grid = _grid(method, bin_s, n_lags, labels=bool(classes))
                if grid not in designs:
                    designs[grid] = _designs(recording, stream, fit_spans, evaluation, grid)
                splits = designs[grid]
                progress.start(recording.recording_id, method)
                decoder = _decoder(method, seed, tuple(classes))
                decoder.fit(splits["train"][0], splits["train"][1], splits["valid"][0], splits["valid"][1])
                X_test, y_test, times = splits["test"]
                results[method].append(
                    RecordingResult.in_split(
                        recording.info, stream, recording.behavior[stream].unit,
                        recording.splits["test"], times, true=y_test, predicted=decoder.predict(X_test),
                        classes=recording.behavior[stream].classes, trials=recording.trials,
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
