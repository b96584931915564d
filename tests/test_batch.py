"""Reading ahead in a thread: order kept, errors at the right image, memory bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from phototox.results.batch import read_ahead


def test_images_come_in_order_and_reading_stays_a_bounded_distance_ahead():
    paths = [Path(f"img{i}.tif") for i in range(12)]
    started: list[int] = []
    lock = threading.Lock()

    def read(path: Path) -> np.ndarray:
        with lock:
            started.append(int(path.stem[3:]))
        return np.full((2, 2), int(path.stem[3:]))

    seen = []
    for path, frames in read_ahead(paths, read, depth=2):
        time.sleep(0.02)  # compute slower than reading
        with lock:
            assert max(started) <= len(seen) + 3  # queued (2) + being read (1) beyond the current one
        seen.append(int(frames[0, 0]))
        assert path == paths[len(seen) - 1]
    assert seen == list(range(12))


def test_a_read_error_surfaces_at_its_image():
    def read(path: Path) -> np.ndarray:
        if path.name == "bad.tif":
            raise ValueError("bad.tif: not an image")
        return np.zeros((2, 2))

    got = []
    with pytest.raises(ValueError, match="bad.tif"):
        for path, _ in read_ahead([Path("a.tif"), Path("bad.tif"), Path("c.tif")], read):
            got.append(path.name)
    assert got == ["a.tif"]
