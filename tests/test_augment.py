"""Each augmentation's invariants (DeadNet's data pipeline)."""

import numpy as np
import pytest

from phototox.training.augment import (
    AugmentConfig,
    Augmenter,
    add_noise,
    centre_crop,
    dihedral,
    gaussian_blur,
    normalisation_jitter,
    random_crop,
    tile_origins,
    tps_control_grid,
    tps_coordinates,
    tps_warp,
)


@pytest.fixture()
def image(rng):
    from scipy import ndimage

    return ndimage.gaussian_filter(rng.random((256, 256)), 3).astype(np.float32)


def test_tps_with_zero_displacement_is_identity(image):
    control = tps_control_grid(image.shape, 128)
    coords = tps_coordinates(image.shape, control, control.copy())
    yy, xx = np.mgrid[0:256, 0:256]
    assert np.allclose(coords[0], yy, atol=1e-6) and np.allclose(coords[1], xx, atol=1e-6)


def test_tps_reproduces_an_affine_map_and_interpolates_control_points():
    control = tps_control_grid((256, 256), 128)
    shifted = control + np.array([3.0, -2.0])
    coords = tps_coordinates((256, 256), control, shifted, step=8)
    yy, xx = np.mgrid[0:256, 0:256]
    assert np.allclose(coords[0], yy + 3, atol=1e-3) and np.allclose(coords[1], xx - 2, atol=1e-3)
    rng = np.random.default_rng(0)
    moved = control + rng.normal(0, 4, control.shape)
    exact = tps_coordinates((256, 256), control, moved)
    for (cy, cx), (my, mx) in zip(control.astype(int), moved):
        assert abs(exact[0, cy, cx] - my) < 1e-6 and abs(exact[1, cy, cx] - mx) < 1e-6


def test_tps_warp_is_smooth_bounded_and_seeded(image):
    a = tps_warp(image, np.random.default_rng(5))
    b = tps_warp(image, np.random.default_rng(5))
    assert a.shape == image.shape and np.array_equal(a, b)
    assert image.min() - 1e-6 <= a.min() and a.max() <= image.max() + 1e-6  # bilinear: no new extremes
    assert not np.allclose(a, image)
    assert np.corrcoef(a.ravel(), image.ravel())[0, 1] > 0.5


def test_control_grid_spacing():
    grid = tps_control_grid((256, 256), 128)
    assert sorted(set(grid[:, 0])) == [0, 128, 255]


def test_dihedral_group(image):
    variants = [dihedral(image, k) for k in range(8)]
    assert len({v.tobytes() for v in variants}) == 8
    for v in variants:
        assert np.array_equal(np.sort(v.ravel()), np.sort(image.ravel()))
    assert np.array_equal(dihedral(dihedral(image, 1), 3), image)
    assert np.array_equal(dihedral(dihedral(image, 4), 4), image)
    with pytest.raises(ValueError):
        dihedral(image, 8)


def test_blur_keeps_mean_and_lowers_variance(image, rng):
    noisy = image + rng.normal(0, 0.2, image.shape).astype(np.float32)
    blurred = gaussian_blur(noisy, 1.3)
    assert abs(blurred.mean() - noisy.mean()) < 1e-3
    assert blurred.var() < noisy.var()


def test_blur_sigma_stays_in_the_paper_range():
    cfg = AugmentConfig()
    draws = np.random.default_rng(0).uniform(*cfg.blur_sigma, 1000)
    assert cfg.blur_sigma == (1.1, 1.5) and draws.min() >= 1.1 and draws.max() <= 1.5


def test_tiling_matches_the_paper():
    assert len(tile_origins(1024, 1344)) == 7 * 9  # stride 128, 256 crops
    assert len(tile_origins(960, 1280)) == 54
    assert all(y % 128 == 0 and x % 128 == 0 for y, x in tile_origins(960, 1280))


def test_crops_are_subarrays(image, rng):
    crop = random_crop(image, 220, rng)
    assert crop.shape == (220, 220)
    hits = [(y, x) for y in range(37) for x in range(37) if np.array_equal(image[y : y + 220, x : x + 220], crop)]
    assert len(hits) == 1
    assert np.array_equal(centre_crop(image, 220), image[18:238, 18:238])


def test_noise_statistics(rng):
    base = np.zeros((220, 220), np.float32)
    noisy = add_noise(base, 0.1, rng)
    assert abs(noisy.mean()) < 0.005 and abs(noisy.std() - 0.1) < 0.005


def test_augmenter_output_is_a_normalised_window(image):
    out = Augmenter(AugmentConfig(noise=False))(image, np.random.default_rng(1))
    assert out.shape == (220, 220) and out.dtype == np.float32
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3


def test_normalisation_jitter_is_a_smooth_ramp_fixed_at_the_centre():
    """The jitter is (n - offset) * exp(-gain) with gain and offset planes through zero at the centre."""
    window = np.random.default_rng(3).normal(size=(221, 221)).astype(np.float32)
    out = normalisation_jitter(window, np.random.default_rng(4), gain_std=0.3, offset_std=0.2)
    assert out[110, 110] == pytest.approx(window[110, 110], abs=1e-5)
    assert not np.allclose(out, window)
    # on a constant window the result is exp(-gain) * (1 - offset): a smooth surface, no pixel noise
    flat = normalisation_jitter(np.ones((221, 221), np.float32), np.random.default_rng(4), 0.3, 0.2)
    assert np.abs(np.diff(flat, 2, axis=0)).max() < 1e-3 and np.abs(np.diff(flat, 2, axis=1)).max() < 1e-3
    # point symmetry of planes: gain(-r) = -gain(r), offset(-r) = -offset(r)
    gain = -np.log(normalisation_jitter(np.full((221, 221), 1e3, np.float32), np.random.default_rng(4), 0.3, 0.0) / 1e3)
    assert np.allclose(gain, -gain[::-1, ::-1], atol=1e-5)
    again = normalisation_jitter(window, np.random.default_rng(4), gain_std=0.3, offset_std=0.2)
    assert np.array_equal(out, again)


def test_augmenter_is_deterministic_and_switchable(image):
    aug = Augmenter(AugmentConfig())
    assert np.array_equal(aug(image, np.random.default_rng(9)), aug(image, np.random.default_rng(9)))
    jittered = Augmenter(AugmentConfig(norm_jitter=True, norm_jitter_probability=1.0))
    assert not np.array_equal(aug(image, np.random.default_rng(9)), jittered(image, np.random.default_rng(9)))
    off = Augmenter(AugmentConfig.none())
    expected = centre_crop(image, 220)
    expected = (expected - expected.mean()) / expected.std()
    assert np.allclose(off(image, np.random.default_rng(0)), expected, atol=1e-5)
