"""The one reader of image metadata: pixel size, frame interval and channels, for every path.

Maps, predictions, time-lapses, chunked (lazy) maps and plates all ask :func:`read_metadata` (or,
for a TIFF or OME-Zarr already open, :func:`tiff_metadata` / :func:`ngff_pixel_size`), so one
file gives one answer whichever command reads it.

Pixel size, in order: OME-XML ``PhysicalSizeX/Y`` (with its unit), ImageJ calibration (``unit``
plus the resolution tags), TIFF resolution tags with a centimetre or inch unit. Unitless tags and
the 72/96 dpi defaults of image editors are ignored; a value outside 0.02-20 um/px raises one line
(:func:`phototox.trust.pixelsize.check_plausible`). OME-Zarr: the ``scale`` transforms of the dataset
and the image with the y axis's unit. Frame interval (minutes): ImageJ ``finterval``/``tunit``,
OME ``TimeIncrement``/``TimeIncrementUnit``. Only metadata is read, never pixels.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phototox.errors import PhototoxError
from phototox.io.images import TIFF_SUFFIXES, frame_files

PLAUSIBLE_UM = (0.02, 20.0)
"""Pixel sizes (um/px) accepted; anything else is a unit mistake, not a microscope."""
DEFAULT_DPI = (72.0, 96.0)
"""Resolutions written by image editors and screen-capture tools, never by a microscope."""

LENGTH_UNITS_UM = {
    "micron": 1.0,
    "microns": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "\\u00b5m": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
}
"""Length units (lower case) to micrometres."""

TIME_UNITS_MIN = {
    "ms": 1 / 60000,
    "millisecond": 1 / 60000,
    "s": 1 / 60,
    "sec": 1 / 60,
    "second": 1 / 60,
    "seconds": 1 / 60,
    "min": 1.0,
    "minute": 1.0,
    "minutes": 1.0,
    "h": 60.0,
    "hr": 60.0,
    "hour": 60.0,
    "hours": 60.0,
}
"""Time units (lower case) to minutes."""


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file says about its physical scale (None where it says nothing)."""

    pixel_size_um: float | None = None
    pixel_size_detail: str = "no pixel size in the metadata"
    """Where the pixel size came from, or why there is none."""
    interval_min: float | None = None
    channels: int | None = None


def length_unit_um(unit: object) -> float | None:
    """Micrometres per ``unit`` (a name such as 'micron', 'µm', 'nm'), None when not a length."""
    return LENGTH_UNITS_UM.get(str(unit).strip().lower()) if unit is not None else None


def check_plausible(um: float, where: str) -> float:
    """Return ``um`` if it is a plausible light-microscope pixel size, else raise one line."""
    if (
        isinstance(um, bool)
        or not isinstance(um, (int, float))
        or not math.isfinite(um)
        or not PLAUSIBLE_UM[0] <= um <= PLAUSIBLE_UM[1]
    ):
        raise PhototoxError(
            f"{where}: pixel size {um!r} um/px is implausible "
            f"(expected {PLAUSIBLE_UM[0]}-{PLAUSIBLE_UM[1]} um/px; check the unit)"
        )
    return float(um)


# --- TIFF ---------------------------------------------------------------------------------------


