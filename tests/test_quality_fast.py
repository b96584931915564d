"""The quality flags' fast paths equal what they replace: scipy's filters and the exact float medians."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from phototox.trust import quality, separable


@pytest.mark.parametrize("shape", [(1, 40), (3, 3), (2, 17), (61, 90)])
def test_separable_filters_equal_scipy(shape):
    """Reflect boundary at any distance (kernels longer than the frame) and shared Gaussian/LoG passes."""
    x = np.random.default_rng(shape[1]).normal(0, 50, shape).astype(np.float32)
    scale = float(np.abs(x).max())
    g, lap = separable.gaussian_and_laplace(x, 1.0)
    assert np.abs(g - ndimage.gaussian_filter(x, 1.0)).max() < 1e-5 * scale
    assert np.abs(lap - ndimage.gaussian_laplace(x, 1.0)).max() < 1e-5 * scale
    assert np.abs(separable.gaussian(x, 2.0) - ndimage.gaussian_filter(x, 2.0)).max() < 1e-5 * scale
    assert np.abs(separable.box_mean(x, 7) - ndimage.uniform_filter(x, 7)).max() < 1e-5 * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_from_the_histogram_equals_the_exact_float_medians(seed):
    """Integer frames take the histogram; the same frame shifted by 0.5 (same differences) takes the float path."""
    rng = np.random.default_rng(seed)
    frame = np.round(rng.normal(2000, 5 + 20 * seed, (41 + seed, 57))).astype(np.uint16)
    frame[:10, :10] += 300  # an edge, so the differences are not symmetric noise alone
    assert quality._diff_counts(frame, None) is not None
    assert quality._diff_counts(frame + 0.5, None) is None
    assert quality.noise_sigma(frame) == quality.noise_sigma(frame.astype(np.float64) + 0.5)
    assert quality.noise_sigma(frame, band=7) == quality.noise_sigma(frame)


def test_noise_histogram_with_an_even_count_and_a_half_integer_median():
    """2 x 2 frame, 4 differences (1, 0, 3, 2): an even count, the median is the middle pair's mean (1.5)."""
    frame = np.array([[0, 3], [1, 3]], np.int32)  # differences: vertical 1, 0; horizontal 3, 2
    d = np.array([1.0, 0.0, 3.0, 2.0])
    expected = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)
    assert quality.noise_sigma(frame) == pytest.approx(expected, rel=1e-12)


def test_strange_values_take_the_general_path():
    rng = np.random.default_rng(4)
    frame = np.round(rng.normal(100, 3, (20, 30)))
    frame[3, 4] = np.inf
    assert quality._diff_counts(frame, None) is None
    wide = np.round(rng.normal(0, 1, (20, 30))) * 1e7  # integers spanning more levels than counted
    assert quality._diff_counts(wide, None) is None
    d = np.r_[np.diff(wide, axis=0).ravel(), np.diff(wide, axis=1).ravel()]
    assert quality.noise_sigma(wide) == pytest.approx(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))
