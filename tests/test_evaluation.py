"""R2 equals scikit-learn's; stitching averages known overlaps exactly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import r2_score as sk_r2

from neuropoyo.evaluation.metrics import r2_per_dim, r2_score
from neuropoyo.evaluation.stitch import Stitcher


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 200), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_r2_equals_scikit_learn(n, d, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d)
    pred = y + rng.normal(size=(n, d)) * rng.uniform(0, 3)
    assert r2_score(y, pred) == pytest.approx(sk_r2(y, pred), rel=1e-10, abs=1e-12)
    assert r2_per_dim(y, pred) == pytest.approx(sk_r2(y, pred, multioutput="raw_values"), abs=1e-12)


def test_r2_edge_cases():
    assert r2_score(np.array([1.0, 2, 3]), np.array([1.0, 2, 3])) == 1.0
    assert r2_score(np.array([2.0, 2, 2]), np.array([2.0, 2, 2])) == 1.0
    with pytest.raises(ValueError, match="differ"):
        r2_score(np.zeros((3, 2)), np.zeros((3, 1)))


def test_stitching_averages_overlaps_exactly():
    stitcher = Stitcher(6, 1)
    stitcher.add(np.array([0, 1, 2, 3]), np.array([[1.0], [2.0], [3.0], [4.0]]))
    stitcher.add(np.array([2, 3, 4]), np.array([[5.0], [8.0], [6.0]]))
    mean = stitcher.mean()
    assert mean[:5, 0].tolist() == [1.0, 2.0, 4.0, 6.0, 6.0]
    assert np.isnan(mean[5, 0]) and stitcher.covered.tolist() == [True] * 5 + [False]
