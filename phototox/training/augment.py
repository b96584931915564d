"""DeadNet's data augmentations, each a pure function of (image, random generator).

The paper (Richmond et al., 2017) augments phase-contrast crops with a thin-plate-spline warp
(control points on a 128 px grid), the eight rotations/mirrors, Gaussian blur with sigma drawn
from 1.1-1.5 px, overlapping 256x256 crops with stride 128, a time window of frames sharing one
label, additive Gaussian noise after normalisation and a random 220x220 crop from each 256 crop.
phototox adds its own, off in the paper's recipe: *normalisation jitter*, smooth gain and
offset ramps across the normalised window, as dense maps see them (see :func:`normalisation_jitter`),
and *acquisition augmentation* (:func:`acquisition_augment`, on by default for new training): contrast
and gamma, blur or unsharp sharpening, smooth illumination gradients, Poisson-Gaussian noise and
resampling jitter (scale 0.8-1.25), so that optics alone is a weaker cue than the cells.
``AugmentConfig.paper()`` reproduces the paper's recipe.
:class:`AugmentConfig` switches each on or off; randomness comes only from the generator passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from phototox.maps.normalise import PER_CROP, Contract, normalise_lone_window, normalise_region
from phototox.shapes import plane_shape

CROP = 256
CROP_STRIDE = 128


@dataclass
class AugmentConfig:
    """Which augmentations run during training, with their parameters."""

    tps_warp: bool = True
    tps_grid: int = 128
    tps_displacement_std: float = 4.0
    dihedral: bool = True
    blur: bool = True
    blur_sigma: tuple[float, float] = (1.1, 1.5)
    blur_probability: float = 0.5
    random_crop: bool = True
    time_window: bool = True
    noise: bool = True
    noise_std: float = 0.1
    norm_jitter: bool = False
    norm_jitter_gain_std: float = 0.2
    norm_jitter_offset_std: float = 0.12
    norm_jitter_probability: float = 0.5
    acquisition: bool = True
    acquisition_probability: float = 0.8
    gamma_range: tuple[float, float] = (0.7, 1.4)
    contrast_range: tuple[float, float] = (0.7, 1.4)
    sharpen_amount: tuple[float, float] = (0.3, 1.5)
    optics_sigma: tuple[float, float] = (0.5, 2.0)
    illumination_strength: float = 0.3
    photons_range: tuple[float, float] = (20.0, 1000.0)
    read_noise: float = 0.01
    scale_range: tuple[float, float] = (0.8, 1.25)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def none(cls) -> AugmentConfig:
        """All augmentations off (evaluation)."""
        return cls(
            tps_warp=False,
            dihedral=False,
            blur=False,
            random_crop=False,
            time_window=False,
            noise=False,
            norm_jitter=False,
            acquisition=False,
        )

    @classmethod
    def paper(cls) -> AugmentConfig:
        """DeadNet's recipe only (reproduces the paper: no phototox additions)."""
        return cls(norm_jitter=False, acquisition=False)

    @classmethod
    def from_dict(cls, values: dict) -> AugmentConfig:
        """From a saved config; configs saved before acquisition augmentation existed had it off."""
        values = dict(values)
        values.setdefault("acquisition", False)
        for key, default in asdict(cls()).items():
            if isinstance(default, tuple) and key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def tile_origins(height: int, width: int, size: int = CROP, stride: int = CROP_STRIDE) -> list[tuple[int, int]]:
    """Top-left corners of overlapping ``size`` crops every ``stride`` px (54 for 1344x1024)."""
    size_y, size_x = min(size, height), min(size, width)
    ys = range(0, height - size_y + 1, stride)
    xs = range(0, width - size_x + 1, stride)
    return [(y, x) for y in ys for x in xs]


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = r2 * np.log(r2)
    return np.nan_to_num(out)


def tps_coordinates(shape: tuple[int, int], control: np.ndarray, displaced: np.ndarray, step: int = 1) -> np.ndarray:
    """Sampling coordinates (2, H, W) of the thin-plate spline taking ``control`` to ``displaced``.

    ``control`` and ``displaced`` are (N, 2) arrays of (y, x). The spline interpolates the
    displacements exactly at the control points and reproduces any affine map exactly. With
    ``step > 1`` it is evaluated every ``step`` px and interpolated linearly in between (the
    spline is smooth on the scale of its 128 px grid, so this changes it by far less than a pixel).
    """
    if step > 1:
        coarse_shape = (-(-(shape[0] - 1) // step) + 1, -(-(shape[1] - 1) // step) + 1)
        coarse = tps_coordinates(coarse_shape, control / step, displaced / step)
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64) / step
        return np.stack([ndimage.map_coordinates(c, [yy, xx], order=1, mode="nearest") * step for c in coarse])
    n = len(control)
    k = _tps_kernel(((control[:, None, :] - control[None, :, :]) ** 2).sum(-1))
    p = np.hstack([np.ones((n, 1)), control])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n], system[:n, n:], system[n:, :n] = k, p, p.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = displaced
    params = np.linalg.solve(system, rhs)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    points = np.stack([yy.ravel(), xx.ravel()], axis=1)
    u = _tps_kernel(((points[:, None, :] - control[None, :, :]) ** 2).sum(-1))
    mapped = u @ params[:n] + params[n] + points @ params[n + 1 :]
    return mapped.T.reshape(2, *shape)


