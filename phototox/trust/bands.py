"""Whole-frame statistics computed in row bands, so memory stays bounded at any frame size.

A filter of radius ``r`` applied to rows ``[r0 - pad, r1 + pad)`` (clipped to the frame) gives
exactly the whole-frame filter's rows ``[r0, r1)`` when ``pad >= r``: the clipped edges are the
frame's own edges, where the filter's boundary mode applies as it would on the whole frame. Global
reductions are combined from per-band pieces: moments with Chan et al.'s pairwise update, exact
order statistics (the median) by narrowing a histogram over passes and then selecting among the
few values left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

BAND_BYTES = 8 * 2**20
"""Target size of one float32 band buffer (rows x width x 4 bytes)."""
SELECT_BINS = 4096
"""Histogram bins per narrowing pass of :func:`kth_smallest`."""
SELECT_GATHER = 2**18
"""Values left in the narrowed bin below which :func:`kth_smallest` gathers and selects exactly."""


def band_rows(width: int, band: int | None = None) -> int:
    """Rows per band: ``band`` if given, else about :data:`BAND_BYTES` of float32 per band (at least 16)."""
    if band is not None:
        return max(1, int(band))
    return max(16, BAND_BYTES // (4 * max(1, width)))


def bands(height: int, rows: int, pad: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """``(r0, r1, lo, hi)`` per band: the band's rows ``[r0, r1)`` and the padded slice ``[lo, hi)``."""
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        yield r0, r1, max(0, r0 - pad), min(height, r1 + pad)


def filtered_bands(
    frame: np.ndarray, pad: int, fn: Callable[[np.ndarray], np.ndarray], rows: int | None = None
) -> Iterator[np.ndarray]:
    """``fn`` of each padded float32 band, cropped back to the band's own rows (equal to ``fn`` of the frame)."""
    step = band_rows(frame.shape[1], rows)
    for r0, r1, lo, hi in bands(frame.shape[0], step, pad):
        out = fn(np.asarray(frame[lo:hi], dtype=np.float32))
        yield out[r0 - lo : r0 - lo + (r1 - r0)]


class Moments:
    """Running count, mean and sum of squared deviations (float64), combined band by band."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, values: np.ndarray) -> None:
        """Fold in one band's values (Chan et al. 1979 pairwise update)."""
        n_b = values.size
        if n_b == 0:
            return
        v = values.astype(np.float64, copy=False)
        mean_b = float(v.mean())
        m2_b = float(np.square(v - mean_b).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.mean += delta * n_b / n
        self.n = n

    @property
    def var(self) -> float:
        """Population variance (``np.var``'s default)."""
        return self.m2 / self.n if self.n else 0.0


def kth_smallest(values: Callable[[], Iterator[np.ndarray]], ks: tuple[int, ...]) -> list[float]:
    """The ``k``-th smallest (0-based) of all values the bands yield, exactly, for each ``k`` in ``ks``.

    ``values`` is called once per pass and yields the bands afresh. Each pass histograms the current
    range and keeps the bin holding the ``k``-th value; when it holds few values they are gathered
    and partitioned. Memory: one band plus :data:`SELECT_GATHER` values.
    """
    lo = np.inf
    hi = -np.inf
    total = 0
    for v in values():
        if v.size:
            lo = min(lo, float(v.min()))
            hi = max(hi, float(v.max()))
            total += v.size
    out = []
    for k in ks:
        if not 0 <= k < total:
            raise ValueError(f"k={k} outside 0..{total - 1}")
        a, b = np.float64(lo), np.float64(hi)  # the k-th value lies in [a, b]; float64 compares
        while True:
            below = inside = 0
            smin, smax = np.inf, -np.inf
            counts = np.zeros(SELECT_BINS, np.int64)
            for v in values():
                below += int(np.count_nonzero(v < a))
                sel = v[(v >= a) & (v <= b)].astype(np.float64)
                if sel.size:
                    inside += sel.size
                    smin, smax = min(smin, float(sel.min())), max(smax, float(sel.max()))
                    counts += np.histogram(sel, bins=SELECT_BINS, range=(float(a), float(b)))[0]
            if smin == smax:  # every value left is the same: the k-th one
                out.append(smin)
                break
            edges = np.linspace(a, b, SELECT_BINS + 1)
            j = int(np.searchsorted(np.cumsum(counts), k - below, side="right"))
            if inside <= SELECT_GATHER or (edges[j], edges[j + 1]) == (a, b):  # few left, or no narrower bins
                gathered = np.concatenate([v[(v >= a) & (v <= b)] for v in values()])
                out.append(float(np.partition(gathered, k - below)[k - below]))
                break
            a, b = edges[j], edges[j + 1]
    return out


DIRECT_FACTOR = 16
"""Up to ``DIRECT_FACTOR * SELECT_GATHER`` values (4 Mi, 16 MiB of float32) are gathered and
partitioned at once: fewer passes over the bands, and the memory a 2 MP frame's values take anyway."""


def _gathered(values: Callable[[], Iterator[np.ndarray]], total: int) -> np.ndarray | None:
    """All values in one array when there are few enough (:data:`DIRECT_FACTOR`), else None."""
    if total > DIRECT_FACTOR * SELECT_GATHER:
        return None
    return np.concatenate([np.ravel(v) for v in values()])


def median(values: Callable[[], Iterator[np.ndarray]], total: int) -> float:
    """``np.median`` of all values the bands yield (mean of the two middle ones for an even count)."""
    gathered = _gathered(values, total)
    if gathered is not None and gathered.size == total and total:
        middle = np.partition(gathered, [(total - 1) // 2, total // 2])
        return float((np.float64(middle[(total - 1) // 2]) + np.float64(middle[total // 2])) / 2)
    (upper,) = kth_smallest(values, (total // 2,))
    if total % 2:
        return upper
    u = np.float64(upper)
    if sum(int(np.count_nonzero(v < u)) for v in values()) < total // 2:  # the lower middle value ties
        return upper
    lower = max(float(v[v < u].max()) for v in values() if np.any(v < u))
    return float((lower + upper) / 2)