def _rational(value: Any) -> float | None:
    try:
        if isinstance(value, tuple):
            return value[0] / value[1] if value[1] else None
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def ome_pixel_size(xml: str) -> float | None:
    """Mean of ``PhysicalSizeX/Y`` (um) of the first OME ``Pixels`` element, None if absent or not a length."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.split("}")[-1] != "Pixels":
            continue
        sizes = []
        for axis in ("X", "Y"):
            value = _rational(element.get(f"PhysicalSize{axis}"))
            if value is None:
                continue
            factor = length_unit_um(element.get(f"PhysicalSize{axis}Unit", "µm"))
            if factor is None:
                return None
            sizes.append(value * factor)
        return sum(sizes) / len(sizes) if sizes else None
    return None


def _ome_interval(xml: str) -> float | None:
    match = re.search(r'TimeIncrement="([0-9.eE+-]+)"', xml)
    if not match:
        return None
    unit = re.search(r'TimeIncrementUnit="([^"]+)"', xml)
    factor = TIME_UNITS_MIN.get(unit.group(1).strip().lower() if unit else "s")
    value = _rational(match.group(1))
    return None if factor is None or value is None else value * factor


def _tiff_pixel_size(tif: Any) -> tuple[float | None, str]:
    if tif.is_ome and tif.ome_metadata:
        um = ome_pixel_size(tif.ome_metadata)
        if um is not None:
            return um, "OME-XML PhysicalSizeX/Y"
    tags = tif.pages.first.tags
    resolutions = [r for r in (_rational(tags[k].value) if k in tags else None for k in ("XResolution", "YResolution"))]
    known = [r for r in resolutions if r]
    res = sum(known) / len(known) if known else None
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).strip()
    if ij and unit:
        factor = length_unit_um(unit)
        if factor and res:
            return factor / res, f"ImageJ calibration (unit {unit})"
        return None, f"ImageJ unit {unit!r} is not a length"
    if res is None or "ResolutionUnit" not in tags:
        return None, "no resolution tags"
    unit_code = int(tags["ResolutionUnit"].value)
    if unit_code == 2:  # inch
        if any(abs(res - d) < 1e-6 for d in DEFAULT_DPI):
            return None, f"{res:g} dpi is an image editor's default, not a microscope's"
        return 25400.0 / res, "TIFF resolution tags (inch)"
    if unit_code == 3:  # centimetre
        return 1e4 / res, "TIFF resolution tags (centimetre)"
    return None, "resolution tags without a unit"


def _tiff_interval(tif: Any) -> float | None:
    ij = tif.imagej_metadata or {}
    if ij.get("finterval"):
        value = _rational(ij["finterval"])
        factor = TIME_UNITS_MIN.get(str(ij.get("tunit", "sec")).strip().lower(), 1 / 60)
        return None if value is None else value * factor
    return _ome_interval(tif.ome_metadata) if tif.ome_metadata else None


def _tiff_channels(tif: Any) -> int | None:
    try:
        series = tif.series[0]
    except (IndexError, ValueError):
        return None
    axes = series.axes.upper()
    for axis in ("C", "S"):
        if axis in axes:
            return int(series.shape[axes.index(axis)])
    return 1


def tiff_metadata(tif: Any, where: str) -> ImageMetadata:
    """Metadata of an open ``tifffile.TiffFile``; an implausible pixel size raises one line."""
    um, detail = _tiff_pixel_size(tif)
    if um is not None:
        check_plausible(um, f"{where} ({detail})")
    return ImageMetadata(um, detail, _tiff_interval(tif), _tiff_channels(tif))


# --- OME-Zarr -----------------------------------------------------------------------------------


def ngff_pixel_size(multiscale: dict, dataset: dict) -> float | None:
    """The y pixel size (um) of one NGFF dataset from its (and the image's) ``scale`` transforms."""
    scale = None
    for transforms in (
        dataset.get("coordinateTransformations") or [],
        multiscale.get("coordinateTransformations") or [],
    ):
        for t in transforms:
            if isinstance(t, dict) and t.get("type") == "scale":
                values = [float(v) for v in t["scale"]]
                scale = values if scale is None else [a * b for a, b in zip(scale, values)]
    axes = multiscale.get("axes") or []
    if scale is None or len(scale) < 2 or len(axes) < 2:
        return None
    y_axis = axes[-2]
    factor = length_unit_um(y_axis.get("unit")) if isinstance(y_axis, dict) else None
    return None if factor is None else scale[-2] * factor


def _zarr_attributes(folder: Path) -> dict:
    for name in ("zarr.json", ".zattrs"):
        path = folder / name
        if path.is_file():
            if path.stat().st_size > 1 << 20:
                raise PhototoxError(f"{path}: metadata larger than 1 MiB")
            data = json.loads(path.read_text(encoding="utf-8"))
            attrs = data.get("attributes", {}) if name == "zarr.json" else data
            return attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
    return {}


def zarr_metadata(folder: Path) -> ImageMetadata:
    """Pixel size of level 0 of an OME-Zarr image folder (read from its JSON, no zarr needed)."""
    try:
        attrs = _zarr_attributes(folder)
        multiscale = (attrs.get("multiscales") or [{}])[0]
        um = ngff_pixel_size(multiscale, multiscale["datasets"][0]) if multiscale.get("datasets") else None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return ImageMetadata(None, f"unreadable metadata ({type(exc).__name__})")
    if um is None:
        return ImageMetadata(None, "no scale with a length unit in the NGFF metadata")
    check_plausible(um, f"{folder} (NGFF scale)")
    return ImageMetadata(um, "NGFF coordinate scale")


# --- any path -----------------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike) -> ImageMetadata:
    """Metadata of a TIFF/OME-TIFF/ImageJ file, an OME-Zarr folder, or a folder of frames (its first).

    Other formats (PNG, JPEG) carry nothing phototox reads. Damaged metadata is not an error here
    (the pixels may still be readable); an implausible recorded pixel size is.
    """
    path = Path(path)
    if path.is_dir():
        if any((path / n).exists() for n in ("zarr.json", ".zattrs", ".zgroup")) or path.suffix.lower() == ".zarr":
            return zarr_metadata(path)
        frames = frame_files(path)
        if not frames:
            return ImageMetadata(pixel_size_detail="folder holds no frames")
        path = frames[0]
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return ImageMetadata(pixel_size_detail=f"{path.suffix or 'this'} files carry no pixel size phototox reads")
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tiff_metadata(tif, str(path))
    except PhototoxError:
        raise
    except Exception as exc:  # metadata damage is not fatal here: the pixel reader decides
        return ImageMetadata(pixel_size_detail=f"unreadable metadata ({type(exc).__name__})")
