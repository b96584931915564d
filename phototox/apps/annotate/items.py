"""What experts are shown: crops of images (up to 10 frames of a time-lapse), and their pixels.

Items come from a manifest (``group`` = stage position, optional ``control`` column marking
unexposed, known-healthy cells, optional ``frames``) or from image files/folders. Each image is
cut into non-overlapping square crops; a time-lapse contributes consecutive runs of up to
``frames`` frames, as in the paper's survey site (Richmond et al., 2017).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from phototox.errors import ManifestError
from phototox.io.images import read_frames, to_display_uint8
from phototox.io.manifest import read_manifest

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}
CONTROL_WORDS = {"1", "yes", "true", "control", "y"}


def _sources(inputs: list[str]) -> list[dict]:
    """(path, group, is_control, frame range) for each image named by the inputs."""
    out: list[dict] = []
    for text in inputs:
        path = Path(text)
        if path.suffix.lower() == ".csv":
            for sample in read_manifest(path, require_labels=False):
                control = sample.extra.get("control", "").strip().lower() in CONTROL_WORDS
                out.append({"path": sample.path, "group": sample.group, "control": control, "frames": sample.frames})
        elif path.is_dir():
            for f in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                out.append({"path": f, "group": f.stem, "control": False, "frames": None})
        elif path.is_file():
            out.append({"path": path, "group": path.stem, "control": False, "frames": None})
        else:
            raise ManifestError(f"{path}: no such image, folder or manifest")
    return out


def make_items(inputs: list[str], crop: int = 256, frames: int = 10) -> list[tuple]:
    """Item rows (path, first, last, y, x, size, group, is_control) for the database."""
    rows = []
    for source in _sources(inputs):
        stack = read_frames(source["path"], min_size=min(crop, 32))
        n = stack.shape[0]
        first, last = source["frames"] or (0, n - 1)
        last = min(last, n - 1)
        size = min(crop, stack.shape[1], stack.shape[2])
        for start in range(first, last + 1, frames):
            end = min(start + frames - 1, last)
            for y in range(0, stack.shape[1] - size + 1, size):
                for x in range(0, stack.shape[2] - size + 1, size):
                    rows.append(
                        (
                            str(Path(source["path"]).resolve()),
                            start,
                            end,
                            y,
                            x,
                            size,
                            source["group"],
                            int(source["control"]),
                        )
                    )
    return rows


@lru_cache(maxsize=16)
def _stack(path: str) -> np.ndarray:
    return read_frames(path, min_size=1)


def frame_png(path: str, frame: int, y: int, x: int, size: int) -> bytes:
    """One frame of an item as an 8-bit PNG (contrast stretched over the item's first frame)."""
    import imageio.v3 as iio

    stack = _stack(path)
    crop = stack[frame, y : y + size, x : x + size]
    buffer = io.BytesIO()
    iio.imwrite(buffer, to_display_uint8(crop), extension=".png")
    return buffer.getvalue()
