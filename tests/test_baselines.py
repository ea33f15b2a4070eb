"""Classic decoders: exact binning, causal lag alignment, ridge recovery, learned networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.baselines import (
    GRUDecoder,
    MLPDecoder,
    WienerFilter,
    bin_spikes,
    design,
    lagged_counts,
)
from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, Units
from neuropoyo.data.simulate import Lab, make_animal, simulate_session
from neuropoyo.data.splits import assign_splits
from neuropoyo.evaluation.metrics import r2_score

SETTINGS = settings(max_examples=60, deadline=None)


def make_recording(times, units, n_units, domain=Intervals.single(0.0, 10.0)) -> Recording:
    times, units = np.asarray(times, dtype=np.float64), np.asarray(units, dtype=np.int32)
    order = np.argsort(times, kind="stable")
    return Recording(
        info=RecordingInfo("r"),
        spikes=Spikes(times[order], units[order]),
        units=Units(np.array([f"u{k}" for k in range(n_units)])),
        behavior={},
        domain=domain,
    )


spike_lists = st.lists(
    st.tuples(st.floats(0.0, 10.0, allow_nan=False), st.integers(0, 3)), max_size=40
)


@SETTINGS
@given(
    spike_lists,
    st.lists(st.floats(-1.0, 11.0, allow_nan=False), min_size=2, max_size=12, unique=True),
)
def test_bin_spikes_matches_brute_force(spikes, edges):
    times = np.array([s for s, _ in spikes], dtype=np.float64)
    units = np.array([u for _, u in spikes], dtype=np.int64)
    edges = np.sort(edges)
    expected = np.zeros((edges.size - 1, 4), dtype=np.int64)
    for s, u in zip(times, units):
        for k in range(edges.size - 1):
            if edges[k] <= s < edges[k + 1]:
                expected[k, u] += 1
    np.testing.assert_array_equal(bin_spikes(times, units, 4, edges), expected)


@SETTINGS
@given(
    spike_lists,
    st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=6),
    st.sampled_from([0.005, 0.01, 0.05, 0.3]),
    st.integers(1, 6),
)
def test_lagged_counts_match_brute_force(spikes, times, bin_s, n_lags):
    rec = make_recording([s for s, _ in spikes], [u for _, u in spikes], 4)
    counts, _ = lagged_counts(rec, np.array(times), bin_s=bin_s, n_lags=n_lags)
    assert counts.shape == (len(times), n_lags, 4)
    for i, t in enumerate(times):
        for k in range(n_lags):
            lo, hi = t - bin_s * (k + 1), t - bin_s * k
            for u in range(4):
                expected = sum(1 for s, v in spikes if v == u and lo <= s < hi)
                assert counts[i, k, u] == expected


@SETTINGS
@given(
    st.floats(3.0, 9.0),
    st.integers(0, 9),
    st.floats(0.05, 0.95),
    st.lists(st.floats(0.0, 1.0), max_size=5),
)
def test_spike_lands_in_its_lag_and_future_spikes_never_count(t, k, fraction, future_offsets):
    bin_s = 0.01
    s = t - (k + fraction) * bin_s
    future = [t + d for d in future_offsets]  # at t itself or later
    rec = make_recording([s, *future], [0] * (1 + len(future)), 1)
    counts, observed = lagged_counts(rec, np.array([t]), bin_s=bin_s, n_lags=10)
    expected = np.zeros((1, 10, 1), dtype=np.float32)
    expected[0, int(np.floor((t - s) / bin_s)), 0] = 1
    assert int(np.floor((t - s) / bin_s)) == k
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(observed, 1.0)


def test_observed_fraction_marks_history_outside_the_domain():
    rec = make_recording([], [], 2, Intervals([0.0, 6.0], [5.0, 10.0]))
    times = np.array([0.5, 1.0, 5.0, 5.25, 6.1, 7.0, 10.0])
    _, observed = lagged_counts(rec, times, bin_s=0.25, n_lags=4)  # 1 s of history, lag 0 first
    expected = [
        [1, 1, 0, 0],  # 0.5: [0.25, 0.5), [0, 0.25) recorded; before 0 not
        [1, 1, 1, 1],
        [1, 1, 1, 1],  # 5.0: [4, 5) recorded
        [0, 1, 1, 1],  # 5.25: [5, 5.25) is the gap
        [0.4, 0, 0, 0],  # 6.1: [5.85, 6.1) holds 0.1 s of data
        [1, 1, 1, 1],
        [1, 1, 1, 1],
    ]
    np.testing.assert_allclose(observed, expected, atol=1e-6)


@SETTINGS
@given(
    st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=2, max_size=10, unique=True),
    st.lists(st.floats(-1.0, 21.0, allow_nan=False), min_size=1, max_size=6),
    st.sampled_from([0.05, 0.3, 1.0]),
)
def test_observed_fraction_matches_brute_force(bounds, times, bin_s):
    bounds = sorted(bounds)[: len(bounds) // 2 * 2]
    domain = Intervals(np.array(bounds[0::2]), np.array(bounds[1::2]))
    _, observed = lagged_counts(make_recording([], [], 1, domain), np.array(times), bin_s=bin_s, n_lags=3)
    for i, t in enumerate(times):
        for k in range(3):
            lo, hi = t - bin_s * (k + 1), t - bin_s * k
            inside = sum(max(0.0, min(hi, e) - max(lo, b)) for b, e in zip(domain.start, domain.end))
            assert observed[i, k] == pytest.approx(inside / bin_s, abs=1e-5)


def test_design_decodes_every_sample_of_the_spans_from_their_spikes_only(session):
    spans = session.splits["test"]
    X, y, times = design(session, "hand_vel", spans, bin_s=0.02, n_lags=10)
    stream = session.restrict(spans).behavior["hand_vel"]
    np.testing.assert_array_equal(times, stream.timestamps)
    np.testing.assert_array_equal(y, stream.values)
    assert X.shape == (times.size, 10, len(session.units) + 1)
    # bins outside the segment hold no spikes: nothing leaks in from the training split
    observed = X[:, :, -1]
    assert (observed == 0).any() and np.all(X[:, :, :-1][observed == 0] == 0)
    first = np.searchsorted(spans.merged().start, times, side="right") - 1
    full = times - spans.merged().start[first] >= 0.2
    np.testing.assert_array_equal(observed[full], 1.0)
    assert np.all(observed[~full].min(axis=1) < 1)


def test_one_per_bin_keeps_the_first_sample_of_each_bin_with_the_same_rows(session):
    spans = session.splits["train"]
    X, y, times = design(session, "hand_vel", spans, bin_s=0.02, n_lags=10)  # behavior at 100 Hz
    X1, y1, times1 = design(session, "hand_vel", spans, bin_s=0.02, n_lags=10, one_per_bin=True)
    bins = np.floor(times / 0.02)
    first = np.concatenate([[True], bins[1:] != bins[:-1]])
    np.testing.assert_array_equal(times1, times[first])
    assert 0.45 < times1.size / times.size < 0.55
    np.testing.assert_array_equal(X1, X[first])
    np.testing.assert_array_equal(y1, y[first])


def test_wiener_filter_recovers_a_noise_free_linear_system():
    rng = np.random.default_rng(0)
    X = rng.poisson(2.0, size=(600, 3, 4)).astype(np.float64)
    coef = rng.normal(size=(3, 4, 2))
    intercept = np.array([0.5, -1.5])

    def target(x):
        return x.reshape(len(x), -1) @ coef.reshape(-1, 2) + intercept

    train, valid = (X[:400], target(X[:400])), (X[400:], target(X[400:]))
    model = WienerFilter(alphas=(1e3, 1.0, 1e-9)).fit(*train, *valid)
    assert model.alpha_ == 1e-9
    np.testing.assert_allclose(model.coef_, coef, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, intercept, atol=1e-6)
    assert r2_score(target(X), model.predict(X)) > 1 - 1e-9
    assert WienerFilter().fit(*train, *valid).alpha_ == 1e-2  # the smallest default penalty


@pytest.fixture(scope="module")
def session() -> Recording:
    animal = make_animal("m", n_neurons=60, seed=1)
    return assign_splits(
        simulate_session(
            animal=animal, day=0, task="center_out", lab=Lab("a", 100.0), n_trials=80, seed=2
        )
    )


@pytest.fixture(scope="module")
def splits(session):
    return {
        name: design(session, "hand_vel", session.splits[name], bin_s=0.02, n_lags=10)[:2]
        for name in ("train", "valid", "test")
    }


@pytest.mark.parametrize(
    "make, threshold",
    [
        (lambda: WienerFilter(), 0.35),
        pytest.param(lambda: MLPDecoder(max_epochs=8), 0.45, marks=pytest.mark.slow),
        pytest.param(lambda: GRUDecoder(max_epochs=8), 0.45, marks=pytest.mark.slow),
    ],
    ids=["wiener", "mlp", "gru"],
)
def test_decoders_learn_a_simulated_center_out_session(splits, make, threshold):
    model = make().fit(*splits["train"], *splits["valid"])
    score = r2_score(splits["test"][1], model.predict(splits["test"][0]))
    print(f"{type(model).__name__}: test R2 = {score:.3f}")
    assert score > threshold


@pytest.mark.parametrize("cls", [MLPDecoder, GRUDecoder])
def test_networks_are_seeded_and_leave_the_global_rng_alone(cls):
    rng = np.random.default_rng(3)
    X = rng.poisson(1.0, size=(200, 4, 5)).astype(np.float32)
    y = X.sum(axis=1)[:, :2] + rng.normal(size=(200, 2))
    state = torch.get_rng_state()
    first = cls(max_epochs=3, seed=7).fit(X[:150], y[:150], X[150:], y[150:]).predict(X)
    again = cls(max_epochs=3, seed=7).fit(X[:150], y[:150], X[150:], y[150:]).predict(X)
    other = cls(max_epochs=3, seed=8).fit(X[:150], y[:150], X[150:], y[150:]).predict(X)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("cls", [WienerFilter, MLPDecoder, GRUDecoder])
def test_inputs_are_validated(cls):
    X, y = np.ones((10, 2, 3)), np.ones((10, 1))
    with pytest.raises(RuntimeError, match="fit before predict"):
        cls().predict(X)
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        cls().fit(X, y[:9], X, y)
    with pytest.raises(ValueError, match=r"\(N, n_lags, U\)"):
        cls().fit(X[:, 0], y, X, y)
    with pytest.raises(ValueError, match="validation shapes"):
        cls().fit(X, y, X[:, :1], y)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import simulated

    from neuropoyo.data.directory import write_dataset
    from neuropoyo.data.simulate import TASKS

    folder = tmp_path_factory.mktemp("data")
    return folder, write_dataset(simulated(tasks=TASKS, trials=30, duration_s=40.0), folder)


def scored_times(out, method, path) -> np.ndarray:
    rows = np.loadtxt(out / method / "predictions" / path.stem / "hand_vel.csv", delimiter=",", skiprows=1)
    return rows[:, 0]


@pytest.mark.slow
def test_run_baselines_scores_the_evaluation_samples_of_poyo(dataset, tmp_path, capsys):
    from neuropoyo.baselines.run import run_baselines
    from neuropoyo.data.store import read_recording
    from neuropoyo.evaluation.selection import EvaluationConfig, evaluation_mask

    folder, paths = dataset
    (summary,) = run_baselines([folder], tmp_path, methods=["wiener"]).values()
    assert set(summary["recordings"]) == {p.stem for p in paths}
    for path in paths:
        recording = read_recording(path)
        test = recording.restrict(recording.splits["test"])
        stream = test.behavior["hand_vel"]
        counted = evaluation_mask(
            stream.timestamps, task=recording.info.task, trials=test.trials,
            intervals=test.intervals, config=EvaluationConfig(), source=path.stem,
        )
        if recording.info.task == "center_out":  # reaches of successful trials; random target: all
            assert 0 < counted.sum() < counted.size
        # the first 200 ms of segments too
        np.testing.assert_array_equal(scored_times(tmp_path, "wiener", path), stream.timestamps[counted])
        assert summary["recordings"][path.stem]["streams"]["hand_vel"]["r2"] > 0.3
    # progress, one line per fit start and end when stderr is not a terminal
    err = capsys.readouterr().err
    for k, path in enumerate(paths, start=1):
        assert f"baselines [{k}/{len(paths)}] fitting wiener on {path.stem}" in err
        assert f"baselines [{k}/{len(paths)}] wiener on {path.stem}: done in" in err


@pytest.mark.slow
def test_run_baselines_follows_the_evaluation_config(dataset, tmp_path):
    from neuropoyo.baselines.run import run_baselines
    from neuropoyo.data.store import read_recording
    from neuropoyo.evaluation.selection import EvaluationConfig

    folder, paths = dataset
    everything = EvaluationConfig(successful_only=False).with_intervals(["all"])
    run_baselines([folder], tmp_path, methods=["wiener"], evaluation=everything)
    for path in paths:
        recording = read_recording(path)
        expected = recording.restrict(recording.splits["test"]).behavior["hand_vel"].timestamps
        np.testing.assert_array_equal(scored_times(tmp_path, "wiener", path), expected)
