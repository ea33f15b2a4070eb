"""Evaluation-sample selection: named intervals per task, successful trials, fallbacks, config."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neuropoyo.data.intervals import Intervals
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.selection import EvaluationConfig, evaluation_mask, normalize_task

TRIALS = Intervals(
    np.array([0.0, 10.0, 20.0]), np.array([8.0, 18.0, 28.0]), {"success": np.array([1, 0, 1])}
)
REACH = Intervals(np.array([2.0, 12.0, 22.0]), np.array([5.0, 15.0, 25.0]))
TIMES = np.array([1.0, 3.0, 9.0, 13.0, 23.0, 26.0, 30.0])
#                 trial0  reach0  gap  reach1 (failed)  reach2  trial2  outside


def mask(times=TIMES, *, task="center_out", trials=TRIALS, intervals=None, config=None):
    return evaluation_mask(
        times,
        task=task,
        trials=trials,
        intervals={"reach": REACH} if intervals is None else intervals,
        config=config or EvaluationConfig(),
        source="rec_1",
    )


def quiet(**kwargs):
    """The mask, failing the test on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return mask(**kwargs)


def test_default_scores_reaches_of_successful_trials():
    np.testing.assert_array_equal(quiet(), [0, 1, 0, 0, 1, 0, 0])


def test_successful_only_off_or_without_success_column_keeps_failed_trials():
    np.testing.assert_array_equal(
        quiet(config=EvaluationConfig(successful_only=False)), [0, 1, 0, 1, 1, 0, 0]
    )
    no_column = Intervals(TRIALS.start, TRIALS.end)
    np.testing.assert_array_equal(quiet(trials=no_column), [0, 1, 0, 1, 1, 0, 0])


def test_trials_name_means_the_recordings_trials_and_names_are_or_ed():
    hold = Intervals(np.array([29.0]), np.array([31.0]))
    config = EvaluationConfig(intervals={"center_out": ("trials", "hold")}, successful_only=False)
    got = quiet(intervals={"reach": REACH, "hold": hold}, config=config)
    np.testing.assert_array_equal(got, [1, 1, 0, 1, 1, 1, 1])


@pytest.mark.parametrize("task", ["Center-Out", "CENTER OUT", " center_out "])
def test_task_names_are_normalised(task):
    np.testing.assert_array_equal(quiet(task=task), [0, 1, 0, 0, 1, 0, 0])
    assert normalize_task(task) == "center_out"
    config = EvaluationConfig(intervals={task: ("trials",)})
    assert config.intervals == {"center_out": ("trials",)}


def test_brainsets_upper_case_task_matches_a_lower_case_key():
    config = EvaluationConfig(intervals={"reaching": ("reach",)})
    np.testing.assert_array_equal(quiet(task="REACHING", config=config), [0, 1, 0, 0, 1, 0, 0])


def test_unlisted_task_warns_and_scores_the_whole_split():
    with pytest.warns(UserWarning, match=r"rec_1: task 'Head Direction'.*whole split is scored.*"
                      r"intervals\['head_direction'\]"):
        got = mask(task="Head Direction", config=EvaluationConfig(successful_only=False))
    np.testing.assert_array_equal(got, np.ones(TIMES.size, dtype=bool))
    with pytest.warns(UserWarning, match="whole split"):  # successful trials still apply
        np.testing.assert_array_equal(mask(task="head_direction"), [1, 1, 0, 0, 1, 1, 0])


def test_random_target_sessions_are_scored_whole_by_default():
    np.testing.assert_array_equal(quiet(task="Random-Target"), [1, 1, 0, 0, 1, 1, 0])


def test_missing_intervals_fall_back_to_successful_trials_with_a_warning():
    with pytest.warns(UserWarning, match=r"rec_1: task 'center_out' is scored in \['reach'\].*"
                      r"has none.*its trials instead"):
        got = mask(intervals={})
    np.testing.assert_array_equal(got, [1, 1, 0, 0, 1, 1, 0])


def test_without_trials_either_the_fallback_is_the_whole_split():
    with pytest.warns(UserWarning, match="its whole split instead"):
        got = mask(trials=Intervals.empty(), intervals={})
    np.testing.assert_array_equal(got, np.ones(TIMES.size, dtype=bool))


