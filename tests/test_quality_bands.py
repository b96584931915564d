"""Quality flags in row bands equal the whole-frame float64 formulas, across band boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from phototox.synth.fields import render_field
from phototox.trust import bands, quality


def _whole_noise(f: np.ndarray) -> float:
    f = f.astype(np.float64)
    d = np.concatenate([np.diff(f, axis=0).ravel(), np.diff(f, axis=1).ravel()])
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _whole_focus(f: np.ndarray) -> float:
    f = f.astype(np.float64)
    return float(ndimage.gaussian_laplace(f, 1.0).var() / ndimage.gaussian_filter(f, 1.0).var())


def _whole_foreground(f: np.ndarray) -> float:
    f = f.astype(np.float64)
    s = ndimage.gaussian_filter(f, quality.SMOOTH_SIGMA)
    m = ndimage.uniform_filter(s, 7)
    sd = np.sqrt(np.maximum(ndimage.uniform_filter(s * s, 7) - m * m, 0.0))
    sigma = _whole_noise(f) / (2 * np.sqrt(np.pi) * quality.SMOOTH_SIGMA)
    return float((sd > quality.FOREGROUND_K * sigma).mean())


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A 16-bit-like field with cells, 61 rows (prime: bands of 8, 16, 60 leave ragged last bands)."""
    image = render_field(61, 90, 0.6, seed=3).image.astype(np.float64)
    return np.round(30000 + 2000 * (image - image.mean()) / image.std()).astype(np.uint16)


@pytest.mark.parametrize("band", [1, 8, 16, 60, 61, 62, None])
def test_banded_flags_equal_whole_frame(frame, band):
    assert quality.noise_sigma(frame, band) == pytest.approx(_whole_noise(frame), rel=1e-6)
    assert quality.focus_measure(frame, band) == pytest.approx(_whole_focus(frame), rel=1e-5)
    assert quality.foreground_fraction(frame, band) == pytest.approx(_whole_foreground(frame), abs=1 / frame.size)
    whole = np.asarray(frame)
    top = (whole == whole.max()).mean()
    bottom = (whole == whole.min()).mean()
    assert quality.clipped_fraction(frame, band) == pytest.approx(max(top, bottom))


def test_band_boundary_through_a_sharp_edge():
    """A step right at a band boundary: a filter that did not read across it would miss the edge's texture."""
    f = np.full((48, 40), 1000.0, np.float32)
    f[24:] = 5000.0
    f += np.random.default_rng(1).normal(0, 5, f.shape).astype(np.float32)
    for band in (8, 12, 24, 25):
        assert quality.foreground_fraction(f, band) == pytest.approx(_whole_foreground(f), abs=1 / f.size)
        assert quality.focus_measure(f, band) == pytest.approx(_whole_focus(f), rel=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_kth_smallest_and_median_are_exact(n, monkeypatch):
    monkeypatch.setattr(bands, "SELECT_GATHER", 3)  # force the narrowing passes, not just the gather
    rng = np.random.default_rng(n)
    values = np.concatenate([rng.integers(-5, 5, n // 2), rng.normal(0, 3, n - n // 2)]).astype(np.float32)
    chunks = np.array_split(values, 4)

    def bands_of() -> list[np.ndarray]:
        return chunks

    assert bands.median(lambda: iter(bands_of()), n) == pytest.approx(float(np.median(values)), rel=1e-6)
    ks = (0, n // 3, n - 1)
    assert bands.kth_smallest(lambda: iter(bands_of()), ks) == [float(np.sort(values)[k]) for k in ks]


def test_moments_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(1e4, 3, 1000)
    m = bands.Moments()
    for chunk in np.array_split(values, 7):
        m.add(chunk)
    assert m.mean == pytest.approx(values.mean()) and m.var == pytest.approx(values.var(), rel=1e-9)


def test_extra_memory_stays_bounded_as_the_frame_grows(monkeypatch):
    """tracemalloc's peak during the flags grows with the band, not the frame (4x the pixels)."""
    import tracemalloc

    monkeypatch.setattr(bands, "BAND_BYTES", 64 * 1024)
    monkeypatch.setattr(bands, "SELECT_GATHER", 4096)
    peaks = []
    for size in (256, 512):
        f = np.random.default_rng(0).integers(0, 4000, (size, size)).astype(np.uint16)
        tracemalloc.start()
        quality.quality_flags(f)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 2 * peaks[0], peaks
    assert peaks[1] < 512 * 512 * 8  # less than one float64 copy of the frame
