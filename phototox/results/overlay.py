"""How a map is drawn over its image: colours, opacity, smoothing, and where the cells are.

A map value ``p`` in [0, 1] is drawn over the image (shown dimmed in grey) in the colour
``inferno(0.55 + 0.45 p)`` -- the red-to-yellow part of a perceptually uniform colormap -- with
opacity ``0.75 p``: healthy places show the plain cells, and the sicker a place, the brighter and
more opaque its colour. The grey image is dimmed to at most the luminance of the lowest colour,
so luminance rises monotonically with ``p`` over every pixel (a colour-blind reader and a
greyscale print both read "brighter = sicker").

:func:`foreground_mask` is a simple, documented estimate of where cells are: phase-contrast
cells have texture, empty background is flat, so pixels whose local standard deviation (in a
``box`` px square) exceeds an Otsu threshold of its logarithm, closed and with small specks
removed, count as cell-covered. A field whose texture histogram is not clearly two-peaked (Otsu
effectiveness below :data:`MIN_SEPARATION`; one Gaussian peak gives 2/pi = 0.64), such as a
confluent layer, counts as covered everywhere. It is an estimate, not a segmentation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from phototox.io.images import to_display_uint8

COLOUR_LOW, COLOUR_HIGH = 0.55, 1.0
"""The part of ``inferno`` used, from P(sick) = 0 to 1."""
MAX_ALPHA = 0.75
"""Opacity of the colour at P(sick) = 1 (the cells stay visible beneath)."""
MIN_SEPARATION = 0.7
GREY_RANGE = (0.04, 0.37)
"""Display range of the dimmed grey image: at most the luminance of ``inferno(0.55)``."""


def map_colours(p: np.ndarray) -> np.ndarray:
    """RGB colours (..., 3) of map values in [0, 1]."""
    from matplotlib import colormaps

    return colormaps["inferno"](COLOUR_LOW + (COLOUR_HIGH - COLOUR_LOW) * np.clip(p, 0, 1))[..., :3]


def dimmed_grey(frame: np.ndarray) -> np.ndarray:
    """The frame percentile-stretched into :data:`GREY_RANGE` (float, 0..1)."""
    lo, hi = GREY_RANGE
    return lo + (hi - lo) * to_display_uint8(frame).astype(np.float64) / 255.0


def blend(grey: np.ndarray, p: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """RGB (H, W, 3) of map ``p`` over grey values ``grey``; no colour where ``mask`` is false."""
    p = np.clip(np.nan_to_num(p), 0.0, 1.0)
    alpha = MAX_ALPHA * p
    if mask is not None:
        alpha = np.where(mask, alpha, 0.0)
    alpha = alpha[..., None]
    return np.clip(grey[..., None] * (1 - alpha) + map_colours(p) * alpha, 0.0, 1.0)


def smooth_for_display(sick_map: np.ndarray, stride: int) -> np.ndarray:
    """The map smoothed over about half a window step, for drawing only (numbers use the raw map)."""
    return ndimage.gaussian_filter(sick_map.astype(np.float32), max(stride / 2.0, 1.0), mode="nearest")


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of linear-ish RGB in [0, 1]."""
    return rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722


def threshold_otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut of a histogram that maximises the between-class variance."""
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts).astype(np.float64)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def foreground_mask(frame: np.ndarray, box: int = 15, min_area: int = 400) -> np.ndarray:
    """Where cells are (bool, the frame's shape): local texture above an Otsu threshold.

    ``box`` is the side of the square (px) over which the local standard deviation is taken;
    ``min_area`` (px) removes specks. A frame without texture contrast counts as all foreground.
    """
    x = frame.astype(np.float64)
    x = (x - x.mean()) / max(float(x.std()), 1e-12)
    mean = ndimage.uniform_filter(x, box, mode="reflect")
    std = np.sqrt(np.maximum(ndimage.uniform_filter(x * x, box, mode="reflect") - mean**2, 0.0))
    texture = np.log(std + 1e-6)
    if float(texture.max() - texture.min()) < 1e-3:
        return np.ones(frame.shape, dtype=bool)
    mask = texture > threshold_otsu(texture)
    share = float(mask.mean())
    if share in (0.0, 1.0):
        return np.ones(frame.shape, dtype=bool)
    separation = share * (1 - share) * (texture[mask].mean() - texture[~mask].mean()) ** 2 / float(texture.var())
    if separation < MIN_SEPARATION:
        return np.ones(frame.shape, dtype=bool)
    mask = ndimage.binary_closing(mask, iterations=3)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        mask = np.isin(labels, 1 + np.flatnonzero(sizes >= min_area))
    return mask
