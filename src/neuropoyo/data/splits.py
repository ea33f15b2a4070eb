"""Train / valid / test splits of one recording that never overlap.

Trialized recordings hold out whole trials: 20 % for test and 10 % for validation by default,
seeded and stratified by condition (e.g. reach target) when a condition column exists. Training is
everything else that was recorded, inter-trial periods included, so random training windows can be
drawn anywhere in it (the paper does not use trial structure for training).

Continuous recordings are cut into ``n_blocks`` contiguous blocks of equal recorded time; a seeded draw
picks which blocks are test and valid.

Every split lies where the behavior exists (:func:`behavior_coverage`): the recorded time within
half a second of a sample of some behavior stream. A hippocampal session whose position is tracked
on the track but not in the sleep box has its blocks cut over the running time alone, so no split
lands in rest. Training leaves the uncovered time out as well: a window there holds no target, so it
would spend a training step on nothing (and the normaliser and baselines see only behavior samples
anyway). A recording without behavior streams is split over its whole domain.
"""

from __future__ import annotations

import numpy as np

from neuropoyo import seeding
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.errors import MissingKeyError

CONDITION_COLUMNS = ("condition", "target_id", "target_dir")
WHOLE_RECORDING = "all"  # the split name that means the whole recorded domain (predictions everywhere)
BEHAVIOR_REACH_S = 0.5  # a time within this of a behavior sample is covered (gaps up to 1 s are bridged)


def behavior_coverage(recording: Recording) -> Intervals:
    """The part of ``recording.domain`` where the behavior exists: the times within
    :data:`BEHAVIOR_REACH_S` (or 0.75 median sampling steps, when longer) of a sample of some
    behavior stream. The whole domain when the recording has no behavior samples."""
    covered = [_near(s.timestamps) for s in recording.behavior.values() if len(s.timestamps)]
    if not covered:
        return recording.domain
    union = covered[0]
    for spans in covered[1:]:
        union = union.union(spans)
    return recording.domain.merged().intersect(union)


def _near(timestamps: np.ndarray) -> Intervals:
    """Merged spans of the times within the reach of some of the sorted (N,) ``timestamps``."""
    steps = np.diff(timestamps)
    positive = steps[steps > 0]
    reach = max(BEHAVIOR_REACH_S, 0.75 * float(np.median(positive)) if positive.size else 0.0)
    breaks = np.flatnonzero(steps > 2 * reach)
    first = np.concatenate([[0], breaks + 1])
    last = np.concatenate([breaks, [timestamps.size - 1]])
    return Intervals(timestamps[first] - reach, timestamps[last] + reach)


def _condition(trials: Intervals, stratify_by: str | None) -> np.ndarray:
    """(K,) condition label per trial; all zeros when not stratifying."""
    if stratify_by == "auto":
        stratify_by = next((c for c in CONDITION_COLUMNS if c in trials.columns), None)
    if stratify_by is None:
        return np.zeros(len(trials), dtype=np.int64)
    if stratify_by not in trials.columns:
        raise MissingKeyError(
            f"splits: no trial column {stratify_by!r} to stratify by; "
            f"trial columns are {sorted(trials.columns)} (pass stratify_by=None to not stratify)"
        )
    return np.unique(trials.columns[stratify_by], return_inverse=True)[1].reshape(-1)


