"""Synthetic phase-contrast fields of healthy and light-damaged cells, for tests and demos.

Healthy cells are spread, elongated and irregular, thin, with a darker nucleus, one to three
dense nucleoli and granules. Damaged cells are rounded and thick (so phase contrast gives them
a bright halo), with membrane blebs, thin retraction fibres to where their edges were, debris
nearby, and the field is emptier. ``dose`` (0 = unexposed, 1 = lethal) sets the fraction of
damaged cells and their severity.

The optical model is the usual first-order picture of positive phase contrast: with optical
thickness ``phi``, intensity ``I = background * (1 - a * (phi - G_sigma * phi))``, so thick
objects appear dark and are surrounded by a bright halo. Shapes and intensities are inspired by
the phenotypes described by Richmond et al. (2017) and seen in the La Greca et al. (2021) and
Tsai et al. (2019) data; no pixels of those data sets are used.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from phototox.io.images import atomic_path, write_tiff_atomic
from phototox.shapes import plane_shape


@dataclass
class Field:
    """A rendered field and its ground truth."""

    image: np.ndarray  # (H, W) uint16 or uint8
    damaged_mask: np.ndarray  # (H, W) bool: pixels of damaged cells (dilated)
    labels: np.ndarray  # (H, W) int32: one id per cell, 0 background
    damaged_ids: list[int] = field(default_factory=list)
    dose: float = 0.0


def _star_shape(
    rng: np.random.Generator, radius: float, elongation: float, protrusions: int, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Angles and radii of an irregular, elongated, star-shaped outline."""
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += rng.normal(0, 0.08 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for _ in range(protrusions):
        centre, width = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.35)
        d = np.angle(np.exp(1j * (theta - centre)))
        r += rng.uniform(0.3, 0.9) * np.exp(-((d / width) ** 2))
    stretch = np.sqrt((np.cos(theta - angle) * elongation) ** 2 + np.sin(theta - angle) ** 2)
    return theta, radius * r * stretch / np.sqrt(elongation)


