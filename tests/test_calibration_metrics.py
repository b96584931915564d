"""Expected calibration error and the reliability diagram, with image-level intervals."""

from __future__ import annotations

import numpy as np

from phototox.stats.calibration_metrics import (
    ece_interval,
    expected_calibration_error,
    reliability_diagram,
)


def _calibrated(n: int, seed: int):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return p, (rng.uniform(0, 1, n) < p).astype(int)


def test_calibrated_set_has_small_ece():
    p, y = _calibrated(20000, 0)
    assert expected_calibration_error(p, y) < 0.02


def test_overconfident_set_has_large_ece():
    p, y = _calibrated(20000, 1)
    overconfident = np.where(p >= 0.5, 0.99, 0.01)  # right side, far too sure
    assert expected_calibration_error(overconfident, y) > 0.2
    # and an under-confident one (squeezed towards 0.5) too
    assert expected_calibration_error(0.5 + 0.2 * (p - 0.5), y) > 0.15


def test_ece_matches_hand_computation():
    p = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([0, 1, 1, 1])
    # bin 0: mean p 0.05, fraction 0.5 -> gap 0.45 (weight 1/2); bin 9: 0.95 vs 1 -> 0.05 (weight 1/2)
    assert np.isclose(expected_calibration_error(p, y), 0.25)


def test_cluster_interval_is_wider_than_item_interval():
    rng = np.random.default_rng(3)
    images = np.repeat(np.arange(20), 50)
    image_bias = rng.normal(0, 0.2, 20)[images]  # crops of one image share a miscalibration
    p = np.clip(rng.uniform(0.2, 0.8, len(images)) + image_bias, 0, 1)
    y = (rng.uniform(0, 1, len(images)) < np.clip(p - image_bias, 0, 1)).astype(int)
    clustered = ece_interval(p, y, images, n_resamples=500)
    naive = ece_interval(p, y, None, n_resamples=500)
    assert clustered.low <= clustered.estimate <= clustered.high
    assert (clustered.high - clustered.low) > (naive.high - naive.low)


def test_reliability_diagram_bins_and_intervals():
    p, y = _calibrated(3000, 4)
    images = np.arange(3000) // 30
    d = reliability_diagram(p, y, images, n_bins=10, n_resamples=200)
    assert sum(b["count"] for b in d["bins"]) == 3000
    for b in d["bins"]:
        assert b["lower_edge"] <= b["mean_probability"] <= b["upper_edge"]
        assert b["low"] <= b["fraction_sick"] <= b["high"]
        assert abs(b["fraction_sick"] - b["mean_probability"]) < 0.15
    assert d["ece"]["low"] <= d["ece"]["estimate"] <= d["ece"]["high"]
