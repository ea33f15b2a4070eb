"""Which windows to read: random 1 s windows for training, sliding windows for evaluation (A.2).

A window is ``(recording index, start, end)`` in absolute seconds; it never leaves the span it was
drawn from, so training windows stay inside the training split and test windows inside the test
split. A training window also carries ``key`` = (epoch, position), which names the random stream of
its augmentation (:mod:`neuropoyo.seeding`), so a window is tokenized the same way in any worker
and on any rank. In a distributed run every rank draws the same global batches and
:class:`RankBatches` gives it its share, balanced by token count (:func:`balanced_shares`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from neuropoyo import seeding
from neuropoyo.errors import ConfigError
from neuropoyo.data.intervals import Intervals


@dataclass(frozen=True)
class Window:
    recording: int
    start: float
    end: float
    key: tuple[int, ...] = ()  # (epoch, position) of a training draw; () for evaluation
    stand_in: bool = False  # a copy a rank reads when its global batch left it none (RankBatches)


def _weights(spans: Sequence[Intervals], weights: Sequence[float] | None) -> list[float]:
    """One sampling weight per recording (1 when ``weights`` is None)."""
    if weights is None:
        return [1.0] * len(spans)
    if len(weights) != len(spans) or any(not (math.isfinite(w) and w >= 0) for w in weights):
        raise ValueError(
            f"training windows: need one finite weight >= 0 per recording ({len(spans)}), got {list(weights)}"
        )
    return [float(w) for w in weights]


def window_count(duration: float, *, context_s: float, weight: float = 1.0) -> int:
    """Random windows per epoch of a recording with ``duration`` s of spans: ceil(weight * d / context_s)."""
    return math.ceil(weight * duration / context_s) if duration > 0 else 0


def windows_per_epoch(
    spans: Sequence[Intervals], *, context_s: float, weights: Sequence[float] | None = None
) -> int:
    """Random windows in one epoch: :func:`window_count` summed over the recordings."""
    return sum(
        window_count(s.total_duration(), context_s=context_s, weight=w) for s, w in zip(spans, _weights(spans, weights))
    )


def random_windows(
    spans: Sequence[Intervals],
    *,
    context_s: float,
    rng: np.random.Generator,
    weights: Sequence[float] | None = None,
) -> list[Window]:
    """One epoch of random training windows over each recording's ``spans`` (e.g. its train split).

    A recording with d seconds of spans and sampling weight w (``weights``, default 1) gets
    ceil(w * d / context_s) windows, so w times its share at weight 1. Each picks a span with
    probability proportional to its length, then a start uniformly so that the window fits in the
    span; a span shorter than the context gives a window covering it whole. Windows are shuffled
    across recordings.
    """
    windows = []
    for index, (recording_spans, weight) in enumerate(zip(spans, _weights(spans, weights))):
        durations = recording_spans.durations()
        total = float(durations.sum())
        n = window_count(total, context_s=context_s, weight=weight)
        if n == 0:
            continue
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
    context is one window covering it whole. ``step_s`` must not exceed ``context_s`` (a larger step
    would leave samples between windows).
    """
    if not 0 < step_s <= context_s:
        raise ValueError(
            f"sliding windows: step {step_s} s must be > 0 and at most the window ({context_s} s), "
            "or samples between windows are never predicted"
        )
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


class RandomWindowSampler(torch.utils.data.Sampler[Window]):
    """The random training windows of one epoch at a time, for one persistent DataLoader.

    Epoch e's windows are :func:`random_windows` drawn from the stream (seed, EPOCH_WINDOWS, e), so
    they depend on (seed, epoch) alone; :meth:`set_epoch` chooses the epoch and the position to start
    from (to resume mid-epoch). Window i of epoch e gets ``key = (e, i)``. weights: the sampling
    weight of each recording (default 1 each).
    """

    def __init__(
        self, spans: Sequence[Intervals], *, context_s: float, seed: int, weights: Sequence[float] | None = None
    ):
        self.spans, self.context_s, self.seed = list(spans), context_s, seed
        self.weights = _weights(self.spans, weights)
        self.epoch, self.start = 0, 0
        self.windows_per_epoch = windows_per_epoch(self.spans, context_s=context_s, weights=self.weights)

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(self.windows_per_epoch - self.start, 0)

    def __iter__(self) -> Iterator[Window]:
        rng = seeding.stream(self.seed, seeding.EPOCH_WINDOWS, self.epoch)
        windows = random_windows(self.spans, context_s=self.context_s, rng=rng, weights=self.weights)
        for i in range(self.start, len(windows)):
            yield dataclasses.replace(windows[i], key=(self.epoch, i))


