"""Image quality flags, separate from the domain check: out of focus, saturated, nearly empty.

Three simple, documented statistics, each with its own column, so a user can tell *why* a field's
number is doubtful:

* ``focus`` -- normalised variance of the Laplacian: ``var(LoG_1(f)) / var(G_1(f))`` (Laplacian of
  a Gaussian-smoothed frame, sigma 1 px, over the smoothed frame's variance), measured at the
  model's pixel size so that it compares like with like. ``out_of_focus`` when it falls below
  ``FOCUS_FRACTION`` of the model's reference (the median over its training images,
  ``meta["quality"]["focus_reference"]``; :data:`DEFAULT_FOCUS_REFERENCE` where a model has none).
* ``clipped_fraction`` -- the larger of the fractions of pixels sitting exactly at the frame's
  maximum or at its minimum. Real detector noise leaves a handful of pixels at the extremes; a
  clipped (saturated or underexposed) image leaves a plateau. ``saturated`` above ``CLIP_LIMIT``.
* ``foreground_fraction`` -- fraction of pixels whose local standard deviation (7x7 px) exceeds
  ``FOREGROUND_K`` times the noise, both after a Gaussian of ``SMOOTH_SIGMA`` px: the pixel noise
  (estimated robustly from the median absolute difference between neighbouring pixels) shrinks by
  ``2 sqrt(pi) SMOOTH_SIGMA`` while cell-sized structure stays, so a noisy low-light field of
  smooth cells is not mistaken for an empty one. ``nearly_empty`` below ``EMPTY_LIMIT``.

All three are computed in float32 row bands (:mod:`phototox.trust.bands`): each filter runs on a band
padded by the filters' reach, global sums and medians are combined across bands, so the extra
memory is a few bands whatever the frame size, and the result equals the whole-frame one to float
tolerance (``band`` sets the rows per band; tests use small bands to cross many band boundaries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage

from phototox.trust import separable
from phototox.trust.bands import Moments, band_rows, bands, median

FOCUS_FRACTION = 0.1
DEFAULT_FOCUS_REFERENCE = 0.044
"""Median focus measure of the shipped celldeath model's training images (0.434 um/px)."""
CLIP_LIMIT = 0.01
FOREGROUND_K = 2.0
SMOOTH_SIGMA = 2.0
EMPTY_LIMIT = 0.05
QUALITY_FIELDS = ("focus", "out_of_focus", "clipped_fraction", "saturated", "foreground_fraction", "nearly_empty")


GAUSS_REACH = 4
"""scipy's Gaussian reaches ``int(4 * sigma + 0.5)`` px (its default ``truncate=4``)."""
WINDOW = 7
"""Side of the local standard deviation's window (px)."""


def _reach(sigma: float) -> int:
    return int(GAUSS_REACH * sigma + 0.5)


FILTER_BAND_BYTES = 512 * 1024
"""Float32 bytes per band for the filters (about 100 rows of a 1280 px frame): small enough that a band
and its temporaries stay in a core's cache, twice as fast as 8 MiB bands; at least 4x the padding."""


def _level(frame: np.ndarray, band: int | None) -> np.float32:
    """The frame's mean (float64 sums by band), subtracted before filtering so float32 keeps its precision."""
    if frame.size == 0:
        return np.float32(0)
    step = band_rows(frame.shape[1], band)
    total = sum(
        float(np.add.reduce(frame[r : r + step], axis=None, dtype=np.float64)) for r in range(0, frame.shape[0], step)
    )
    level = total / frame.size
    return np.float32(level) if np.isfinite(level) else np.float32(0)


