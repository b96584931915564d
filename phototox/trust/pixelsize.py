"""Pixel size, end to end: read it from files, decide which one to use, resample to the model's scale.

A convnet trained on 220 px windows learns cells at one magnification: the same dying field shown
at half the pixel size looks like a different image to it. So every model records the pixel size
it was trained at (``meta["pixel_size_um"]``), and every image is resampled to that scale before
the model sees it; maps go back to the image's own size afterwards.

Where the image's pixel size comes from, in order: the user (``--pixel-size``), the file (TIFF
resolution tags with a centimetre or inch unit, ImageJ ``unit=micron`` metadata, OME-XML
``PhysicalSizeX/Y``), else the model's own pixel size is *assumed* and every result says so.
Files are read by the one metadata reader, :mod:`phototox.io.imagemeta` (unitless resolution tags
and the 72/96 dpi defaults of image editors are ignored; values outside 0.02-20 um/px are refused).

Cost: resampling by a factor ``s`` per side multiplies the pixels (and the compute) by ``s**2``;
a 10x-objective image (about 0.65-0.9 um/px) brought to the shipped model's 0.434 um/px is
upsampled 1.5-2x and costs 2.3-4x more.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.errors import ImageInputError, PhototoxError
from phototox.io.imagemeta import check_plausible, read_metadata
from phototox.shapes import plane_shape

SOURCES = ("user", "file", "assumed", "unknown")
SCALE_TOLERANCE = 0.02
"""Relative pixel-size difference below which a frame is not resampled."""
MAX_UPSAMPLING = 8.0
"""Largest factor per side by which an image is enlarged to the model's scale (64x the pixels): a
2x objective's 3.2 um/px brought to 0.434 um/px is 7.4x; more means a wrong pixel size."""
MAX_RESAMPLED_PIXELS = 64_000_000
"""Largest frame resampled in memory (256 MB as float32), so no pixel size sizes an allocation."""


@dataclass(frozen=True)
class PixelSize:
    """The pixel size used for one image and where it came from."""

    um: float | None
    source: str  # user, file (with what), assumed (the model's), unknown (model records none)
    detail: str = ""

    def describe(self) -> str:
        if self.um is None:
            return "pixel size unknown (model records none): image used as is"
        return f"{self.um:.4g} um/px ({self.source}{': ' + self.detail if self.detail else ''})"


def pixel_size_from_file(path: str | os.PathLike) -> tuple[float | None, str]:
    """Pixel size in um/px recorded in an image file, or ``(None, why not)`` (:func:`read_metadata`).

    Reads only metadata. An implausible recorded value raises a one-line PhototoxError.
    """
    meta = read_metadata(path)
    return meta.pixel_size_um, meta.pixel_size_detail


def model_pixel_size(meta: dict) -> float | None:
    """The pixel size (um/px) a model was trained at, from its metadata, or None."""
    value = meta.get("pixel_size_um")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def resolve_pixel_size(
    user_um: float | None,
    path: str | os.PathLike | None,
    model_um: float | None,
    metadata_um: float | None = None,
) -> PixelSize:
    """Decide which pixel size an image has: the user's, the file's, else the model's (assumed).

    ``metadata_um`` is a size already read from the file (OME-Zarr/TIFF opened lazily); else
    ``path`` is read for one."""
    if user_um is not None:
        return PixelSize(check_plausible(float(user_um), "--pixel-size"), "user")
    if metadata_um is not None:
        return PixelSize(check_plausible(float(metadata_um), f"{path or 'image'} metadata"), "file", "image metadata")
    if path is not None:
        um, detail = pixel_size_from_file(path)
        if um is not None:
            return PixelSize(um, "file", detail)
    if model_um is None:
        return PixelSize(None, "unknown")
    return PixelSize(model_um, "assumed", "the model's; give --pixel-size if it differs")


PIXEL_SIZE_HINT = "pass --pixel-size"
"""How the command line asks for the pixel size; other front ends name their own setting."""


def assumed_warning(model_um: float | None, hint: str = PIXEL_SIZE_HINT) -> str:
    """The once-per-run line printed when an image's pixel size had to be assumed (``hint``: how to give it)."""
    if model_um is None:
        return "phototox: warning: the model records no pixel size; images are analysed at their own scale"
    return (
        f"phototox: warning: no pixel size given or found in the file; ASSUMED the model's "
        f"{model_um:g} um/px (results are wrong if the image's differs: {hint})"
    )


# --- resampling -------------------------------------------------------------------------------


def scale_factor(image_um: float | None, model_um: float | None) -> float:
    """Factor by which the image's sides are multiplied to reach the model's scale (1 when unknown)."""
    if image_um is None or model_um is None:
        return 1.0
    factor = image_um / model_um
    return 1.0 if abs(factor - 1.0) < SCALE_TOLERANCE else factor


