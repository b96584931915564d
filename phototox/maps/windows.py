"""Sliding-window geometry, in one place: where windows sit, how chunks cut them, how grids are upsampled.

Windows of side ``window`` start at ``0, stride, 2*stride, ...`` in y and x while they fit in the
frame (:func:`window_count`, :func:`window_origins`); exact maps, dense maps, chunked maps and the
upsampling all use these. A window's value is placed at its centre; the full-resolution map
interpolates bilinearly between centres and holds the edge value beyond the outermost centres (as
DeadNet's maps do, the map is upsampled bilinearly to the image size).

Chunks of a huge frame (:func:`spans`, :func:`halo`): a window needs its own pixels and, under
the box contract or dense ``local`` normalisation, half a normalisation box beyond each edge.
Reading each chunk with that context, rounded up to the stride, gives every window of the chunk's
core the same inputs as in the whole frame, and each chunk's window grid lands on the frame's.
"""

from __future__ import annotations

import math

import numpy as np

from phototox.errors import ImageInputError, PhototoxError


def window_count(length: int, window: int, stride: int) -> int:
    """Number of windows along one axis (0 when the side is shorter than the window)."""
    if stride < 1:
        raise ValueError(f"stride must be a positive number of pixels, got {stride}")
    return max(0, (length - window) // stride + 1)


def window_origins(length: int, window: int, stride: int) -> np.ndarray:
    """Start coordinates of the windows along one axis."""
    if length < window:
        raise ImageInputError(f"image side {length} px is smaller than the {window} px window")
    return np.arange(window_count(length, window, stride)) * stride


def window_centres(count: int, window: int, stride: int) -> np.ndarray:
    """Centre coordinates (pixels) of ``count`` windows along one axis."""
    return np.arange(count) * stride + (window - 1) / 2.0


def interpolation_weights(start: int, stop: int, centres: np.ndarray) -> tuple[np.ndarray, int]:
    """Linear interpolation weights from window centres to pixels ``start:stop``.

    Returns ``(weights, first)``: weights of shape (stop - start, k) over centres
    ``first:first + k``, the only ones those pixels touch.
    """
    n = len(centres)
    if n == 1:
        return np.ones((stop - start, 1)), 0
    pos = np.clip(np.arange(start, stop, dtype=np.float64), centres[0], centres[-1])
    step = centres[1] - centres[0]
    left = np.clip(((pos - centres[0]) // step).astype(int), 0, n - 2)
    frac = (pos - centres[left]) / step
    first = int(left.min())
    weights = np.zeros((stop - start, int(left.max()) + 2 - first))
    rows = np.arange(stop - start)
    weights[rows, left - first] = 1.0 - frac
    weights[rows, left + 1 - first] += frac
    return weights, first


def _full_weights(length: int, centres: np.ndarray) -> np.ndarray:
    weights, first = interpolation_weights(0, length, centres)
    full = np.zeros((length, len(centres)))
    full[:, first : first + weights.shape[1]] = weights
    return full


def upsample_grid(grid: np.ndarray, shape: tuple[int, int], window: int, stride: int) -> np.ndarray:
    """Bilinearly upsample a (ny, nx) window grid to a (H, W) float32 map."""
    return upsample_block(grid, window, stride, (0, shape[0]), (0, shape[1]), clip=False)


def upsample_block(
    grid: np.ndarray, window: int, stride: int, ys: tuple[int, int], xs: tuple[int, int], clip: bool = True
) -> np.ndarray:
    """Block ``[ys[0]:ys[1], xs[0]:xs[1]]`` of the upsampled map without the rest (clipped to [0, 1])."""
    wy, fy = interpolation_weights(*ys, window_centres(grid.shape[0], window, stride))
    wx, fx = interpolation_weights(*xs, window_centres(grid.shape[1], window, stride))
    sub = grid[fy : fy + wy.shape[1], fx : fx + wx.shape[1]].astype(np.float64)
    out = wy @ sub @ wx.T
    return (np.clip(out, 0.0, 1.0) if clip else out).astype(np.float32)


def upsample_map(
    grid: np.ndarray, shape: tuple[int, int], window: int, stride: int, band_rows: int = 1024
) -> np.ndarray:
    """:func:`upsample_grid` clipped to [0, 1], in bands of rows.

    The result is the only (H, W) array: float64 temporaries stay a band high for any frame.
    """
    wy = _full_weights(shape[0], window_centres(grid.shape[0], window, stride))
    across = grid.astype(np.float64) @ _full_weights(shape[1], window_centres(grid.shape[1], window, stride)).T
    out = np.empty(shape, dtype=np.float32)
    for y0 in range(0, shape[0], band_rows):
        band = out[y0 : y0 + band_rows]
        np.clip(wy[y0 : y0 + band_rows] @ across, 0.0, 1.0, out=band, casting="same_kind")
    return out


# --- chunks -------------------------------------------------------------------------------------


def normalisation_margin(
    window: int, mode: str, normalisation: str = "local", box: int | None = None, contract: str = "crop"
) -> int:
    """Pixels of context a window needs beyond its own edges (each side).

    Under the ``box`` preprocessing contract (:mod:`phototox.maps.normalise`) every pixel is normalised
    by the ``box`` centred on it, in exact and dense mode alike: half a box. Under the per-crop
    (``crop``) contract, ``exact`` mode normalises each crop on its own (no context) and dense
    ``local`` mode uses a window-sized neighbourhood centred on each position (half a window);
    dense ``global`` mode uses whole-frame statistics, which no chunk can see: refused.
    """
    if contract == "box":
        return math.ceil((box or window) / 2)
    if mode == "exact":
        return 0
    if normalisation == "global":
        raise PhototoxError(
            "chunked maps need --normalisation local (global uses whole-frame statistics, "
            "which a chunk cannot see); or use --mode exact"
        )
    box = window if box is None else box
    return math.ceil(box / 2)


def halo(
    window: int, stride: int, mode: str, normalisation: str = "local", box: int | None = None, contract: str = "crop"
) -> int:
    """Context read around each chunk core, rounded up to the stride so grids stay aligned."""
    margin = normalisation_margin(window, mode, normalisation, box, contract)
    return stride * math.ceil(margin / stride)


def spans(
    length: int, window: int, stride: int, windows_per_chunk: int, context: int
) -> list[tuple[int, int, int, int]]:
    """Chunks along one axis as ``(first_window, n_windows, read_start, read_stop)``.

    ``read_start`` is a multiple of ``stride``, so window ``first_window`` sits at local index
    ``(first_window * stride - read_start) // stride`` of the chunk's own grid.
    """
    if context % stride:
        raise ValueError(f"context {context} must be a multiple of the stride {stride}")
    if length < window:
        raise PhototoxError(f"image side {length} px is smaller than the {window} px window")
    n = window_count(length, window, stride)
    step = max(1, int(windows_per_chunk))
    out = []
    for first in range(0, n, step):
        count = min(step, n - first)
        start = max(0, first * stride - context)
        stop = min(length, (first + count - 1) * stride + window + context)
        out.append((first, count, start, stop))
    return out


def windows_per_chunk(chunk_px: int, stride: int) -> int:
    """Whole windows of the stride grid in a chunk core of about ``chunk_px`` pixels."""
    return max(1, chunk_px // stride)
