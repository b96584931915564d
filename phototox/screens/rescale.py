"""Lazy resampling of frames too large for memory: any region of the frame at another pixel size.

:class:`ResampledView` computes ``region`` of :func:`phototox.trust.pixelsize.resample` of a whole
frame from that region's source pixels plus a margin, so chunked maps run at the model's pixel
size (and come back at the image's) exactly as in-memory maps do, to float rounding: the same
pixel-centre mapping as ``skimage.transform.resize``, the same Gaussian anti-aliasing when
shrinking, the same reflection at the frame's edges, and cubic results clipped to the
whole frame's range (found in one banded pass). Nothing frame-sized is allocated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

MARGIN = 12
"""Source pixels beyond a region's interpolation support (cubic splines, Gaussian tails)."""


class ResampledView:
    """``source`` (lazily sliceable, shape (..., H, W)) seen at ``shape``; slice it like an array.

    ``order`` None chooses as :func:`phototox.trust.pixelsize.resample` does (linear with anti-aliasing
    when shrinking, cubic clipped to the source's range when enlarging).
    """

    def __init__(self, source, shape: tuple[int, int], order: int | None = None, band_rows: int = 1024) -> None:
        self.source = source
        self.source_shape = tuple(int(v) for v in source.shape[-2:])
        self.shape = (int(shape[0]), int(shape[1]))
        self.ratio = (self.source_shape[0] / self.shape[0], self.source_shape[1] / self.shape[1])
        shrinking = self.shape[0] < self.source_shape[0] or self.shape[1] < self.source_shape[1]
        self.order = order if order is not None else (1 if shrinking else 3)
        self.sigma = tuple(max(0.0, (r - 1.0) / 2.0) for r in self.ratio) if shrinking else (0.0, 0.0)
        self.band_rows = band_rows
        self._range: tuple[float, float] | None = None

    def _value_range(self) -> tuple[float, float]:
        """The source's minimum and maximum, read in bands of rows (cubic results are clipped to it)."""
        if self._range is None:
            low, high = np.inf, -np.inf
            for y0 in range(0, self.source_shape[0], self.band_rows):
                band = np.asarray(self.source[y0 : y0 + self.band_rows, :], dtype=np.float32)
                low, high = min(low, float(band.min())), max(high, float(band.max()))
            self._range = (low, high)
        return self._range

    def _source_span(self, start: int, stop: int, axis: int) -> tuple[int, int, np.ndarray]:
        """Source rows/columns needed for output ``start:stop`` and their coordinates there."""
        coords = (np.arange(start, stop, dtype=np.float64) + 0.5) * self.ratio[axis] - 0.5
        pad = MARGIN + int(np.ceil(4 * self.sigma[axis]))
        lo = max(0, int(np.floor(coords.min())) - pad)
        hi = min(self.source_shape[axis], int(np.ceil(coords.max())) + pad + 1)
        return lo, hi, coords - lo

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key
        y0, y1, _ = rows.indices(self.shape[0])
        x0, x1, _ = cols.indices(self.shape[1])
        sy0, sy1, cy = self._source_span(y0, y1, 0)
        sx0, sx1, cx = self._source_span(x0, x1, 1)
        # where the span stops at the frame's edge, "mirror" there is resize's "reflect" edge rule;
        # elsewhere the margin keeps every edge effect away from the pixels computed
        part = np.asarray(self.source[sy0:sy1, sx0:sx1], dtype=np.float32)
        if any(self.sigma):
            part = ndimage.gaussian_filter(part, self.sigma, mode="mirror")
        grid_y, grid_x = np.meshgrid(cy, cx, indexing="ij")
        out = ndimage.map_coordinates(part, [grid_y, grid_x], order=self.order, mode="mirror")
        out = out.astype(np.float32, copy=False)
        if self.order > 1:
            low, high = self._value_range()
            np.clip(out, low, high, out=out)
        return out


class GridMapView:
    """The full-resolution map of a window grid (:func:`upsample_block`), sliceable lazily."""

    def __init__(self, grid: np.ndarray, shape: tuple[int, int], block: Callable[..., np.ndarray]) -> None:
        self.grid = grid
        self.shape = shape
        self._block = block

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key
        y0, y1, _ = rows.indices(self.shape[0])
        x0, x1, _ = cols.indices(self.shape[1])
        return self._block(self.grid, (y0, y1), (x0, x1))