class EpochBatches(torch.utils.data.Sampler[list[Window]]):
    """Batches of a :class:`RandomWindowSampler`'s epochs, one epoch after another, without end.

    Epoch e is cut into ``steps_per_epoch`` = ceil(n / batch_size) consecutive batches (the last
    may be short), exactly as a loop over epochs would cut it, but one DataLoader pass over this
    serves the whole run: its workers never restart and keep prefetching across epoch boundaries.
    The pass begins at batch ``start`` of epoch ``epoch`` (to resume a run mid-epoch).
    """

    def __init__(self, windows: RandomWindowSampler, *, batch_size: int, epoch: int = 0, start: int = 0):
        if windows.windows_per_epoch == 0:
            raise ValueError("training windows: the spans hold no recorded time to draw windows from")
        self.windows, self.batch_size, self.epoch, self.start = windows, batch_size, epoch, start

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.windows.windows_per_epoch / self.batch_size)

    def __iter__(self) -> Iterator[list[Window]]:
        epoch, first = self.epoch, self.start
        while True:
            self.windows.set_epoch(epoch, start=first * self.batch_size)
            batch: list[Window] = []
            for window in self.windows:
                batch.append(window)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            epoch, first = epoch + 1, 0


def batches_of(windows: Sequence[Window], batch_size: int) -> list[list[Window]]:
    """Consecutive batches of ``batch_size`` windows (the last may be short)."""
    return [list(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)]


def padded_cost(lengths: Sequence[int]) -> int:
    """Tokens a padded batch of windows of these token counts holds: count x the longest."""
    return len(lengths) * max(lengths, default=0)


def balanced_shares(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Split windows of token counts ``lengths`` into ``parts`` shares (indices into ``lengths``)
    of windows of similar length, with the padded tokens of the costliest share as few as can be.

    Windows are sorted by length and cut into consecutive runs, so each share pads little. The
    largest share's count x longest is minimised exactly: a binary search on that cost, each
    candidate checked by filling runs greedily (a run is closed when one more window would pass
    the cost). Every share gets at least one window when ``len(lengths) >= parts`` (a run is
    split where there are too few: splitting never raises a cost); with fewer windows the last
    shares are empty.
    """
    if parts < 1:
        raise ValueError(f"balanced_shares: need at least one part, got {parts}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    ranked = [max(int(lengths[i]), 1) for i in order]

    def runs(cap: int) -> list[list[int]]:
        out: list[list[int]] = [[]]
        for position, length in enumerate(ranked):
            if out[-1] and (len(out[-1]) + 1) * length > cap:
                out.append([])
            out[-1].append(position)
        return out

    low, high = max(ranked, default=0), len(ranked) * max(ranked, default=0)
    while low < high:
        cap = (low + high) // 2
        low, high = (low, cap) if len(runs(cap)) <= parts else (cap + 1, high)
    found = [run for run in runs(low) if run]
    while 0 < len(found) < min(parts, len(ranked)):
        widest = max(range(len(found)), key=lambda k: len(found[k]))
        run = found.pop(widest)
        found[widest:widest] = [run[: len(run) // 2], run[len(run) // 2 :]]
    shares = [sorted(order[p] for p in run) for run in found]
    return shares + [[] for _ in range(parts - len(shares))]


class RankBatches(torch.utils.data.Sampler[list[Window]]):
    """This rank's windows of each global batch of ``batches``, split by token count.

    Every rank draws the same global batches (same seed), so the global batch — and with it
    the run — does not depend on the number of ranks. Each global batch is cut by
    :func:`balanced_shares` on ``tokens(window)`` (an estimate made before reading: spikes in
    the window plus delimiters), and share ``rank`` is yielded. A rank reads only its own windows;
    when a short last batch of an epoch holds fewer windows than ranks, a rank left without one
    reads a stand-in (``Window.stand_in``): a copy of a window whose loss counts zero, since every
    rank must take part in each step's gradient exchange.
    """

    def __init__(self, batches: EpochBatches, tokens: Callable[[Window], int], *, rank: int, world: int):
        if batches.batch_size < world:
            raise ConfigError(
                f"training.batch_size {batches.batch_size} is the global batch: it must be at least "
                f"the number of processes ({world})"
            )
        self.batches, self.tokens, self.rank, self.world = batches, tokens, rank, world

    @property
    def steps_per_epoch(self) -> int:
        return self.batches.steps_per_epoch

    def __iter__(self) -> Iterator[list[Window]]:
        for batch in self.batches:
            share = balanced_shares([self.tokens(w) for w in batch], self.world)[self.rank]
            if share:
                yield [batch[i] for i in share]
            else:  # a short last batch of an epoch: fewer windows than ranks
                yield [dataclasses.replace(batch[0], stand_in=True)]
