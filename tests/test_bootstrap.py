"""BCa bootstrap intervals and DeadNet's virtual batches."""

import numpy as np
import pytest
from scipy import stats

from phototox.stats.bootstrap import (
    bca_interval,
    bca_mean,
    cluster_accuracy_interval,
    paper_accuracy_interval,
    virtual_batch_accuracies,
)


def test_bca_mean_matches_scipy_on_skewed_data():
    data = np.random.default_rng(0).exponential(2.0, 60)
    ours = bca_mean(data, n_resamples=20000, seed=1)
    ref = stats.bootstrap((data,), np.mean, n_resamples=20000, method="BCa", random_state=2).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.06) and ours.high == pytest.approx(ref.high, abs=0.06)
    # skewed data: BCa shifts the interval right of the symmetric normal one
    centre = data.mean()
    assert (ours.high - centre) > (centre - ours.low)


def test_generic_bca_equals_vectorised_mean():
    data = np.random.default_rng(3).normal(5, 1, 40)
    a = bca_mean(data, n_resamples=4000, seed=0)
    b = bca_interval(lambda idx: data[idx].mean(), len(data), n_resamples=4000, seed=0)
    assert a.estimate == pytest.approx(b.estimate)
    assert abs(a.low - b.low) < 0.05 and abs(a.high - b.high) < 0.05


def test_bca_interval_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(11)
    hits = 0
    for trial in range(200):
        ci = bca_mean(rng.normal(0.0, 1.0, 30), n_resamples=1000, seed=trial)
        hits += ci.low <= 0.0 <= ci.high
    assert 0.88 <= hits / 200 <= 0.99


def test_virtual_batches_are_balanced_10_plus_10():
    labels = np.array([0] * 50 + [1] * 200)
    correct = np.r_[np.ones(50), np.zeros(200)]  # all healthy right, all sick wrong
    acc = virtual_batch_accuracies(correct, labels)
    assert acc.shape == (100,) and np.allclose(acc, 0.5)


def test_paper_interval_brackets_the_accuracy():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 1000)
    correct = rng.random(1000) < 0.9
    ci = paper_accuracy_interval(correct, labels)
    assert ci.low < ci.estimate < ci.high and 0.85 < ci.estimate < 0.95


def test_cluster_interval_is_wider_for_correlated_crops():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(20), 50)
    labels = np.repeat(np.arange(20) % 2, 50)
    correct = np.repeat(rng.random(20) < 0.8, 50)  # whole images right or wrong
    cluster = cluster_accuracy_interval(correct, groups, labels, n_resamples=2000)
    paper = paper_accuracy_interval(correct, labels)
    assert (cluster.high - cluster.low) > (paper.high - paper.low)
