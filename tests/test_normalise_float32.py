"""Float32 box normalisation stays equal to the float64 formula on 16-bit frames with a large offset."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force_box, need_usiigaci

from phototox.maps import normalise
from phototox.maps.normalise import box_normalise, normalise_region
from phototox.synth.fields import render_field


@pytest.fixture(scope="module")
def sixteen_bit() -> np.ndarray:
    """A T98G-like 16-bit field: mean ~32k, cell texture of a few hundred grey levels, camera noise."""
    image = render_field(90, 110, 0.5, seed=8).image.astype(np.float64)
    rng = np.random.default_rng(8)
    field = 32768 + 300 * (image - image.mean()) / image.std() + rng.normal(0, 20, image.shape)
    return np.clip(np.round(field), 0, 65535).astype(np.uint16)


def naive_float32(frame: np.ndarray, size: int) -> np.ndarray:
    """What float32 E[x^2] - E[x]^2 gives without the offset: the variance drowns in the 32k^2 term."""
    r = size // 2
    x = np.pad(frame.astype(np.float32), r, mode="symmetric")
    mean = normalise._box_means32(x, size, *frame.shape)
    var = np.maximum(normalise._box_means32(x * x, size, *frame.shape) - mean * mean, 0)
    return normalise._scaled(x[r:-r, r:-r], mean, var)


def test_float32_equals_float64_on_a_16_bit_frame_with_a_large_offset(sixteen_bit):
    reference = brute_force_box(sixteen_bit, 31)
    assert np.abs(box_normalise(sixteen_bit, 31) - reference).max() < 1e-5
    # the guard is real: the same float32 arithmetic without the offset is far off
    assert np.abs(naive_float32(sixteen_bit, 31) - reference).max() > 1e-3


def test_float32_path_is_taken_on_real_frames_and_tiles_still_agree(monkeypatch):
    """A real T98G frame (Usiigaci, Tsai et al. 2019; 16-bit, mean ~32.7k): no float64 fallback."""
    from phototox.io.images import read_frames

    frames = sorted((need_usiigaci() / "frames").glob("*.tif"))
    frame = read_frames(frames[0])[0][:300, :400]

    def no_fallback(*_a, **_k):
        raise AssertionError("float64 fallback used on a real frame")

    monkeypatch.setattr(normalise, "_box_sums64", no_fallback)
    whole = box_normalise(frame, 221)
    assert whole.dtype == np.float32 and np.isfinite(whole).all()
    left = normalise_region(frame, 0, 300, 0, 150, 221)
    assert np.abs(left - whole[:, :150]).max() < 1e-5


def test_ill_conditioned_region_falls_back_to_float64():
    """Plateaus far apart in their own noise (a step of 1000 sigma): float32 would lose the noise's variance."""
    rng = np.random.default_rng(3)
    frame = np.where(np.arange(40)[:, None] < 20, 20000.0, 60000.0) + rng.normal(0, 2, (40, 50))
    reference = brute_force_box(frame, 21)
    assert np.abs(box_normalise(frame, 21) - reference).max() < 1e-5
