"""Reading and validating grey phase-contrast images; writing outputs atomically.

Every image enters phototox through :func:`read_frames` (files) or :func:`as_grey_frames`
(arrays from CellProfiler, ImageJ or Python), which return a float32 ``(frames, height, width)``
array or raise :class:`~phototox.errors.ImageInputError` naming the source and the problem.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ImageInputError, OutputError
from .model import WINDOW

ACCEPTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
TIFF_SUFFIXES = {".tif", ".tiff"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as stored (no conversion). Raises ImageInputError on any failure."""
    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            data = tifffile.imread(path)
            if data.size == 0:
                raise ValueError("no image data (damaged header or truncated file)")
            return data
        if suffix in RASTER_SUFFIXES:
            import imageio.v3 as iio

            return np.asarray(iio.imread(path))
    except Exception as exc:  # corrupt files raise many different types
        kind = "TIFF" if suffix in TIFF_SUFFIXES else suffix.lstrip(".").upper()
        raise ImageInputError(f"{path}: not a readable {kind} file ({type(exc).__name__}: {exc})") from exc
    raise ImageInputError(f"{path}: unsupported file type {suffix!r} (use TIFF, PNG or JPEG)")


def _drop_grey_channels(image: np.ndarray, source: str, colour: str) -> np.ndarray:
    """Collapse a trailing RGB(A) axis when the channels are identical (or on request)."""
    channels = image[..., :3]
    identical = np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(
        channels[..., 0], channels[..., 2]
    )
    if identical:
        return image[..., 0]
    if colour == "luminance":
        weights = np.array([0.2125, 0.7154, 0.0721])
        return (channels.astype(np.float64) @ weights).astype(np.float32)
    raise ImageInputError(
        f"{source}: colour image (shape {image.shape}, channels differ); phototox expects a grey "
        "phase-contrast image -- convert it to greyscale first (or pass colour='luminance')"
    )


def as_grey_frames(image: np.ndarray, source: str = "image", colour: str = "refuse",
                   min_size: int = WINDOW) -> np.ndarray:
    """Validate an array and return float32 frames ``(T, H, W)``.

    Accepts ``(H, W)``, ``(T, H, W)``, ``(H, W, 3|4)`` and ``(T, H, W, 3|4)`` of uint8, uint16 or
    float; RGB with identical channels is treated as grey, other colour images are refused unless
    ``colour='luminance'``. Refuses NaN/inf, other bit depths, and frames smaller than ``min_size``.
    """
    image = np.asarray(image)
    if image.dtype == np.bool_ or image.dtype.kind not in "uif":
        raise ImageInputError(f"{source}: unsupported pixel type {image.dtype} (use 8/16-bit grey or float)")
    if image.dtype.kind in "iu" and image.dtype not in (np.uint8, np.uint16):
        if image.dtype.kind == "i" and image.size and image.min() >= 0 and image.max() <= 65535:
            image = image.astype(np.uint16)  # e.g. int32 arrays from ImageJ or Python code
        else:
            raise ImageInputError(f"{source}: unsupported bit depth {image.dtype} (use 8- or 16-bit grey)")
    if image.ndim >= 3 and image.shape[-1] in (3, 4) and image.shape[-2] > 4:
        image = _drop_grey_channels(image, source, colour)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ImageInputError(
            f"{source}: expected a 2-D grey image or a stack of frames, got shape {image.shape}"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise ImageInputError(f"{source}: contains {bad} NaN or infinite pixel value(s)")
    height, width = image.shape[1:]
    if height < min_size or width < min_size:
        raise ImageInputError(
            f"{source}: image is {width}x{height} px, smaller than the {min_size}x{min_size} px "
            "window the classifier needs"
        )
    return image.astype(np.float32, copy=True)


def read_frames(path: str | os.PathLike, colour: str = "refuse", min_size: int = WINDOW) -> np.ndarray:
    """Read an image or time-lapse file as float32 frames ``(T, H, W)``."""
    return as_grey_frames(read_raw(path), str(path), colour=colour, min_size=min_size)


def _umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it over ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600: give the file the permissions of the user's umask
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tiff_atomic(target: str | os.PathLike, array: np.ndarray, **kwargs) -> None:
    """Write a (multi-page) TIFF atomically."""
    import tifffile

    kwargs.setdefault("photometric", "minisblack")  # never read a 3- or 4-frame stack as RGB(A)
    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, array, **kwargs)


def guard_outputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Refuse to write any output over an input file."""
    resolved_inputs = {Path(p).resolve() for p in inputs}
    for out in outputs:
        if Path(out).resolve() in resolved_inputs:
            raise OutputError(f"{out}: output would overwrite an input file; choose another --out")


def to_display_uint8(frame: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """Percentile-stretch a frame to uint8 for overlays."""
    lo, hi = np.percentile(frame, [low, high])
    scaled = (frame.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
