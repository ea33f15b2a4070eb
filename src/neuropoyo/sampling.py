"""Which windows to read: random 1 s windows for training, sliding windows for evaluation (A.2).

A window is ``(recording index, start, end)`` in absolute seconds; it never leaves the span it was
drawn from, so training windows stay inside the training split and test windows inside the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neuropoyo.data.intervals import Intervals


@dataclass(frozen=True)
class Window:
    recording: int
    start: float
    end: float


def random_windows(
    spans: Sequence[Intervals], *, context_s: float, rng: np.random.Generator
) -> list[Window]:
    """One epoch of random training windows over each recording's ``spans`` (e.g. its train split).

    A recording with d seconds of spans gets ceil(d / context_s) windows. Each picks a span with
    probability proportional to its length, then a start uniformly so that the window fits in the span;
    a span shorter than the context gives a window covering it whole. Windows are shuffled across
    recordings.
    """
    windows = []
    for index, recording_spans in enumerate(spans):
        durations = recording_spans.durations()
        total = float(durations.sum())
        if total <= 0:
            continue
        n = int(np.ceil(total / context_s))
        pick = rng.choice(len(recording_spans), size=n, p=durations / total)
        room = np.maximum(durations[pick] - context_s, 0.0)
        start = recording_spans.start[pick] + rng.random(n) * room
        end = np.minimum(start + context_s, recording_spans.end[pick])
        windows.extend(Window(index, float(s), float(e)) for s, e in zip(start, end))
    order = rng.permutation(len(windows))
    return [windows[i] for i in order]


def sliding_windows(
    spans: Sequence[Intervals], *, context_s: float, step_s: float
) -> list[Window]:
    """Evaluation windows: every span is covered by windows of ``context_s`` every ``step_s``.

    The last window of a span is aligned to its end so no sample is dropped; a span shorter than the
    context is one window covering it whole.
    """
    windows = []
    for index, recording_spans in enumerate(spans):
        for start, end in zip(recording_spans.start, recording_spans.end):
            if end - start <= context_s:
                windows.append(Window(index, float(start), float(end)))
                continue
            starts = np.arange(start, end - context_s, step_s)
            starts = np.append(starts, end - context_s)
            windows.extend(Window(index, float(s), float(s + context_s)) for s in starts)
    return windows