def _polygon_mask(shape: tuple[int, int], cy: float, cx: float, theta: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Rasterise a star-shaped outline centred at (cy, cx)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    dy, dx = yy - cy, xx - cx
    ang = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    idx = np.minimum((ang / (2 * np.pi) * len(theta)).astype(int), len(theta) - 1)
    return np.hypot(dy, dx) <= r[idx]


def _disc(shape, cy, cx, radius) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def _healthy_cell(
    phi: np.ndarray, labels: np.ndarray, cid: int, cy: float, cx: float, scale: float, rng: np.random.Generator
) -> None:
    theta, r = _star_shape(
        rng, rng.uniform(16, 26) * scale, rng.uniform(1.3, 2.6), int(rng.integers(1, 4)), rng.uniform(0, np.pi)
    )
    body = _polygon_mask(plane_shape(phi), cy, cx, theta, r)
    thickness = ndimage.gaussian_filter(body.astype(float), 2.0) * rng.uniform(0.25, 0.4)
    ny, nx = cy + rng.normal(0, 3), cx + rng.normal(0, 3)
    nucleus = (
        _polygon_mask(
            plane_shape(phi), ny, nx, *_star_shape(rng, rng.uniform(7, 10) * scale, 1.3, 0, rng.uniform(0, np.pi))
        )
        & body
    )
    thickness += ndimage.gaussian_filter(nucleus.astype(float), 1.5) * 0.35
    for _ in range(int(rng.integers(1, 4))):
        thickness += _disc(phi.shape, ny + rng.normal(0, 3), nx + rng.normal(0, 3), rng.uniform(1.2, 2.2)) * 0.35
    granules = (rng.random(phi.shape) < 0.004) & body & ~nucleus
    thickness += ndimage.gaussian_filter(granules.astype(float), 0.8) * 1.5
    phi += thickness
    labels[body & (labels == 0)] = cid


def _damaged_cell(
    phi: np.ndarray,
    labels: np.ndarray,
    cid: int,
    cy: float,
    cx: float,
    scale: float,
    severity: float,
    rng: np.random.Generator,
) -> np.ndarray:
    radius = rng.uniform(8, 13) * scale * (1.0 - 0.25 * severity)
    body = _disc(phi.shape, cy, cx, radius)
    yy, xx = np.ogrid[: phi.shape[0], : phi.shape[1]]
    dome = np.clip(1 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2, 0, None) ** 0.5
    phi += dome * rng.uniform(1.2, 1.8) * (0.6 + 0.6 * severity)
    footprint = body.copy()
    for _ in range(int(rng.integers(2, 4 + int(6 * severity)))):  # blebs on the rim
        a = rng.uniform(0, 2 * np.pi)
        by, bx = cy + np.sin(a) * radius, cx + np.cos(a) * radius
        bleb = _disc(phi.shape, by, bx, rng.uniform(2, 4.5) * scale)
        phi += bleb * rng.uniform(0.5, 1.0)
        footprint |= bleb
    for _ in range(int(rng.integers(1, 3 + int(4 * severity)))):  # retraction fibres
        a, length = rng.uniform(0, 2 * np.pi), rng.uniform(15, 45) * scale
        t = np.linspace(radius, radius + length, int(length * 2))
        fy = np.clip((cy + np.sin(a) * t + np.cumsum(rng.normal(0, 0.3, t.size))).astype(int), 0, phi.shape[0] - 1)
        fx = np.clip((cx + np.cos(a) * t + np.cumsum(rng.normal(0, 0.3, t.size))).astype(int), 0, phi.shape[1] - 1)
        fibre = np.zeros(phi.shape, bool)
        fibre[fy, fx] = True
        phi += ndimage.gaussian_filter(fibre.astype(float), 0.6) * 0.8
        footprint |= ndimage.binary_dilation(fibre, iterations=2)
    for _ in range(int(rng.integers(0, 2 + int(8 * severity)))):  # debris
        dy, dx = rng.normal(0, radius * 2.5, 2)
        speck = _disc(phi.shape, cy + dy, cx + dx, rng.uniform(1.0, 2.5))
        phi += speck * rng.uniform(0.6, 1.2)
        footprint |= speck
    labels[body & (labels == 0)] = cid
    return footprint


def damaged_fraction(dose: float) -> float:
    """Expected fraction of damaged cells at a dose in [0, 1] (sigmoidal, 3% background death)."""
    return float(0.03 + 0.94 / (1 + np.exp(-(dose - 0.5) * 10)))


def render_field(
    height: int = 512,
    width: int = 512,
    dose: float = 0.0,
    seed: int = 0,
    cells_per_megapixel: float = 110.0,
    bit_depth: int = 16,
    scale: float = 1.0,
    damaged_override: float | None = None,
) -> Field:
    """Render one field at a light ``dose`` in [0, 1] (``damaged_override`` fixes the damaged fraction)."""
    if not 0.0 <= dose <= 1.0:
        raise ValueError(f"dose must lie in [0, 1], got {dose}")
    rng = np.random.default_rng(seed)
    shape = (height, width)
    phi = np.zeros(shape)
    labels = np.zeros(shape, np.int32)
    damaged_mask = np.zeros(shape, bool)
    frac = damaged_fraction(dose) if damaged_override is None else damaged_override
    n_cells = max(1, rng.poisson(cells_per_megapixel * height * width / 1e6 * (1 - 0.35 * frac)))
    damaged_ids = []
    reach = int(np.ceil(80 * scale))  # no cell part lies farther than this from its centre
    for cid in range(1, n_cells + 1):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        y0, x0 = max(0, int(cy) - reach), max(0, int(cx) - reach)
        box = (slice(y0, min(height, int(cy) + reach)), slice(x0, min(width, int(cx) + reach)))
        if rng.random() < frac:
            footprint = _damaged_cell(
                phi[box], labels[box], cid, cy - y0, cx - x0, scale, min(1.0, dose + rng.uniform(0, 0.3)), rng
            )
            damaged_mask[box] |= footprint
            damaged_ids.append(cid)
        else:
            _healthy_cell(phi[box], labels[box], cid, cy - y0, cx - x0, scale, rng)
    image = phase_contrast(phi, rng, bit_depth)
    damaged_mask = ndimage.binary_dilation(damaged_mask, iterations=int(6 * scale))
    return Field(image, damaged_mask, labels, damaged_ids, dose)


def phase_contrast(
    phi: np.ndarray, rng: np.random.Generator, bit_depth: int = 16, halo_sigma: float = 5.0, strength: float = 0.45
) -> np.ndarray:
    """Optical thickness -> positive phase-contrast intensity with halo, uneven light and noise."""
    h, w = phi.shape
    phi = ndimage.gaussian_filter(phi, 0.7)
    contrast = phi - ndimage.gaussian_filter(phi, halo_sigma)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    background = 1.0 + 0.08 * (yy - 0.5) * rng.normal() + 0.08 * (xx - 0.5) * rng.normal()
    intensity = background * (1 - strength * np.tanh(contrast)) - 0.04 * np.tanh(phi)
    full = 65535.0 if bit_depth == 16 else 255.0
    mean_level = 0.5 * full
    counts = np.clip(intensity * mean_level, 0, None)
    noisy = counts + rng.normal(0, 1, counts.shape) * np.sqrt(counts / (mean_level / 2000) + 4) * (mean_level / 2000)
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    return np.clip(np.round(noisy), 0, full).astype(dtype)


def render_timelapse(
    frames: int = 5,
    height: int = 320,
    width: int = 320,
    dose_per_frame: float = 0.2,
    seed: int = 0,
    bit_depth: int = 16,
) -> np.ndarray:
    """A (T, H, W) stack whose cells accumulate damage with the cumulative light dose."""
    return np.stack(
        [
            render_field(height, width, min(1.0, t * dose_per_frame), seed=seed, bit_depth=bit_depth).image
            for t in range(frames)
        ]
    )


def dataset_output_paths(out_dir: str | Path, doses: list[float], images_per_dose: int = 2) -> list[Path]:
    """The files :func:`write_dataset` writes: one TIFF per field, then ``manifest.csv``."""
    out = Path(out_dir)
    return [out / f"field_d{d:02d}_{k:02d}.tif" for d in range(len(doses)) for k in range(images_per_dose)] + [
        out / "manifest.csv"
    ]


def write_dataset(
    out_dir: str | Path,
    doses: list[float],
    images_per_dose: int = 2,
    size: int = 320,
    seed: int = 0,
    threshold: float = 0.5,
    bit_depth: int = 16,
) -> Path:
    """Write TIFFs and a manifest (dose, label by dose threshold, one group per field); return the manifest."""

    paths = iter(dataset_output_paths(out_dir, doses, images_per_dose))
    rows = []
    for d_index, dose in enumerate(doses):
        for k in range(images_per_dose):
            path = next(paths)
            f = render_field(size, size, dose, seed=seed * 1000 + d_index * 100 + k, bit_depth=bit_depth)
            write_tiff_atomic(path, f.image)
            rows.append(
                [
                    path.name,
                    "sick" if dose >= threshold else "healthy",
                    f"pos{d_index:02d}_{k:02d}",
                    f"{dose:g}",
                    f"synthetic{k % 2 + 1}",
                ]
            )
    manifest = next(paths)
    with atomic_path(manifest) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group", "dose", "replicate"])
        writer.writerows(rows)
    return manifest
