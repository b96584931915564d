"""Reading and validating grey phase-contrast images; writing outputs atomically.

Every image enters phototox through :func:`read_frames` (files) or :func:`as_grey_frames`
(arrays from CellProfiler, ImageJ or Python), which return a float32 ``(frames, height, width)``
array or raise :class:`~phototox.errors.ImageInputError` naming the source and the problem.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from phototox.defaults import WINDOW
from phototox.errors import ImageInputError
from phototox.io.planned import check_outputs

TIFF_SUFFIXES = {".tif", ".tiff"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
FRAME_SUFFIXES = TIFF_SUFFIXES | RASTER_SUFFIXES
"""Files a folder of time-lapse frames may hold."""
SAFE_MAGNITUDE = 2.0**24
"""Float images whose largest magnitude exceeds this are scaled down by a power of two (exact),
so per-crop statistics cannot overflow float32 (normalisation makes the result scale-free)."""


SIGNATURES = {
    "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "BMP": (b"BM",),
}
SUFFIX_KINDS = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception message, shortened (library messages can run to pages)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_signature(path: Path, kind: str) -> None:
    """Refuse a file whose first bytes are not those of the format its suffix names."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise ImageInputError(f"{path}: not a readable image (empty file, 0 bytes)")
    if not head.startswith(SIGNATURES[kind]):
        raise ImageInputError(f"{path}: not a readable image (the file does not start like a {kind} file)")


