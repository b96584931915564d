"""Where chunks of a huge frame start and end so that a chunked map equals the in-memory map.

A window at origin ``y`` (side ``window``) needs its own pixels and, in dense ``local`` mode, the
pixels of the normalisation box centred on every one of its positions: half a box beyond each
edge. Reading each chunk with that *context* on every side (and no more clamping than the frame
itself imposes, since chunks are clipped to the frame) gives every window of the chunk's core the
same inputs as in the whole frame. Chunk cores hold whole numbers of windows and context is rounded
up to the stride, so each chunk's own window grid lands on the frame's grid.
"""

from __future__ import annotations

import math

from ..errors import PhototoxError


def normalisation_margin(
    window: int, mode: str, normalisation: str = "local", box: int | None = None, contract: str = "crop"
) -> int:
    """Pixels of context a window needs beyond its own edges (each side).

    Under the ``box`` preprocessing contract (:mod:`phototox.normalise`) every pixel is normalised
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
    n = (length - window) // stride + 1
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
