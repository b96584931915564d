"""Label-free activity: cell-covered area (confluence) and frame-to-frame motion (optical flow).

Confluence: cells in phase contrast are textured, background is flat. The foreground is where the
local standard deviation of the background-flattened image (over a window of ``texture_um``)
exceeds a threshold: Otsu's threshold on the log local deviation, but never below
``noise_factor`` times its 5th percentile (so a nearly empty field of flat noise is not called
half full); then a morphological closing, hole filling and removal of specks smaller than
``min_area_um2``.

Motion: scikit-image's iterative Lucas-Kanade optical flow (``optical_flow_ilk``; TV-L1 on request)
between consecutive frames, after block-averaging to about ``flow_um`` micrometres per pixel for
speed and flattening each frame's illumination; the mean flow magnitude over the pixels covered by
cells in either frame, in micrometres per minute.

Frame change: the mean squared difference between consecutive flattened frames over the pixels
covered by cells in either frame (in units of each frame's robust spread over those pixels,
squared, per frame interval). It follows the "masked mean activity" of PhotoFiTT (del Rosario et al. 2024; squared
frame differences divided by the active area), with the cell mask above as the active area and
each frame flattened and scaled on its own, so neither a brightness or contrast change of the whole
frame nor more empty background around the same cells changes it. No optical flow: a fraction of motion's cost.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FLOW_METHODS = ("ilk", "tvl1")
FLATTEN_UM = 25.0
"""illumination flattening scale (Gaussian sigma, micrometres) of the mask and the frame change"""


def flatten(frame: np.ndarray, sigma: float, where: np.ndarray | None = None) -> np.ndarray:
    """Remove slow illumination changes and scale to unit robust spread (over ``where`` only, when given)."""
    frame = frame.astype(np.float32)
    flat = frame - ndimage.gaussian_filter(frame, sigma)
    values = flat if where is None else flat[where]
    spread = float(np.median(np.abs(values - np.median(values)))) * 1.4826
    return flat / max(spread, 1e-6)


def local_std(image: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation of ``image`` over a ``size`` x ``size`` box around each pixel."""
    image = image.astype(np.float64)
    mean = ndimage.uniform_filter(image, size)
    mean_sq = ndimage.uniform_filter(image * image, size)
    return np.sqrt(np.clip(mean_sq - mean * mean, 0, None))


def foreground_mask(
    frame: np.ndarray, pixel_um: float, texture_um: float = 6.0, noise_factor: float = 2.0, min_area_um2: float = 150.0
) -> np.ndarray:
    """Cell-covered pixels of a phase-contrast frame (see module docstring)."""
    from skimage.filters import threshold_otsu
    from skimage.morphology import disk, remove_small_objects

    size = max(3, round(texture_um / pixel_um) | 1)
    texture = local_std(flatten(frame, FLATTEN_UM / pixel_um), size)
    log_texture = np.log(texture + 1e-6)
    floor = np.log(noise_factor) + np.percentile(log_texture, 5)
    threshold = max(float(threshold_otsu(log_texture)), float(floor))
    mask = log_texture > threshold
    radius = max(1, round(2.0 / pixel_um))
    mask = ndimage.binary_closing(mask, structure=disk(radius), border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    return remove_small_objects(mask, max(1, int(min_area_um2 / pixel_um**2)))


def confluence(mask: np.ndarray) -> float:
    """Fraction of the field covered by cells."""
    return float(np.mean(mask))


def flow_factor(pixel_um: float, flow_um: float = 3.0) -> int:
    """Block size that brings the image to about ``flow_um`` micrometres per pixel for the flow."""
    return max(1, round(flow_um / pixel_um))


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Block average by ``factor`` (edge rows/columns that do not fill a block are dropped)."""
    if factor == 1:
        return image.astype(np.float32)
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)).astype(np.float32)


def flow_field(previous: np.ndarray, current: np.ndarray, factor: int, method: str = "ilk") -> np.ndarray:
    """(2, h, w) optical flow in full-resolution pixels from ``previous`` to ``current``, on the block-averaged grid."""
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; use one of {FLOW_METHODS}")
    sigma = max(2.0, 40.0 / factor)
    a, b = flatten(block_mean(previous, factor), sigma), flatten(block_mean(current, factor), sigma)
    flow = optical_flow_ilk(a, b, radius=7) if method == "ilk" else optical_flow_tvl1(a, b)
    return np.asarray(flow) * factor


def frame_change(previous: np.ndarray, current: np.ndarray, cells: np.ndarray, sigma: float) -> float:
    """Mean squared difference of the two flattened frames over ``cells`` (NaN when no pixel is covered).

    Each frame is scaled by its own spread over the cell pixels, so neither the lamp, the camera gain
    nor the empty area beside the cells changes the value."""
    if not cells.any():
        return float("nan")
    difference = flatten(current, sigma, cells) - flatten(previous, sigma, cells)
    return float(np.mean(np.square(difference[cells], dtype=np.float64)))


def motion_um_per_min(
    previous: np.ndarray,
    current: np.ndarray,
    cells: np.ndarray,
    pixel_um: float,
    interval_min: float,
    factor: int,
    method: str = "ilk",
) -> float:
    """Mean optical-flow speed over the cell-covered pixels (``cells``: full-resolution mask), um/min."""
    flow = flow_field(previous, current, factor, method)
    speed = np.hypot(flow[0], flow[1])
    covered = block_mean(cells.astype(np.float32), factor) >= 0.5
    if not covered.any():
        return float("nan")
    return float(speed[covered].mean()) * pixel_um / interval_min