def _read_tiff(path: Path | io.BytesIO, name: str | None = None) -> np.ndarray:
    """One TIFF image or stack of equal frames; samples per pixel (planar or not) on the last axis.

    ``path`` may be an in-memory file; ``name`` then names it in messages.

    Refuses files holding several images of different sizes or pixel types (reduced-resolution
    thumbnails aside) and multi-channel hyperstacks, rather than silently reading the first.
    """
    import tifffile

    where = name or path
    with tifffile.TiffFile(path) as tif:
        series = [s for s in tif.series if not getattr(s.pages[0], "is_reduced", False)] or list(tif.series)
        if not series:
            raise ValueError("no image data (damaged header or truncated file)")
        if len(series) > 1:
            shapes = ", ".join(f"{s.shape} {s.dtype}" for s in series[:4])
            raise ImageInputError(
                f"{where}: holds {len(series)} images of different sizes or pixel types ({shapes}"
                f"{', ...' if len(series) > 4 else ''}); phototox reads one image or one stack of equal "
                "frames -- save each image to its own file"
            )
        data, axes = series[0].asarray(), series[0].axes
    if data.size == 0:
        raise ValueError("no image data (damaged header or truncated file)")
    if "C" in axes and data.shape[axes.index("C")] > 1:
        raise ImageInputError(
            f"{where}: has {data.shape[axes.index('C')]} channels (axes {axes}); phototox expects one grey "
            "phase-contrast channel -- save that channel on its own"
        )
    if "S" in axes and axes.index("S") != len(axes) - 1:  # planar RGB: samples first, e.g. (3, H, W)
        data = np.moveaxis(data, axes.index("S"), -1)
    return data


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as stored (no conversion). Raises ImageInputError on any failure.

    Colour samples always come last, whether the TIFF stores them interleaved or planar.
    """
    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a file")
    suffix = path.suffix.lower()
    kind = SUFFIX_KINDS.get(suffix)
    if kind is None:
        raise ImageInputError(f"{path}: unsupported file type {suffix!r} (use TIFF, PNG or JPEG)")
    try:
        _check_signature(path, kind)
        if kind == "TIFF":
            return _read_tiff(path)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except ImageInputError:
        raise
    except Exception as exc:  # corrupt files raise many different types
        raise ImageInputError(f"{path}: not a readable {kind} image ({_one_line(exc)})") from exc


BODY_KINDS = {"image/png": "PNG", "image/tiff": "TIFF"}
"""In-memory image formats (HTTP bodies) :func:`read_image_bytes` decodes, by media type."""


def declared_pixels(data: bytes, kind: str, source: str) -> int:
    """Pixels an in-memory PNG or TIFF declares in its header (read before any pixel is decoded)."""
    if not data.startswith(SIGNATURES[kind]):
        raise ImageInputError(f"{source}: not a readable image (it does not start like a {kind} file)")
    try:
        if kind == "PNG":
            if data[12:16] != b"IHDR":
                raise ValueError("no IHDR header")
            width, height = struct.unpack(">II", data[16:24])
            return int(width) * int(height)
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return sum(int(np.prod(series.shape, dtype=np.int64)) for series in tif.series)
    except Exception as exc:  # corrupt headers raise many different types
        raise ImageInputError(f"{source}: not a readable {kind} image ({_one_line(exc)})") from exc


def read_image_bytes(data: bytes, kind: str, source: str) -> np.ndarray:
    """Decode an in-memory PNG or TIFF as stored, as :func:`read_raw` reads a file.

    Check :func:`declared_pixels` against a limit first: decoding allocates what the header declares.
    """
    declared_pixels(data, kind, source)  # the signature and a readable header
    try:
        if kind == "TIFF":
            return _read_tiff(io.BytesIO(data), source)
        import imageio.v3 as iio

        return np.asarray(iio.imread(data, extension=".png"))
    except ImageInputError:
        raise
    except Exception as exc:
        raise ImageInputError(f"{source}: not a readable {kind} image ({_one_line(exc)})") from exc


def _drop_grey_channels(image: np.ndarray, source: str, colour: str, colour_hint: str) -> np.ndarray:
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
        f"phase-contrast image -- convert it to greyscale first{colour_hint}"
    )


def _single_channel(image: np.ndarray, source: str) -> np.ndarray:
    """Drop a trailing axis of one channel; refuse two (e.g. grey and alpha), describing the image as it is."""
    if image.shape[-1] == 1:
        return image[..., 0]
    height, width = image.shape[-3:-1]
    raise ImageInputError(
        f"{source}: a {width}x{height} px image with {image.shape[-1]} channels (shape {image.shape}); "
        "phototox expects one grey phase-contrast channel -- save that channel on its own"
    )


def _scale_to_safe_range(image: np.ndarray) -> np.ndarray:
    """Scale a float image by a power of two (exact) so its largest magnitude is at most 2**24.

    Values near float32's limit (e.g. 2.5e38) would overflow the variance of a crop and give NaN
    probabilities; float64 values beyond float32's range would become infinite when converted.
    Per-crop normalisation makes every result independent of this scale.
    """
    peak = float(np.max(np.abs(image), initial=0.0))
    if peak <= SAFE_MAGNITUDE:
        return image
    exponent = int(np.ceil(np.log2(peak / SAFE_MAGNITUDE)))
    return image * np.asarray(2.0**-exponent, dtype=image.dtype)


COLOUR_HINT = " (or pass --colour luminance)"
"""How the command line names the way round a colour refusal; other front ends pass their own."""


def as_grey_frames(
    image: np.ndarray,
    source: str = "image",
    colour: str = "refuse",
    min_size: int = WINDOW,
    colour_hint: str = COLOUR_HINT,
) -> np.ndarray:
    """Validate an array and return float32 frames ``(T, H, W)``.

    Accepts ``(H, W)``, ``(T, H, W)``, ``(H, W, 3|4)`` and ``(T, H, W, 3|4)`` of uint8, uint16 or
    float; RGB with identical channels is treated as grey, other colour images are refused unless
    ``colour='luminance'`` (``colour_hint`` ends the refusal: how this front end asks for that). Refuses NaN/inf, other bit depths, and frames smaller than ``min_size``.
    """
    image = np.asarray(image)
    if image.dtype == np.bool_ or image.dtype.kind not in "uif":
        raise ImageInputError(f"{source}: unsupported pixel type {image.dtype} (use 8/16-bit grey or float)")
    if image.dtype.kind in "iu" and image.dtype not in (np.uint8, np.uint16):
        if image.dtype.kind == "i" and image.size and image.min() >= 0 and image.max() <= 65535:
            image = image.astype(np.uint16)  # e.g. int32 arrays from ImageJ or Python code
        else:
            raise ImageInputError(f"{source}: unsupported bit depth {image.dtype} (use 8- or 16-bit grey)")
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            bad = int((~np.isfinite(image)).sum())
            raise ImageInputError(f"{source}: contains {bad} NaN or infinite pixel value(s)")
        image = _scale_to_safe_range(image)
    if image.ndim >= 3 and image.shape[-1] in (1, 2) and image.shape[-2] > 4:  # (Y, X, C) with 1 or 2 channels
        image = _single_channel(image, source)
    if image.ndim >= 3 and image.shape[-1] in (3, 4) and image.shape[-2] > 4:
        image = _drop_grey_channels(image, source, colour, colour_hint)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ImageInputError(f"{source}: expected a 2-D grey image or a stack of frames, got shape {image.shape}")
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


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting and restoring it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it over ``target`` only on success.

    The temporary file (``mkstemp`` makes it 0600) gets the mode a plain ``open(target, "w")``
    would give, ``0666 & ~umask``, before it replaces ``target``. ``..`` in ``target`` is taken
    lexically (as :mod:`phototox.io.planned` checked it), so no folder is created only to be left.
    """
    target = Path(os.path.normpath(target))  # nothere/../x.csv is x.csv: no stray folder "nothere"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
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
    """Refuse to write any output over an input file (see :mod:`phototox.io.planned`)."""

    check_outputs(outputs, inputs)


def to_display_uint8(frame: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """Percentile-stretch a frame to uint8 for overlays."""
    lo, hi = np.percentile(frame, [low, high])
    scaled = (frame.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """Image files of a folder in natural name order (hidden files skipped)."""
    files = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))
