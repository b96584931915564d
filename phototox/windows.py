"""Sliding-window geometry: where windows sit, and bilinear upsampling of a window grid.

Windows of side ``window`` start at ``0, stride, 2*stride, ...`` in y and x while they fit in the
frame. A window's value is placed at its centre; the full-resolution map interpolates bilinearly
between centres and holds the edge value beyond the outermost centres (as DeadNet's maps do, the
map is upsampled bilinearly to the image size).
"""

from __future__ import annotations

import numpy as np

from .errors import ImageInputError


def window_origins(length: int, window: int, stride: int) -> np.ndarray:
    """Start coordinates of the windows along one axis."""
    if stride < 1:
        raise ValueError(f"stride must be a positive number of pixels, got {stride}")
    if length < window:
        raise ImageInputError(f"image side {length} px is smaller than the {window} px window")
    return np.arange(0, length - window + 1, stride)


def _interpolation_matrix(length: int, centres: np.ndarray) -> np.ndarray:
    """(length, n) matrix of linear interpolation weights from centres to every pixel."""
    n = len(centres)
    weights = np.zeros((length, n), dtype=np.float64)
    if n == 1:
        weights[:, 0] = 1.0
        return weights
    pos = np.clip(np.arange(length, dtype=np.float64), centres[0], centres[-1])
    step = centres[1] - centres[0]
    left = np.clip(((pos - centres[0]) // step).astype(int), 0, n - 2)
    frac = (pos - centres[left]) / step
    rows = np.arange(length)
    weights[rows, left] = 1.0 - frac
    weights[rows, left + 1] += frac
    return weights


def upsample_grid(grid: np.ndarray, shape: tuple[int, int], window: int, stride: int) -> np.ndarray:
    """Bilinearly upsample a (ny, nx) window grid to a (H, W) float32 map."""
    ys = np.arange(grid.shape[0]) * stride + (window - 1) / 2.0
    xs = np.arange(grid.shape[1]) * stride + (window - 1) / 2.0
    wy = _interpolation_matrix(shape[0], ys)
    wx = _interpolation_matrix(shape[1], xs)
    return (wy @ grid.astype(np.float64) @ wx.T).astype(np.float32)