def _padded_bands(frame: np.ndarray, pad: int, band: int | None) -> Iterator[tuple[np.ndarray, slice]]:
    """Each float32 band padded by ``pad`` rows (clipped to the frame), minus the frame's level, and its own rows."""
    offset = _level(frame, band)
    width = max(1, frame.shape[1])
    rows = band if band is not None else max(min(band_rows(width), FILTER_BAND_BYTES // (4 * width)), 4 * pad)
    for r0, r1, lo, hi in bands(frame.shape[0], rows, pad):
        piece = np.asarray(frame[lo:hi], dtype=np.float32)
        yield piece - offset, slice(r0 - lo, r1 - lo)


def focus_measure(frame: np.ndarray, band: int | None = None) -> float:
    """Normalised variance of the Laplacian of a sigma-1 Gaussian (higher: sharper)."""
    pad = _reach(1.0) + 1  # the Laplacian's own 3-tap second difference adds one row
    smooth, log = Moments(), Moments()
    for piece, own in _padded_bands(frame, pad, band):  # variances are shift-invariant: the level drops out
        g, lap = separable.gaussian_and_laplace(piece, 1.0)
        smooth.add(g[own])
        log.add(lap[own])
    return float(log.var / smooth.var) if smooth.var > 0 else 0.0


def clipped_fraction(frame: np.ndarray, band: int | None = None) -> float:
    """Larger fraction of pixels at exactly the frame's maximum or minimum value."""
    if frame.size == 0:
        return 1.0
    step = band_rows(frame.shape[1] if frame.ndim > 1 else frame.size, band)
    top = max(frame[r : r + step].max() for r in range(0, frame.shape[0], step))
    bottom = min(frame[r : r + step].min() for r in range(0, frame.shape[0], step))
    if top == bottom:
        return 1.0
    at_top = sum(int(np.count_nonzero(frame[r : r + step] == top)) for r in range(0, frame.shape[0], step))
    at_bottom = sum(int(np.count_nonzero(frame[r : r + step] == bottom)) for r in range(0, frame.shape[0], step))
    return float(max(at_top, at_bottom) / frame.size)


def _neighbour_diffs(frame: np.ndarray, band: int | None) -> Callable[[], Iterator[np.ndarray]]:
    """Each band's vertical and horizontal neighbour differences (float32), every pair once."""
    height = frame.shape[0]
    step = band_rows(frame.shape[1], band)

    def values() -> Iterator[np.ndarray]:
        for r0 in range(0, height, step):
            r1 = min(height, r0 + step)
            f = np.asarray(frame[r0 : min(height, r1 + 1)], dtype=np.float32)  # one row more: the vertical pairs
            yield np.concatenate([np.diff(f, axis=0).ravel(), np.diff(f[: r1 - r0], axis=1).ravel()])

    return values


MAX_COUNTED_SPAN = 2**20
"""Integer-valued frames whose values span at most this many levels get their noise from a histogram."""


def _diff_counts(frame: np.ndarray, band: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct neighbour differences and their counts, exactly, when the frame holds integers (else None)."""
    height, width = frame.shape
    if frame.dtype.kind not in "iuf" or frame.size == 0:
        return None
    step = band_rows(width, band)
    lo = min(float(frame[r : r + step].min()) for r in range(0, height, step))
    hi = max(float(frame[r : r + step].max()) for r in range(0, height, step))
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > MAX_COUNTED_SPAN:
        return None  # not a number, infinite, or too many levels: the general path
    span = int(hi - lo)
    counts = np.zeros(2 * span + 1, np.int64)
    base = np.floor(lo)
    rows = band if band is not None else max(1, min(step, FILTER_BAND_BYTES // (4 * max(1, width))))
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        part = np.asarray(frame[r0 : min(height, r1 + 1)])  # one row more: the vertical pairs
        if part.dtype.kind == "f":
            shifted = part - base
            f = shifted.astype(np.int32)
            if not np.array_equal(f, shifted):
                return None  # fractional values: the general path
        elif part.dtype.itemsize <= 2:
            f = part.astype(np.int32) - np.int32(base)
        else:
            f = (part.astype(np.int64) - np.int64(base)).astype(np.int32)
        for d in (f[1:] - f[:-1], f[: r1 - r0, 1:] - f[: r1 - r0, :-1]):
            d += span
            counts += np.bincount(d.ravel(), minlength=counts.size)
    kept = np.flatnonzero(counts)
    return (kept - span).astype(np.float64), counts[kept]


def _median_of_counts(values: np.ndarray, counts: np.ndarray) -> float:
    """``np.median`` of ``values`` repeated ``counts`` times (``values`` ascending)."""
    total = int(counts.sum())
    cumulative = np.cumsum(counts)
    lower = values[np.searchsorted(cumulative, (total - 1) // 2, side="right")]
    upper = values[np.searchsorted(cumulative, total // 2, side="right")]
    return float((lower + upper) / 2)


def noise_sigma(frame: np.ndarray, band: int | None = None) -> float:
    """Pixel noise from neighbour differences (MAD, robust to cell edges).

    Integer-valued frames (every camera's): the median and the MAD are read exactly from one
    histogram of the differences; other frames select them over the float32 differences.
    """
    h, w = frame.shape
    total = (h - 1) * w + h * (w - 1)
    if total <= 0:
        return 0.0
    counted = _diff_counts(frame, band)
    if counted is not None:
        values, counts = counted
        middle = _median_of_counts(values, counts)
        deviations = np.abs(values - middle)
        order = np.argsort(deviations, kind="stable")
        return float(1.4826 * _median_of_counts(deviations[order], counts[order]) / np.sqrt(2))
    diffs = _neighbour_diffs(frame, band)
    centre = np.float32(median(diffs, total))

    def deviations_of() -> Iterator[np.ndarray]:
        for d in diffs():
            yield np.abs(d - centre)

    return float(1.4826 * median(deviations_of, total) / np.sqrt(2))


def foreground_fraction(frame: np.ndarray, band: int | None = None) -> float:
    """Fraction of pixels whose smoothed 7x7 local standard deviation exceeds FOREGROUND_K x the smoothed noise."""
    sigma = noise_sigma(frame, band) / (2 * np.sqrt(np.pi) * SMOOTH_SIGMA)  # white noise after the Gaussian
    threshold = np.float32((FOREGROUND_K * sigma) ** 2) if sigma > 0 else np.float32(0)
    pad = _reach(SMOOTH_SIGMA) + WINDOW // 2
    above = 0
    for piece, own in _padded_bands(frame, pad, band):
        s0, s1 = max(0, own.start - WINDOW // 2), min(len(piece), own.stop + WINDOW // 2)  # the box's reach
        # float64 from here: E[s^2] - E[s]^2 over 49 px cancels, float32 would lose the faint texture's variance
        smooth = separable.gaussian(piece, SMOOTH_SIGMA)[s0:s1].astype(np.float64)  # clipped only at the frame's edges
        keep = slice(own.start - s0, own.stop - s0)
        mean = separable.box_mean(smooth, WINDOW)[keep]
        smooth *= smooth
        variance = separable.box_mean(smooth, WINDOW)[keep]
        mean *= mean
        variance -= mean
        above += int(np.count_nonzero(variance > threshold))
    return float(above / frame.size)


def quality_flags(
    frame: np.ndarray,
    model_scale_frame: np.ndarray | None = None,
    focus_reference: float | None = None,
    band: int | None = None,
) -> dict:
    """The three statistics and their flags for one frame (focus read at the model's scale)."""
    focus = focus_measure(frame if model_scale_frame is None else model_scale_frame, band)
    clipped = clipped_fraction(frame, band)
    foreground = foreground_fraction(frame, band)
    reference = focus_reference or DEFAULT_FOCUS_REFERENCE
    return {
        "focus": round(focus, 4),
        "out_of_focus": bool(focus < FOCUS_FRACTION * reference),
        "clipped_fraction": round(clipped, 4),
        "saturated": bool(clipped > CLIP_LIMIT),
        "foreground_fraction": round(foreground, 4),
        "nearly_empty": bool(foreground < EMPTY_LIMIT),
    }


def intensity_skew(frame: np.ndarray) -> float:
    """Skewness of the frame's intensities after a sigma-1 Gaussian (noise removed).

    Positive phase contrast has bright halos on a grey background: a long bright tail, positive
    skew (T98G +1.9, celldeath U2OS +1.2 to +4.0). Inverting the contrast flips the sign.
    """
    f = ndimage.gaussian_filter(frame.astype(np.float64), 1.0).ravel()
    spread = f.std()
    return float(np.mean(((f - f.mean()) / spread) ** 3)) if spread > 0 else 0.0