def tps_control_grid(shape: tuple[int, int], spacing: int) -> np.ndarray:
    """Control points on a regular ``spacing`` px grid covering the image, corners included."""
    ys = np.unique(np.append(np.arange(0, shape[0], spacing), shape[0] - 1))
    xs = np.unique(np.append(np.arange(0, shape[1], spacing), shape[1] - 1))
    return np.array([(y, x) for y in ys for x in xs], dtype=np.float64)


def tps_warp(
    image: np.ndarray, rng: np.random.Generator, spacing: int = 128, displacement_std: float = 4.0
) -> np.ndarray:
    """Warp smoothly: control points on a ``spacing`` grid move by N(0, std) px each."""
    control = tps_control_grid(plane_shape(image), spacing)
    displaced = control + rng.normal(0.0, displacement_std, size=control.shape)
    coords = tps_coordinates(plane_shape(image), control, displaced, step=8)
    return ndimage.map_coordinates(image, coords, order=1, mode="reflect").astype(image.dtype)


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """One of the eight rotations/mirrors of the square (k in 0..7)."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral index must be 0..7, got {k}")
    out = np.rot90(image, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k >= 4 else out)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflecting borders."""
    return ndimage.gaussian_filter(image, sigma, mode="reflect").astype(image.dtype)


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size`` x ``size`` crop (the whole image if it is that size)."""
    h, w = image.shape
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size]


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` crop."""
    h, w = image.shape
    y, x = (h - size) // 2, (w - size) // 2
    return image[y : y + size, x : x + size]


def normalisation_jitter(
    window: np.ndarray, rng: np.random.Generator, gain_std: float = 0.2, offset_std: float = 0.12
) -> np.ndarray:
    """Smooth gain and offset ramps over a normalised window, zero at its centre.

    Dense maps normalise each pixel by the statistics of the 220 px box centred on *it*, not on
    the window: ``(n - o) * exp(-g)`` with ``o`` the box mean's offset and ``g`` the log ratio
    of box standard deviations, both relative to the window's own. Over a window these vary
    smoothly (log gain s.d. 0.15-0.22 and offset s.d. 0.07-0.14 at up to 90 px from the centre on
    real and synthetic images); training on such ramps aims to make the classifier insensitive to
    them (measured effect on dense-vs-exact agreement: ``benchmarks/README.md``). ``gain_std`` and
    ``offset_std`` are the ramps' standard deviations at the window's half-width.
    """
    h, w = window.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = (yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)
    gy, gx, oy, ox = rng.normal(0.0, 1.0, size=4)
    gain = gain_std * (gy * yy + gx * xx)
    offset = offset_std * (oy * yy + ox * xx)
    return ((window - offset) * np.exp(-gain)).astype(np.float32)


def add_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise (applied after normalisation)."""
    return (image + rng.normal(0.0, std, size=image.shape)).astype(np.float32)


# --- acquisition augmentation: what another microscope, objective or camera would change ----------


def _unit_range(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(image.min()), float(image.max())
    return (image - lo) / max(hi - lo, 1e-12), lo, hi


def contrast_gamma(
    image: np.ndarray,
    rng: np.random.Generator,
    gamma_range: tuple[float, float] = (0.7, 1.4),
    contrast_range: tuple[float, float] = (0.7, 1.4),
) -> np.ndarray:
    """A gamma curve on the crop's intensity range, then contrast scaled about the mean (range kept)."""
    unit, lo, hi = _unit_range(image.astype(np.float64))
    gamma = float(np.exp(rng.uniform(np.log(gamma_range[0]), np.log(gamma_range[1]))))
    contrast = float(np.exp(rng.uniform(np.log(contrast_range[0]), np.log(contrast_range[1]))))
    out = unit**gamma
    out = out.mean() + contrast * (out - out.mean())
    return (lo + out * (hi - lo)).astype(image.dtype)


def blur_or_sharpen(
    image: np.ndarray,
    rng: np.random.Generator,
    sigma_range: tuple[float, float] = (0.5, 2.0),
    amount_range: tuple[float, float] = (0.3, 1.5),
) -> np.ndarray:
    """Defocus (Gaussian blur) or an unsharp mask (``image + amount * (image - blurred)``), half each."""
    sigma = float(rng.uniform(*sigma_range))
    blurred = ndimage.gaussian_filter(image.astype(np.float64), sigma, mode="reflect")
    if rng.random() < 0.5:
        return blurred.astype(image.dtype)
    amount = float(rng.uniform(*amount_range))
    return (image + amount * (image - blurred)).astype(image.dtype)


