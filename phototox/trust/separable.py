"""Symmetric separable filters in float32 numpy, equal to ``scipy.ndimage``'s to float32 rounding.

The quality flags (:mod:`phototox.trust.quality`) filter every frame with Gaussians, a Laplacian of
Gaussian and 7 px box means. ``scipy.ndimage`` runs each 1-D pass line by line through float64
buffers; here a symmetric kernel is applied to whole float32 arrays at once, each pair of taps
``x[i - j] + x[i + j]`` summed once and shared by every kernel of the same axis (a Gaussian and its
second derivative read the same pairs). Boundary: scipy's default ``reflect`` (numpy's
``symmetric``: the edge pixel repeated), at any distance. The arithmetic is float32, so results
differ from scipy's float64 accumulation by float32 rounding (about 1e-7 of the values' magnitude).
"""

from __future__ import annotations

import functools

import numpy as np

GAUSS_TRUNCATE = 4.0
"""scipy's default: a Gaussian reaches ``int(4 * sigma + 0.5)`` px."""


def mirror_pad(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """``np.pad(x, radius, mode="symmetric")`` along one axis (edge pixel repeated), without np.pad's overhead."""
    n = x.shape[axis]
    if radius > n:  # reflections of reflections: np.pad handles any distance
        widths = [(0, 0)] * x.ndim
        widths[axis] = (radius, radius)
        return np.pad(x, widths, mode="symmetric")
    shape = list(x.shape)
    shape[axis] = n + 2 * radius
    out = np.empty(shape, x.dtype)
    src = np.moveaxis(x, axis, 0)
    dst = np.moveaxis(out, axis, 0)
    dst[radius : radius + n] = src
    if radius:
        dst[:radius] = src[radius - 1 :: -1] if radius < n else src[::-1]
        dst[radius + n :] = src[: n - radius - 1 : -1] if radius < n else src[::-1]
    return out


@functools.lru_cache(maxsize=16)
def gaussian_kernel(sigma: float, order: int = 0) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian kernel (order 0) or its second derivative (order 2), float64."""
    if order not in (0, 2):
        raise ValueError(f"order {order}: only 0 and 2 (symmetric kernels)")
    radius = int(GAUSS_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi /= phi.sum()
    s2 = sigma * sigma
    kernel = phi if order == 0 else (x**2 / (s2 * s2) - 1.0 / s2) * phi  # scipy's q(x) for order 2: x^2/s^4 - 1/s^2
    kernel.setflags(write=False)  # cached: shared by every caller
    return kernel


def correlate_symmetric(x: np.ndarray, kernels: list[np.ndarray], axis: int) -> list[np.ndarray]:
    """Each symmetric odd-length kernel correlated with float32 ``x`` along ``axis`` (reflect boundary)."""
    radius = max(len(k) for k in kernels) // 2
    n = x.shape[axis]
    padded = mirror_pad(x, radius, axis)

    def shifted(offset: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[axis] = slice(radius + offset, radius + offset + n)
        return padded[tuple(index)]

    outs = []
    for k in kernels:
        centre = len(k) // 2
        outs.append(shifted(0) * np.float32(k[centre]))
    pair = np.empty(x.shape, np.float32)
    term = np.empty(x.shape, np.float32)
    for j in range(1, radius + 1):
        np.add(shifted(-j), shifted(j), out=pair)
        for k, out in zip(kernels, outs):
            centre = len(k) // 2
            if j <= centre:
                np.multiply(pair, np.float32(k[centre + j]), out=term)
                out += term
    return outs


def gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """``ndimage.gaussian_filter(x, sigma)`` of a 2-D float32 array (rows first, as scipy)."""
    k = gaussian_kernel(sigma)
    (rows,) = correlate_symmetric(x, [k], 0)
    (out,) = correlate_symmetric(rows, [k], 1)
    return out


def gaussian_and_laplace(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``ndimage.gaussian_filter(x, sigma)`` and ``ndimage.gaussian_laplace(x, sigma)`` from shared passes."""
    g0, g2 = gaussian_kernel(sigma, 0), gaussian_kernel(sigma, 2)
    smooth_rows, curve_rows = correlate_symmetric(x, [g0, g2], 0)
    smooth, curve_x = correlate_symmetric(smooth_rows, [g0, g2], 1)
    (curve_y,) = correlate_symmetric(curve_rows, [g0], 1)
    curve_y += curve_x
    return smooth, curve_y


def _box_sum(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    radius = size // 2
    padded = mirror_pad(x, radius, axis)
    n = x.shape[axis]
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, n)
    out = padded[tuple(index)].copy()
    for j in range(1, size):
        index[axis] = slice(j, j + n)
        out += padded[tuple(index)]
    return out


def box_mean(x: np.ndarray, size: int) -> np.ndarray:
    """``ndimage.uniform_filter(x, size)`` of a 2-D array (float32 or float64), ``size`` odd (reflect boundary)."""
    out = _box_sum(_box_sum(x, size, 0), size, 1)
    out *= out.dtype.type(1.0 / (size * size))
    return out