def test_present_but_empty_intervals_score_nothing_without_fallback():
    got = quiet(intervals={"reach": Intervals.empty()})  # the split holds no reach: nothing counts
    assert not got.any()


def test_with_intervals_overrides_every_task():
    reach = EvaluationConfig().with_intervals(["reach"])
    assert reach.intervals == {"*": ("reach",)}
    np.testing.assert_array_equal(quiet(task="random_target", config=reach), [0, 1, 0, 0, 1, 0, 0])
    everything = EvaluationConfig(successful_only=False).with_intervals(["all"])
    np.testing.assert_array_equal(quiet(config=everything), np.ones(TIMES.size, dtype=bool))
    with pytest.raises(ConfigError, match="non-empty interval names"):
        EvaluationConfig().with_intervals([])
    with pytest.raises(ConfigError, match="cannot be combined"):
        EvaluationConfig().with_intervals(["all", "reach"])


def test_named_task_wins_over_the_wildcard():
    config = EvaluationConfig(intervals={"center_out": ("reach",), "*": ("trials",)})
    np.testing.assert_array_equal(quiet(config=config), [0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(quiet(task="other", config=config), [1, 1, 0, 0, 1, 1, 0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"step_s": 0.0}, "step_s must be a number of seconds > 0"),
        ({"step_s": float("nan")}, "step_s"),
        ({"step_s": True}, "step_s"),
        ({"successful_only": "yes"}, "successful_only must be true or false"),
        ({"intervals": ["reach"]}, "intervals must map task names"),
        ({"intervals": {"center_out": "reach"}}, r"intervals\['center_out'\] must be a list"),
        ({"intervals": {"center_out": []}}, "non-empty interval names"),
        ({"intervals": {"center_out": ["reach", " "]}}, "non-empty interval names"),
        ({"intervals": {"": ["reach"]}}, "task names must be non-empty"),
        ({"intervals": {"Center-Out": ["a"], "center_out": ["b"]}}, "same task 'center_out'"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EvaluationConfig(**kwargs)


def test_dict_round_trip_and_unknown_keys():
    config = EvaluationConfig(intervals={"center_out": ("reach", "hold")}, step_s=0.25)
    assert config.to_dict() == {
        "intervals": {"center_out": ["reach", "hold"]}, "successful_only": True, "step_s": 0.25
    }
    assert EvaluationConfig().to_dict()["intervals"] == {"center_out": ["reach"], "random_target": ["all"]}
    assert EvaluationConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"run.yaml: unknown evaluation option\(s\) \['step'\]; "
                       r"known: \['intervals', 'successful_only', 'step_s'\]"):
        EvaluationConfig.from_dict({"step": 1.0}, "run.yaml")
    with pytest.raises(ConfigError, match="run.yaml: evaluation: step_s"):
        EvaluationConfig.from_dict({"step_s": -1}, "run.yaml")


def spans(draw_pairs) -> Intervals:
    return Intervals(np.array([a for a, _ in draw_pairs]), np.array([a + d for a, d in draw_pairs]))


span_lists = st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.1, 10.0)), max_size=6)


@settings(max_examples=80, deadline=None)
@given(
    trial_spans=st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.1, 10.0), st.booleans()), max_size=6),
    reach=span_lists,
    hold=span_lists,
    times=st.lists(st.floats(-5.0, 65.0), max_size=30),
    successful_only=st.booleans(),
)
def test_mask_matches_brute_force(trial_spans, reach, hold, times, successful_only):
    trial_spans = sorted(trial_spans)
    trials = Intervals(
        np.array([a for a, _, _ in trial_spans]),
        np.array([a + d for a, d, _ in trial_spans]),
        {"success": np.array([s for _, _, s in trial_spans], dtype=bool)},
    )
    config = EvaluationConfig(intervals={"task": ("reach", "hold")}, successful_only=successful_only)
    got = quiet(
        times=np.array(times), task="task", trials=trials,
        intervals={"reach": spans(reach), "hold": spans(hold)}, config=config,
    )

    def inside(t, pairs):
        return any(a <= t < a + d for a, d in pairs)

    want = [
        (inside(t, reach) or inside(t, hold))
        and (not successful_only or any(a <= t < a + d and s for a, d, s in trial_spans))
        for t in times
    ]
    np.testing.assert_array_equal(got, np.array(want, dtype=bool))
