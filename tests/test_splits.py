"""Splits: the held-out fractions, stratification, determinism, no overlap ever, and only where the
behavior exists."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import build_recording
from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.splits import assign_splits, behavior_coverage, block_splits, trial_split_labels


def trialized(n_trials: int, n_conditions: int, seed: int = 0) -> Recording:
    """Back-to-back 2 s trials with 0.5 s inter-trial periods and a condition column."""
    rng = np.random.default_rng(seed)
    start = np.arange(n_trials) * 2.5
    trials = Intervals(start, start + 2.0, {"target_id": rng.integers(0, n_conditions, n_trials)})
    return Recording(
        info=RecordingInfo("trialized"),
        spikes=Spikes.empty(),
        units=Units(["u0"]),
        behavior={},
        domain=Intervals.single(0.0, float(start[-1] + 2.5)),
        trials=trials,
    )


def assert_no_overlap(splits: dict):
    names = sorted(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert splits[a].intersect(splits[b]).total_duration() == 0.0, (a, b)


@settings(max_examples=60, deadline=None)
@given(st.integers(10, 300), st.integers(1, 8), st.integers(0, 10_000))
def test_trial_splits_hold_out_20_and_10_percent_without_overlap(n_trials, n_conditions, seed):
    rec = assign_splits(trialized(n_trials, n_conditions), seed=seed)
    splits = rec.splits
    assert_no_overlap(splits)
    n_test, n_valid = len(splits["test"]), len(splits["valid"])
    assert abs(n_test - 0.2 * n_trials) <= 1
    assert abs(n_valid - 0.1 * n_trials) <= 1.5
    covered = splits["train"].union(splits["valid"]).union(splits["test"])
    assert covered.total_duration() == pytest.approx(rec.domain.total_duration())


def test_trial_splits_are_stratified_by_condition():
    rec = trialized(400, 8, seed=1)
    labels = trial_split_labels(rec.trials, seed=3)
    condition = rec.trials.columns["target_id"]
    for c in range(8):
        n = np.sum(condition == c)
        assert abs(np.sum(labels[condition == c] == 2) - 0.2 * n) <= 1
        assert abs(np.sum(labels[condition == c] == 1) - 0.1 * n) <= 1.5


def test_trial_splits_are_seeded():
    rec = trialized(100, 4)
    a = trial_split_labels(rec.trials, seed=7)
    assert np.array_equal(a, trial_split_labels(rec.trials, seed=7))
    assert not np.array_equal(a, trial_split_labels(rec.trials, seed=8))


def test_missing_stratify_column_names_the_columns():
    rec = trialized(20, 2)
    with pytest.raises(KeyError, match="no trial column 'direction'.*target_id"):
        trial_split_labels(rec.trials, stratify_by="direction")


def test_training_windows_never_touch_held_out_trials():
    rec = assign_splits(build_recording(), seed=0)
    held_out = rec.splits["valid"].union(rec.splits["test"])
    train = rec.splits["train"]
    assert train.intersect(held_out).total_duration() == 0.0
    assert np.all(train.contains(held_out.start) == False)  # noqa: E712
    # Every spike is in exactly one split.
    membership = sum(s.contains(rec.spikes.times).astype(int) for s in rec.splits.values())
    assert np.all(membership == 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 50.0), min_size=1, max_size=6), st.integers(0, 1000))
def test_block_splits_of_continuous_data(lengths, seed):
    starts = np.cumsum([0.0] + [length + 1.0 for length in lengths[:-1]])
    domain = Intervals(starts, starts + np.array(lengths))
    splits = block_splits(domain, seed=seed)
    assert_no_overlap(splits)
    total = domain.total_duration()
    assert splits["test"].total_duration() == pytest.approx(0.2 * total)
    assert splits["valid"].total_duration() == pytest.approx(0.1 * total)
    assert splits["train"].total_duration() == pytest.approx(0.7 * total)
    for split in splits.values():  # never inside a gap
        assert split.intersect(domain).total_duration() == pytest.approx(split.total_duration())


def test_continuous_recording_gets_block_splits():
    rec = build_recording()
    rec = assign_splits(Recording(rec.info, rec.spikes, rec.units, rec.behavior, rec.domain))
    assert rec.splits["test"].total_duration() == pytest.approx(0.2 * rec.domain.total_duration())


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum below 1"):
        assign_splits(trialized(10, 1), valid_fraction=0.5, test_fraction=0.5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 90.0), st.floats(2.0, 30.0)), min_size=1, max_size=4), st.integers(0, 1000))
def test_continuous_splits_lie_where_the_behavior_exists(runs, seed):
    """Behavior sampled at 10 Hz in a few runs of a 100 s recording: the blocks are cut over the
    covered time only (within 0.5 s of a sample), in the usual fractions."""
    t = np.unique(np.concatenate([np.arange(a, min(a + n, 100.0), 0.1) for a, n in runs]))
    recording = Recording(
        RecordingInfo("r"), Spikes.empty(), Units(["u"]), {"x": TimeSeries(t, t[:, None], "cm")},
        Intervals.single(0.0, 100.0),
    )
    covered = behavior_coverage(recording)
    splits = assign_splits(recording, seed=seed).splits
    assert_no_overlap(splits)
    for name, fraction in (("train", 0.7), ("valid", 0.1), ("test", 0.2)):
        assert splits[name].total_duration() == pytest.approx(fraction * covered.total_duration())
        assert splits[name].intersect(covered).total_duration() == pytest.approx(splits[name].total_duration())
