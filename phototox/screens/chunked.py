"""Sickness maps of frames too large for memory, chunk by chunk, written as OME-Zarr.

The frame is read lazily (an OME-Zarr or TIFF opened by :mod:`.zarrio`, or any array that can be
sliced). Pass 1 computes the window grid chunk by chunk, each chunk read with the context
:func:`~phototox.maps.windows.halo` says its windows need, through the same
:class:`~phototox.maps.inference.Predictor` grids as an in-memory map. Pass 2 upsamples the grid block
by block exactly as :func:`phototox.maps.windows.upsample_grid` does, accumulates the summary numbers and
writes the full-resolution map (level 0) and a 2x-downsampled pyramid. Memory is bounded by the
chunk size, never by the frame size.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.errors import ImageInputError
from phototox.maps.inference import Predictor
from phototox.maps.settings import DEFAULT_SETTINGS, MapSettings
from phototox.maps.windows import halo, spans, upsample_block, windows_per_chunk
from phototox.models.architectures import CLASSES
from phototox.schema import Trust, summary_of
from phototox.screens.rescale import GridMapView, ResampledView
from phototox.screens.zarrio import MAX_STORE_PIXELS, MapWriter
from phototox.shapes import plane_shape
from phototox.trust.pixelsize import check_resampling

DEFAULT_CHUNK = 2048
"""Core side of a compute chunk in pixels (rounded down to whole windows of the stride)."""
STORE_CHUNK = 1024
"""Side of the stored OME-Zarr chunks and of the upsampling blocks."""


@dataclass
class ChunkedResult:
    """Summary numbers of a chunked map (the map itself lives in the OME-Zarr store)."""

    path: Path | None
    shape: tuple[int, int]
    grid_shape: tuple[int, int]
    mean_sick_probability: float
    sick_area_fraction: float
    label: str
    confidence: float
    threshold: float
    stride: int
    mode: str
    engine: str = "torch"
    trust: Trust = field(default_factory=Trust)

    def summary(self) -> dict:
        """Scalar results, with the same keys as :meth:`FrameResult.summary`."""
        return summary_of(self, self.grid_shape[0] * self.grid_shape[1])


def _as_float(block) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(block), dtype=np.float32)


def chunked_grid(
    predictor: Predictor,
    frame,
    settings: MapSettings,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    on_engine: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The window grid of a lazily sliceable (H, W) frame, computed chunk by chunk.

    Equal (to float rounding) to ``predictor.dense_grid``/``exact_grid`` of the whole frame. The
    grid is 1/stride^2 of the frame; it is returned in memory.
    """
    stride, mode, normalisation = settings.stride, settings.mode, settings.normalisation
    h, w = frame.shape[-2:]
    win = predictor.window
    contract = predictor.contract
    context = halo(
        win, stride, mode, normalisation, box=contract.size if contract.kind == "box" else None, contract=contract.kind
    )
    per_chunk = windows_per_chunk(chunk, stride)
    rows = spans(h, win, stride, per_chunk, context)
    cols = spans(w, win, stride, per_chunk, context)
    grid = np.empty((rows[-1][0] + rows[-1][1], cols[-1][0] + cols[-1][1]), np.float32)
    for first_y, count_y, y0, y1 in rows:
        for first_x, count_x, x0, x1 in cols:
            region = _as_float(frame[y0:y1, x0:x1])
            if not np.isfinite(region).all():
                raise ImageInputError(f"NaN or infinite pixel values in rows {y0}-{y1}, columns {x0}-{x1}")
            part = (
                predictor.exact_grid(region, stride)
                if mode == "exact"
                else predictor.dense_grid(region, stride, normalisation, on_engine)
            )
            ly, lx = (first_y * stride - y0) // stride, (first_x * stride - x0) // stride
            grid[first_y : first_y + count_y, first_x : first_x + count_x] = part[ly : ly + count_y, lx : lx + count_x]
            if progress is not None:
                progress(1)
    return grid


def chunked_map(
    predictor: Predictor,
    frame,
    out: str | Path | None,
    settings: MapSettings = DEFAULT_SETTINGS,
    chunk: int = DEFAULT_CHUNK,
    pixel_size_um: float | None = None,
    attrs: dict | None = None,
    progress: Callable[[int], None] | None = None,
    factor: float = 1.0,
) -> ChunkedResult:
    """Map a large frame chunk by chunk into an OME-Zarr image ``out`` (with a pyramid).

    Summary numbers are accumulated block by block and equal those of an in-memory map; with
    ``out=None`` only they are computed (``phototox predict`` of a large image). ``factor``
    (:func:`phototox.trust.pixelsize.scale_factor`) resamples the frame lazily to the model's pixel
    size (:class:`.rescale.ResampledView`); the map comes back at the frame's size, as
    :class:`phototox.trust.assess.Assessor` returns in-memory maps. Front ends call it through
    :func:`phototox.screens.jobs.chunked_row`, which adds the trust verdicts.
    """

    h, w = (int(v) for v in frame.shape[-2:])
    scaled = frame
    if factor != 1.0:  # lazy: bounded as a store is, not by the in-memory budget
        frame_source = str(getattr(frame, "source", "image"))
        scaled = ResampledView(frame, check_resampling((h, w), factor, frame_source, MAX_STORE_PIXELS))
    if min(scaled.shape[-2:]) < predictor.window:
        raise ImageInputError(
            f"at the model's pixel size the image is {scaled.shape[-1]}x{scaled.shape[-2]} px, "
            f"smaller than the {predictor.window} px window"
        )
    stride, threshold = settings.stride, settings.threshold
    engine = ["torch"]
    grid = chunked_grid(predictor, scaled, settings, chunk, progress, engine.append)
    at_model_scale = GridMapView(
        grid, tuple(scaled.shape[-2:]), lambda g, ys, xs: upsample_block(g, predictor.window, stride, ys, xs)
    )
    sick_map = at_model_scale if factor == 1.0 else ResampledView(at_model_scale, (h, w), order=1)
    total, above = 0.0, 0
    with MapWriter(out, (h, w), STORE_CHUNK, pixel_size_um, attrs) if out else nullcontext() as writer:
        for y0 in range(0, h, STORE_CHUNK):
            y1 = min(h, y0 + STORE_CHUNK)
            for x0 in range(0, w, STORE_CHUNK):
                x1 = min(w, x0 + STORE_CHUNK)
                block = np.clip(sick_map[y0:y1, x0:x1], 0.0, 1.0)
                total += float(block.sum(dtype=np.float64))
                above += int((block >= threshold).sum())
                if writer is not None:
                    writer.write(block, y0, x0)
        if writer is not None:
            writer.write_grid(grid, stride, predictor.window)
    mean = total / (h * w)
    label = CLASSES[1] if mean >= threshold else CLASSES[0]
    confidence = mean if label == CLASSES[1] else 1.0 - mean
    return ChunkedResult(
        Path(out) if out else None,
        (h, w),
        plane_shape(grid),
        mean,
        above / (h * w),
        label,
        confidence,
        threshold,
        int(stride),
        settings.mode,
        engine[-1],
    )