def illumination_gradient(image: np.ndarray, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    """Multiply by a smooth field: a random linear ramp plus a radial vignette, within 1 +- ``strength``."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy, xx = (yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    vignette = (xx**2 + yy**2) / 2
    field = 1 + strength * (rng.uniform(-1, 1) * ramp - rng.uniform(0, 1) * vignette)
    return (image * np.clip(field, 0.05, None)).astype(image.dtype)


def poisson_gaussian_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    photons_range: tuple[float, float] = (20.0, 1000.0),
    read_noise: float = 0.01,
) -> np.ndarray:
    """Shot noise at a random photon budget (mean photons per pixel) plus Gaussian read noise."""
    unit, lo, hi = _unit_range(image.astype(np.float64))
    photons = float(np.exp(rng.uniform(np.log(photons_range[0]), np.log(photons_range[1]))))
    scale = photons / max(float(unit.mean()), 1e-6)
    noisy = rng.poisson(unit * scale) / scale + rng.normal(0.0, read_noise, size=unit.shape)
    return (lo + noisy * (hi - lo)).astype(image.dtype)


def resample_jitter(
    image: np.ndarray, rng: np.random.Generator, scale_range: tuple[float, float] = (0.8, 1.25)
) -> np.ndarray:
    """Zoom by a random factor (log-uniform) about the centre, same shape; reflected where it zooms out."""
    scale = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = [(yy - (h - 1) / 2) / scale + (h - 1) / 2, (xx - (w - 1) / 2) / scale + (w - 1) / 2]
    prefiltered = ndimage.gaussian_filter(image.astype(np.float64), 0.5 / scale) if scale < 1 else image
    return ndimage.map_coordinates(prefiltered, coords, order=1, mode="mirror").astype(image.dtype)


def acquisition_augment(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Each acquisition transform with probability ``cfg.acquisition_probability``, in physical order."""
    out = image
    p = cfg.acquisition_probability
    if rng.random() < p:
        out = illumination_gradient(out, rng, cfg.illumination_strength)
    if rng.random() < p:
        out = resample_jitter(out, rng, cfg.scale_range)
    if rng.random() < p:
        out = blur_or_sharpen(out, rng, cfg.optics_sigma, cfg.sharpen_amount)
    if rng.random() < p:
        out = contrast_gamma(out, rng, cfg.gamma_range, cfg.contrast_range)
    if rng.random() < p:
        out = poisson_gaussian_noise(out, rng, cfg.photons_range, cfg.read_noise)
    return out


@dataclass
class Augmenter:
    """Applies an :class:`AugmentConfig` to one 256 crop, in the paper's order.

    Under the paper's per-crop contract (the default here) the 256 crop is warped, rotated and
    blurred, cut to the window, normalised on its own, then noised. Under the ``box`` contract
    (:mod:`phototox.maps.normalise`) the crop arrives with ``halo`` px of surrounding frame on each
    side; geometry and blur change the *raw* pixels first (they alter local contrast, which the
    normalisation must see, as it would for a real image), then the central 256 crop is
    box-normalised from its augmented surroundings, cut to the window and noised (the paper adds
    noise after normalisation). Normalisation jitter only models the per-crop contract's dense
    approximation and is skipped under ``box``, where dense and exact agree.
    """

    config: AugmentConfig = field(default_factory=AugmentConfig)
    window: int = 220
    contract: Contract = PER_CROP

    def __call__(self, crop: np.ndarray, rng: np.random.Generator, halo: int = 0) -> np.ndarray:
        cfg = self.config
        out = crop.astype(np.float32)
        if cfg.acquisition:
            out = acquisition_augment(out, rng, cfg)
        if cfg.tps_warp:
            out = tps_warp(out, rng, cfg.tps_grid, cfg.tps_displacement_std)
        if cfg.dihedral:
            out = dihedral(out, int(rng.integers(0, 8)))
        if cfg.blur and rng.random() < cfg.blur_probability:
            out = gaussian_blur(out, float(rng.uniform(*cfg.blur_sigma)))
        box = self.contract.kind == "box"
        if box:
            if halo < self.contract.halo:
                raise ValueError(f"box normalisation needs a halo of {self.contract.halo} px, got {halo}")
            h, w = out.shape
            out = normalise_region(out, halo, h - halo, halo, w - halo, self.contract.size)
        elif halo:
            out = out[halo:-halo, halo:-halo]
        out = random_crop(out, self.window, rng) if cfg.random_crop else centre_crop(out, self.window)
        if not box:
            out = normalise_lone_window(out, self.contract)
            if cfg.norm_jitter and rng.random() < cfg.norm_jitter_probability:
                out = normalisation_jitter(out, rng, cfg.norm_jitter_gain_std, cfg.norm_jitter_offset_std)
        if cfg.noise:
            out = add_noise(out, cfg.noise_std, rng)
        return out