def _systematic_pick(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool picking round(n * fraction) items (up to 1) spread evenly along the order."""
    position = np.arange(n + 1) * fraction + rng.random()
    return np.diff(np.floor(position)) > 0


def trial_split_labels(
    trials: Intervals,
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    stratify_by: str | None = "auto",
    seed: int = 0,
) -> np.ndarray:
    """(K,) labels 0 = train, 1 = valid, 2 = test for each trial.

    Trials are ordered by condition then at random; every 1/test_fraction-th one goes to test and
    then every 1/valid_fraction-th of the rest to valid, so each condition is split in proportion.
    """
    rng = seeding.stream(seed, seeding.SPLITS)
    condition = _condition(trials, stratify_by)
    order = np.lexsort((rng.random(len(trials)), condition))
    labels = np.zeros(len(trials), dtype=np.int64)
    is_test = _systematic_pick(len(order), test_fraction, rng)
    labels[order[is_test]] = 2
    rest = order[~is_test]
    rest_fraction = valid_fraction / (1.0 - test_fraction) if test_fraction < 1 else 0.0
    labels[rest[_systematic_pick(len(rest), rest_fraction, rng)]] = 1
    return labels


def _block_edges(domain: Intervals, n_blocks: int) -> np.ndarray:
    """(n_blocks + 1,) absolute times cutting the recorded time into equal parts."""
    recorded = np.concatenate([[0.0], np.cumsum(domain.durations())])
    targets = np.linspace(0.0, recorded[-1], n_blocks + 1)
    k = np.clip(np.searchsorted(recorded, targets, side="right") - 1, 0, len(domain) - 1)
    edges = domain.start[k] + (targets - recorded[k])
    edges[0], edges[-1] = domain.start[0], domain.end[-1]
    return edges


def block_splits(
    domain: Intervals,
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    n_blocks: int = 10,
    seed: int = 0,
) -> dict[str, Intervals]:
    """Contiguous-block splits of a continuous recording's domain."""
    if len(domain) == 0:
        return {name: Intervals.empty() for name in ("train", "valid", "test")}
    edges = _block_edges(domain.merged(), n_blocks)
    blocks = Intervals(edges[:-1], edges[1:])
    rng = seeding.stream(seed, seeding.SPLITS)
    n_test = int(round(n_blocks * test_fraction))
    n_valid = int(round(n_blocks * valid_fraction))
    if n_test + n_valid >= n_blocks:
        raise ValueError(
            f"splits: {n_blocks} blocks leave nothing to train on with test_fraction={test_fraction} "
            f"and valid_fraction={valid_fraction}; use more blocks"
        )
    labels = np.zeros(n_blocks, dtype=np.int64)
    chosen = rng.permutation(n_blocks)
    labels[chosen[:n_test]] = 2
    labels[chosen[n_test : n_test + n_valid]] = 1
    return {
        name: blocks.select(labels == code).merged().intersect(domain)
        for code, name in enumerate(("train", "valid", "test"))
    }


def assign_splits(
    recording: Recording,
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    stratify_by: str | None = "auto",
    n_blocks: int = 10,
    seed: int = 0,
) -> Recording:
    """The recording with ``train`` / ``valid`` / ``test`` splits set (replacing any present), all
    inside :func:`behavior_coverage` (the domain where the behavior exists).

    With trials: valid and test are the held-out trials' spans (inside the covered domain) and train
    is the rest of it. Without trials: contiguous blocks of the covered domain (see
    :func:`block_splits`).
    """
    if not (valid_fraction >= 0 and test_fraction >= 0 and valid_fraction + test_fraction < 1):
        raise ValueError(
            f"splits: need 0 <= valid_fraction, test_fraction and a sum below 1; "
            f"got {valid_fraction} and {test_fraction}"
        )
    domain = behavior_coverage(recording)
    if not recording.has_trials:
        splits = block_splits(
            domain,
            valid_fraction=valid_fraction,
            test_fraction=test_fraction,
            n_blocks=n_blocks,
            seed=seed,
        )
        return recording.with_splits(splits)
    labels = trial_split_labels(
        recording.trials,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        stratify_by=stratify_by,
        seed=seed,
    )
    spans = Intervals(recording.trials.start, recording.trials.end)
    valid = spans.select(labels == 1).intersect(domain)
    test = spans.select(labels == 2).intersect(domain)
    train = domain.difference(valid.merged()).difference(test.merged())
    return recording.with_splits({"train": train, "valid": valid, "test": test})


def whole_trials(train: Intervals, trials: Intervals) -> np.ndarray:
    """Indices of the ``trials`` that lie wholly inside the ``train`` spans (the training trials)."""
    train = train.merged()
    span = np.searchsorted(train.start, trials.start, side="right") - 1
    whole = (span >= 0) & (trials.end <= train.end[np.maximum(span, 0)]) if len(train) else span < -1
    return np.flatnonzero(whole)


def first_trials(train: Intervals, trials: Intervals, n: int, *, source: str = "recording") -> Intervals:
    """The few-shot training set of ``n`` trials: the spans of the first ``n`` training trials (by
    start, :func:`whole_trials`), and nothing else of the training split."""
    candidates = whole_trials(train, trials)
    if not 1 <= n <= candidates.size:
        raise MissingKeyError(
            f"{source}: asked for the first {n} training trials but its training split holds "
            f"{candidates.size}; ask for 1 to {candidates.size}"
        )
    chosen = np.sort(candidates[np.argsort(trials.start[candidates], kind="stable")[:n]])
    return Intervals(trials.start[chosen], trials.end[chosen]).merged()


def first_minutes(train: Intervals, minutes: float, *, source: str = "recording") -> Intervals:
    """The few-shot training set of the first ``minutes`` of recorded training time, in time order."""
    train = train.merged()
    total = train.total_duration()
    if not 0 < minutes * 60.0 <= total + 1e-9:
        raise MissingKeyError(
            f"{source}: asked for the first {minutes} min of training data but its training split "
            f"holds {total / 60:.2f} min"
        )
    before = np.concatenate([[0.0], np.cumsum(train.durations())[:-1]])
    keep = before < minutes * 60.0
    end = np.minimum(train.end[keep], train.start[keep] + minutes * 60.0 - before[keep])
    return Intervals(train.start[keep], end)
