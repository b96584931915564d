"""Large images in and out: OME-Zarr (NGFF) via ``ome-zarr``/``zarr``, TIFF (tiled, BigTIFF) via
``tifffile``'s zarr store. Everything is opened lazily: slicing reads only the chunks it touches.

A store is checked before any pixel is read or allocated (:func:`check_store`,
:func:`check_array`): no link leaving the store, no metadata file over
:data:`MAX_METADATA_BYTES`, a declared plane of at most :data:`MAX_STORE_PIXELS` pixels in at most
:data:`MAX_CHUNKS` chunks of at most :data:`MAX_CHUNK_BYTES` each, and every chunk present (zarr
would read a missing one as its fill value: zeros analysed as an image). A chunk that does not
decode is a one-line error naming the store. Every error names the store.

Needs the ``scale`` extra (``pip install -e ".[scale]"``).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phototox.errors import ImageInputError, OutputError, PhototoxError
from phototox.io.imagemeta import check_plausible, ngff_pixel_size, tiff_metadata
from phototox.shapes import plane_shape

SPATIAL = ("y", "x")
ZARR_SUFFIXES = (".zarr",)
MAX_STORE_PIXELS = 1 << 32
"""Largest plane read chunk by chunk (65536 x 65536 px; a whole 25 mm slide at 0.4 um/px)."""
MAX_CHUNKS = 1_000_000
"""Most stored chunks in one plane (each is a file, listed before work)."""
MAX_CHUNK_BYTES = 256 << 20
"""Largest stored chunk, decoded (a read decodes whole chunks)."""
MAX_METADATA_BYTES = 16 << 20
"""Largest metadata file of a store (``zarr.json``, ``.zattrs``, ``.zarray``, ``.zgroup``)."""
MAX_STORE_ENTRIES = 4_000_000
"""Most files and folders looked at when a store is checked."""
METADATA_NAMES = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")


@dataclass
class LazyFrame:
    """One 2-D plane of a large image, sliceable as ``frame[y0:y1, x0:x1]`` without reading the rest."""

    array: Any  # a zarr array, or any array with shape, dtype and slicing (leading size-1 axes indexed away on read)
    source: str
    pixel_size_um: float | None = None
    axes: tuple[str, ...] = SPATIAL
    lead: tuple[int, ...] = field(default_factory=tuple)

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.array.shape[-2:]
        return int(h), int(w)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def __getitem__(self, key) -> np.ndarray:
        try:
            return np.asarray(self.array[self.lead + tuple(key)])
        except MemoryError:
            raise
        except Exception as exc:  # a codec or store error on a corrupt chunk
            raise ImageInputError(f"{self.source}: a chunk cannot be read ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_store(path: Path) -> None:
    """Refuse a store with a link leaving it or an oversized metadata file (nothing is read)."""
    root = path.resolve()
    seen = 0
    for folder, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            seen += 1
            if seen > MAX_STORE_ENTRIES:
                raise ImageInputError(f"{path}: more than {MAX_STORE_ENTRIES} files in the store; refusing it")
            entry = Path(folder) / name
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                raise ImageInputError(f"{path}: {entry.relative_to(path)} is a link leaving the store; refusing it")
            if name in METADATA_NAMES and entry.is_file() and entry.stat().st_size > MAX_METADATA_BYTES:
                raise ImageInputError(
                    f"{path}: metadata file {entry.relative_to(path)} is over {MAX_METADATA_BYTES >> 20} MB; refusing it"
                )


def check_array(array: Any, source: str) -> None:
    """Refuse a declared shape or chunking over the limits (module docstring), before any read."""
    shape = tuple(int(n) for n in array.shape)
    chunks = tuple(int(n) for n in getattr(array, "chunks", shape) or shape)
    if len(shape) < 2 or min(shape) < 1 or len(chunks) != len(shape) or min(chunks) < 1:
        raise ImageInputError(f"{source}: declared shape {shape} or chunks {chunks} is empty or malformed")
    pixels = math.prod(shape)
    if pixels > MAX_STORE_PIXELS:
        raise ImageInputError(
            f"{source}: declares {'x'.join(map(str, shape))} = {pixels:.3g} pixels, over the limit of "
            f"{MAX_STORE_PIXELS:.3g}; refusing it"
        )
    chunk_bytes = math.prod(chunks) * np.dtype(array.dtype).itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise ImageInputError(
            f"{source}: chunks of {'x'.join(map(str, chunks))} px ({chunk_bytes / 2**20:.3g} MB) are over the "
            f"{MAX_CHUNK_BYTES >> 20} MB limit; rechunk the store"
        )
    count = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks))
    if count > MAX_CHUNKS:
        raise ImageInputError(f"{source}: {count} chunks, over the limit of {MAX_CHUNKS}; rechunk the store")


def check_chunks_present(array: Any, source: str) -> None:
    """Refuse a store missing chunks (zarr would read them as its fill value)."""
    present, expected = int(array.nchunks_initialized), int(array.nchunks)
    if present < expected:
        raise ImageInputError(
            f"{source}: {expected - present} of {expected} chunks are missing from the store "
            "(an interrupted write or copy, or a writer that skips empty chunks); refusing to read them as zeros"
        )


def is_zarr(path: str | os.PathLike) -> bool:
    """An OME-Zarr (or plain zarr) folder."""
    p = Path(path)
    return p.suffix.lower() in ZARR_SUFFIXES or (
        p.is_dir() and any((p / n).exists() for n in ("zarr.json", ".zattrs", ".zgroup"))
    )


def _single_plane(shape: tuple[int, ...], axes: tuple[str, ...], source: str) -> tuple[int, ...]:
    """Index of the one plane of an array whose non-YX axes all have size 1."""
    if len(shape) < 2 or tuple(a.lower() for a in axes[-2:]) != SPATIAL:
        raise ImageInputError(f"{source}: expected the last two axes to be y, x; got {''.join(axes)} {shape}")
    extra = {a: n for a, n in zip(axes[:-2], shape[:-2]) if n != 1}
    if extra:
        raise ImageInputError(
            f"{source}: chunked maps take one 2-D plane, but the image has "
            + ", ".join(f"{n} along {a}" for a, n in extra.items())
            + " (write one plane per OME-Zarr image)"
        )
    return (0,) * (len(shape) - 2)


def _check_dtype(dtype: np.dtype, source: str) -> None:
    if dtype.kind not in "uif" or dtype.itemsize > 8 or dtype == np.bool_:
        raise ImageInputError(f"{source}: unsupported pixel type {dtype} (use 8/16-bit grey or float)")


def open_ome_zarr(path: str | os.PathLike, level: int = 0) -> LazyFrame:
    """Open level ``level`` of an OME-Zarr image; pixel size (um) and axes from its metadata."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: no such OME-Zarr folder")
    check_store(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs: dict[str, Any] = group.attrs.asdict()
        multiscales = attrs.get("ome", attrs).get("multiscales")
        if not multiscales:
            raise ValueError("no 'multiscales' metadata (not an OME-Zarr image)")
        meta = multiscales[0]
        datasets = meta["datasets"]
        if not 0 <= level < len(datasets):
            raise ValueError(f"level {level} not among the {len(datasets)} levels")
        axes_meta = meta.get("axes") or [
            {"name": n} for n in "tczyx"[-_member_array(group, datasets[0]["path"]).ndim :]
        ]
        axes = tuple((a["name"] if isinstance(a, dict) else str(a)).lower() for a in axes_meta)
        array = _member_array(group, datasets[level]["path"])
        pixel_size = ngff_pixel_size({**meta, "axes": axes_meta}, datasets[level])
        if pixel_size is not None:
            check_plausible(pixel_size, f"{path} (NGFF scale)")
        _check_dtype(np.dtype(array.dtype), str(path))
        check_array(array, str(path))
        check_chunks_present(array, str(path))
    except PhototoxError:
        raise
    except Exception as exc:
        raise ImageInputError(f"{path}: not a readable OME-Zarr image ({_one_line(exc)})") from None
    return LazyFrame(array, str(path), pixel_size, axes, _single_plane(array.shape, axes, str(path)))


def _member_array(group: Any, path: str) -> Any:
    """The array ``path`` of a zarr group (ValueError if it names a group or nothing)."""
    import zarr

    member = group[str(path)]
    if not isinstance(member, zarr.Array):
        raise ValueError(f"{path!r} is a group, not an array")
    return member


def open_tiff(path: str | os.PathLike) -> LazyFrame:
    """Open a (tiled, Big-) TIFF lazily through tifffile's zarr store."""
    import tifffile
    import zarr

    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"{path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = tuple(series.axes.lower().replace("s", "c"))
            pixel_size = tiff_metadata(tif, str(path)).pixel_size_um
        store = tifffile.imread(path, aszarr=True)
        opened = zarr.open(store, mode="r")
        # a multi-level TIFF opens as a group: take level 0
        array = _member_array(opened, "0") if isinstance(opened, zarr.Group) else opened
    except PhototoxError:
        raise
    except Exception as exc:
        raise ImageInputError(f"{path}: not a readable TIFF file ({_one_line(exc)})") from None
    _check_dtype(np.dtype(array.dtype), str(path))
    check_array(array, str(path))
    return LazyFrame(array, str(path), pixel_size, axes, _single_plane(array.shape, axes, str(path)))


def open_large(path: str | os.PathLike) -> LazyFrame:
    """Open an OME-Zarr folder or a TIFF file lazily."""
    return open_ome_zarr(path) if is_zarr(path) else open_tiff(path)


# --- writing ----------------------------------------------------------------------------------


def _pyramid_levels(shape: tuple[int, int], chunk: int) -> int:
    """Levels until the coarsest one fits in one chunk."""
    return 1 + max(0, math.ceil(math.log2(max(shape) / chunk))) if max(shape) > chunk else 1


class MapWriter:
    """Write an (H, W) image (a float32 map by default) block by block into a new OME-Zarr image with a 2x pyramid.

    Written into a hidden folder beside ``out`` and renamed into place on success, so a crash
    never leaves a half-written map under the final name; an existing ``out`` is replaced only
    then. Pixel size (um) and axes go into the NGFF metadata.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        shape: tuple[int, int],
        chunk: int = 1024,
        pixel_size_um: float | None = None,
        attrs: dict | None = None,
        dtype: str = "float32",
    ) -> None:
        import zarr

        self.out = Path(out)
        self.shape = (int(shape[0]), int(shape[1]))
        self.chunk = int(chunk)
        self.pixel_size_um = pixel_size_um
        self.attrs = attrs or {}
        self.dtype = np.dtype(dtype)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent))
        self.group = zarr.open_group(str(self.tmp), mode="w")
        self.levels = _pyramid_levels(self.shape, self.chunk)
        self.arrays = []
        h, w = self.shape
        for level in range(self.levels):
            self.arrays.append(
                self.group.create_array(
                    str(level),
                    shape=(h, w),
                    chunks=(min(h, self.chunk), min(w, self.chunk)),
                    dtype=self.dtype,
                    fill_value=float("nan") if self.dtype.kind == "f" else 0,
                    config={"write_empty_chunks": True},  # every chunk stored: a missing one is damage
                )
            )
            h, w = (h + 1) // 2, (w + 1) // 2

    def write(self, block: np.ndarray, y0: int, x0: int) -> None:
        """Level-0 block at (y0, x0); blocks should align with the chunk size."""
        self.arrays[0][y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block

    def write_grid(self, grid: np.ndarray, stride: int, window: int) -> None:
        """The window grid itself, beside the image (not part of the multiscale pyramid)."""
        array = self.group.create_array("grid", shape=grid.shape, chunks=grid.shape, dtype="float32")
        array[...] = grid
        array.attrs.update(
            {"stride_px": int(stride), "window_px": int(window), "centre_of_first_window_px": (window - 1) / 2.0}
        )

    def _downsample(self) -> None:
        """Each level the 2x2 mean of the level above (edges averaged over the pixels present)."""
        for level in range(1, self.levels):
            src, dst = self.arrays[level - 1], self.arrays[level]
            step = 2 * self.chunk
            for y0 in range(0, src.shape[0], step):
                for x0 in range(0, src.shape[1], step):
                    block = np.asarray(src[y0 : y0 + step, x0 : x0 + step], dtype=np.float64)
                    dst[y0 // 2 : (y0 + block.shape[0] + 1) // 2, x0 // 2 : (x0 + block.shape[1] + 1) // 2] = _cast(
                        _mean2x2(block), self.dtype
                    )

    def _metadata(self) -> None:
        from ome_zarr.writer import write_multiscales_metadata

        size = self.pixel_size_um or 1.0
        datasets = [
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [size * 2**level, size * 2**level]},
                    {"type": "translation", "translation": [size * (2**level - 1) / 2] * 2},
                ],
            }
            for level in range(self.levels)
        ]
        unit = {"unit": "micrometer"} if self.pixel_size_um else {}
        axes = [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}]
        write_multiscales_metadata(self.group, datasets, axes=axes, name=self.out.name)
        self.group.attrs.update({"phototox": {**self.attrs, "pixel_size_um": self.pixel_size_um}})

    def __enter__(self) -> MapWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            self._downsample()
            self._metadata()
            if self.out.exists():
                if not is_zarr(self.out):
                    raise OutputError(f"{self.out}: exists and is not a zarr folder; choose another output")
                shutil.rmtree(self.out)
            os.replace(self.tmp, self.out)
        finally:
            if self.tmp.exists():
                shutil.rmtree(self.tmp, ignore_errors=True)


def _mean2x2(block: np.ndarray) -> np.ndarray:
    """2x2 block mean of a float array, averaging only the pixels present at odd edges."""
    h, w = block.shape
    padded = np.full((h + h % 2, w + w % 2), np.nan)
    padded[:h, :w] = block
    quads = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2)
    with np.errstate(invalid="ignore"):
        return np.nanmean(quads, axis=(1, 3))


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values in ``dtype`` (rounded and clipped for integer types)."""
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values), info.min, info.max).astype(dtype)


def write_ome_zarr(
    out: str | os.PathLike,
    image: np.ndarray,
    pixel_size_um: float | None = None,
    chunk: int = 1024,
    attrs: dict | None = None,
) -> Path:
    """Write an in-memory (H, W) array, dtype kept, as an OME-Zarr image with a pyramid."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"write_ome_zarr takes one (H, W) plane, got an array of shape {image.shape}")
    with MapWriter(out, plane_shape(image), chunk, pixel_size_um, attrs, dtype=image.dtype.str) as writer:
        writer.arrays[0][...] = image
    return Path(out)