def resample(frame: np.ndarray, shape: tuple[int, int], order: int | None = None) -> np.ndarray:
    """Resize a 2-D float frame to ``shape``.

    Shrinking: linear interpolation after a Gaussian anti-aliasing filter. Enlarging: cubic
    interpolation clipped to the input's range (measured in benchmarks/bench_pixel_size.py: linear
    upsampling blurs the cells and shifts P(sick) by up to 0.14 at 4x, cubic by 0.06).
    ``order`` forces an interpolation order (1 for maps).
    """
    from skimage.transform import resize

    shrinking = shape[0] < frame.shape[0] or shape[1] < frame.shape[1]
    if order is None:
        order = 1 if shrinking else 3
    out = resize(
        frame.astype(np.float32, copy=False),
        shape,
        order=order,
        mode="reflect",
        anti_aliasing=shrinking,
        preserve_range=True,
    ).astype(np.float32)
    if order > 1:
        np.clip(out, frame.min(), frame.max(), out=out)
    return out


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """Frame shape after scaling both sides by ``factor`` (rounded, at least 1 px)."""
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def check_resampling(shape: tuple[int, int], factor: float, source: str, max_pixels: float = MAX_RESAMPLED_PIXELS):
    """Refuse (one line naming ``source``) enlarging by more than :data:`MAX_UPSAMPLING` per side or
    to more than ``max_pixels``; return the resampled shape."""
    scaled = scaled_shape(shape, factor)
    if factor > MAX_UPSAMPLING or scaled[0] * scaled[1] > max_pixels:
        raise ImageInputError(
            f"{source}: at the model's pixel size the {shape[1]}x{shape[0]} px image would be resampled "
            f"{factor:.3g}x per side to {scaled[1]}x{scaled[0]} px, over the limit of {MAX_UPSAMPLING:g}x "
            f"and {max_pixels / 1e6:g} Mpx; check the image's and the model's pixel sizes"
        )
    return scaled


def to_model_scale(frame: np.ndarray, factor: float, window: int, source: str = "image") -> np.ndarray:
    """``frame`` resampled by ``factor`` (bounded by :func:`check_resampling`); refuses a result
    smaller than the model's window."""
    if factor == 1.0:
        return frame
    shape = check_resampling(plane_shape(frame), factor, source)
    if min(shape) < window:
        raise ImageInputError(
            f"{source}: at the model's pixel size the image is {shape[1]}x{shape[0]} px, "
            f"smaller than the {window} px window"
        )
    return resample(frame, shape)


def training_frames(
    frames: np.ndarray, image_um: float | None, model_um: float | None, window: int, source: str = "image"
) -> np.ndarray:
    """A training image's (T, H, W) frames at the model's pixel size (what train/dataset call)."""
    factor = scale_factor(image_um, model_um)
    if factor == 1.0:
        return frames
    return np.stack([to_model_scale(f, factor, window, source) for f in frames])


def manifest_pixel_size(extra: dict, where: str) -> float | None:
    """A manifest row's ``pixel_size_um`` column (None when blank or absent)."""
    text = str(extra.get("pixel_size_um", "") or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9.eE+-]+", text):
        raise PhototoxError(f"{where}: pixel_size_um {text!r} is not a number")
    return check_plausible(float(text), f"{where}: pixel_size_um")


def at_model_scale(
    compute, frame: np.ndarray, model, user_um: float | None = None, path: str | os.PathLike | None = None
) -> np.ndarray:
    """Run ``compute(frame at the model's scale) -> 2-D map`` and return the map at the frame's size."""
    model_um = model_pixel_size(model.meta)
    size = resolve_pixel_size(user_um, path, model_um)
    if size.source in ("assumed", "unknown"):
        print(assumed_warning(model_um), file=sys.stderr)
    factor = scale_factor(size.um, model_um)
    result = compute(to_model_scale(frame, factor, model.window, str(path or "image")))
    return result if factor == 1.0 else resample(np.asarray(result, np.float32), plane_shape(frame), order=1)


def training_rescaler(samples: list, default_um: float | None, model_um: float | None, init: str = ""):
    """The model's pixel size for a training run and a ``(path, frames) -> frames`` resampler.

    The model's scale is ``model_um``, else the ``--init`` model's (fine-tuning keeps its scale),
    else ``default_um`` (``--pixel-size``), else the median of the manifest's ``pixel_size_um``
    column, else unknown (no resampling; the model then records no pixel size).
    """
    sizes = {Path(s.path): manifest_pixel_size(s.extra, str(s.path)) for s in samples}
    if model_um is None and init:
        from phototox.models.loader import load_model

        model_um = model_pixel_size(load_model(init).meta)
    if model_um is None:
        known = [v for v in sizes.values() if v is not None]
        model_um = default_um if default_um is not None else (float(np.median(known)) if known else None)
    if model_um is not None:
        check_plausible(model_um, "model pixel size")
    if default_um is not None:
        check_plausible(default_um, "--pixel-size")

    def rescale(path, frames: np.ndarray) -> np.ndarray:
        image_um = sizes.get(Path(path))
        from phototox.models.architectures import WINDOW

        return training_frames(frames, image_um if image_um is not None else default_um, model_um, WINDOW, str(path))

    return model_um, rescale
