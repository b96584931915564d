"""The tags of a calibrated map TIFF (ImageJ hyperstack, pixel size, provenance), for every map written."""

from __future__ import annotations

import json


def map_tiff_tags(
    stack: bool, pixel_size_um: float | None, pixel_size_source: str | None, provenance: dict | None
) -> dict:
    """tifffile keywords for a calibrated ImageJ map TIFF (Fiji, Bio-Formats and OME tools read it).

    With a known pixel size: ``XResolution``/``YResolution`` in pixels per centimetre with
    ``ResolutionUnit`` centimetre (the TIFF standard) and ``unit=um`` in the ImageJ description, which
    ImageJ converts to µm. Provenance (phototox version, model, checksum, the pixel size and where it
    came from: user, file or assumed) goes into the ImageJ ``Info`` and image properties.
    """
    known = pixel_size_um is not None and pixel_size_um > 0
    info = {
        **(provenance or {}),
        "content": "P(sick) map, float32 0-1",
        "pixel_size_um": f"{pixel_size_um:g}" if known else "unknown",
        "pixel_size_source": pixel_size_source or "unknown",
    }
    metadata: dict = {"axes": "TYX" if stack else "YX", "Info": json.dumps(info, indent=1)}
    metadata["Properties"] = {(k if k.startswith("phototox") else f"phototox_{k}"): str(v) for k, v in info.items()}
    if not known:
        return {"imagej": True, "metadata": metadata}
    per_cm = 1e4 / float(pixel_size_um)  # type: ignore[arg-type]
    return {
        "imagej": True,
        "metadata": {**metadata, "unit": "um"},
        "resolution": (per_cm, per_cm),
        "resolutionunit": "CENTIMETER",
    }
