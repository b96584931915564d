"""Acquisition augmentation: shape/dtype kept, seeded, and each transform moves the statistic it targets."""

from __future__ import annotations

import numpy as np
import pytest

from phototox.training.augment import (
    AugmentConfig,
    Augmenter,
    blur_or_sharpen,
    contrast_gamma,
    illumination_gradient,
    poisson_gaussian_noise,
    resample_jitter,
)
from phototox.training.nuisance import acquisition_statistics


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    from phototox.synth.fields import render_field

    return render_field(256, 256, 0.5, seed=5).image.astype(np.float32)


TRANSFORMS = {
    "contrast_gamma": lambda im, r: contrast_gamma(im, r),
    "blur_or_sharpen": lambda im, r: blur_or_sharpen(im, r),
    "illumination_gradient": lambda im, r: illumination_gradient(im, r),
    "poisson_gaussian_noise": lambda im, r: poisson_gaussian_noise(im, r),
    "resample_jitter": lambda im, r: resample_jitter(im, r),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_shape_dtype_and_seeded(name, crop):
    fn = TRANSFORMS[name]
    a = fn(crop, np.random.default_rng(7))
    b = fn(crop, np.random.default_rng(7))
    c = fn(crop, np.random.default_rng(8))
    assert a.shape == crop.shape and a.dtype == crop.dtype
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.allclose(a, crop)


def _sharpness(im):
    return acquisition_statistics(im)["sharpness"]


def test_blur_lowers_and_unsharp_raises_sharpness(crop):
    base = _sharpness(crop)
    blurred = blur_or_sharpen(crop, np.random.default_rng(0), sigma_range=(1.5, 1.5), amount_range=(1.0, 1.0))
    sharpened = None
    for seed in range(20):  # half the draws blur, half sharpen
        out = blur_or_sharpen(crop, np.random.default_rng(seed), sigma_range=(1.5, 1.5), amount_range=(1.0, 1.0))
        (sharpened := out) if _sharpness(out) > base else (blurred := out)
    assert sharpened is not None and _sharpness(sharpened) > base + 0.2
    assert _sharpness(blurred) < base - 0.5


def test_illumination_gradient_changes_regional_brightness(crop):
    flat = np.full_like(crop, 1000.0)
    out = illumination_gradient(flat, np.random.default_rng(3), strength=0.3)
    assert out.std() / out.mean() > 0.02  # a flat field is no longer flat
    assert 0.6 < out.mean() / 1000 < 1.4


def test_noise_raises_high_frequency_energy(crop):
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(crop, 2.0)  # the synthetic field carries its own camera noise
    base = acquisition_statistics(smooth)["high_freq_energy"]
    noisy = poisson_gaussian_noise(smooth, np.random.default_rng(1), photons_range=(20, 20))
    assert acquisition_statistics(noisy)["high_freq_energy"] > base * 5


@pytest.mark.parametrize("scale", [0.8, 1.0 / 1.1, 1.1, 1.25])
def test_resample_jitter_changes_object_size(scale):
    yy, xx = np.mgrid[0:256, 0:256]
    disc = (((yy - 127.5) ** 2 + (xx - 127.5) ** 2) < 40**2).astype(np.float32) * 100 + 10
    out = resample_jitter(disc, np.random.default_rng(2), scale_range=(scale, scale))
    area_ratio = np.sum(out > 60) / np.sum(disc > 60)
    assert abs(area_ratio - scale**2) < 0.03


def test_contrast_gamma_changes_intensity_distribution(crop):
    out = contrast_gamma(crop, np.random.default_rng(4), gamma_range=(0.5, 0.5), contrast_range=(1.0, 1.0))
    s0, s1 = acquisition_statistics(crop), acquisition_statistics(out)
    assert s1["p50"] > s0["p50"]  # gamma < 1 brightens the mid-tones


def test_config_defaults_and_paper_recipe():
    assert AugmentConfig().acquisition is True
    assert AugmentConfig.paper().acquisition is False
    assert AugmentConfig.none().acquisition is False
    # configs saved before the option existed load with it off (reproduces old runs)
    old = AugmentConfig().to_dict()
    del old["acquisition"]
    assert AugmentConfig.from_dict(old).acquisition is False
    assert AugmentConfig.from_dict(AugmentConfig().to_dict()) == AugmentConfig()


def test_augmenter_uses_acquisition_option(crop):
    on = Augmenter(AugmentConfig(tps_warp=False, noise=False, blur=False, dihedral=False, random_crop=False))
    off = Augmenter(
        AugmentConfig(tps_warp=False, noise=False, blur=False, dihedral=False, random_crop=False, acquisition=False)
    )
    a, b = on(crop, np.random.default_rng(0)), off(crop, np.random.default_rng(0))
    assert a.shape == b.shape == (220, 220)
    assert not np.allclose(a, b)
