"""Maps and predictions for many images: reading overlaps compute, one progress bar over images.

A loader thread reads (and validates) the next images while the model works on the current one,
through a bounded queue (``read_ahead`` images), so memory stays bounded and the compute never
waits on the disk. Exact mode adds a second bar over the windows of the current image.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from phototox.maps.inference import FrameResult, summarise_map
from phototox.maps.settings import MapSettings

if TYPE_CHECKING:
    from phototox.trust.assess import Assessor

READ_AHEAD = 2


def read_ahead(
    paths: list[Path], read: Callable[[Path], np.ndarray], depth: int = READ_AHEAD
) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield ``(path, read(path))`` in order, reading up to ``depth`` images ahead in a thread.

    An exception raised while reading is re-raised here, at that image, in the caller's thread.
    """
    slots: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def work() -> None:
        for path in paths:
            if stop.is_set():
                return
            item: tuple[Path, np.ndarray | None, BaseException | None]
            try:
                item = (path, read(path), None)
            except BaseException as exc:
                item = (path, None, exc)
            while not stop.is_set():
                try:
                    slots.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    thread = threading.Thread(target=work, name="phototox-reader", daemon=True)
    thread.start()
    try:
        for _ in paths:
            path, frames, error = slots.get()
            if error is not None:
                raise error
            yield path, frames
    finally:
        stop.set()
        thread.join(timeout=5)


def analyse_paths(
    assessor: Assessor,
    paths: list[Path],
    read: Callable[[Path], np.ndarray],
    settings: MapSettings,
    quiet: bool = False,
    on_result: Callable[[Path, np.ndarray, list[FrameResult]], None] | None = None,
    pixel_size_um: float | None = None,
) -> None:
    """Analyse every image of ``paths`` (read ahead in a thread) with progress bars.

    Each image goes through ``assessor`` (pixel size from ``pixel_size_um`` or the file, domain
    and quality checks). ``on_result(path, frames, results)`` is called after each image (to
    write its outputs or keep its numbers); nothing else is kept, so memory does not grow with
    the number of images.
    """
    from tqdm import tqdm

    predictor = assessor.predictor
    stride, mode = settings.stride, settings.mode
    with tqdm(total=len(paths), desc="images", unit="image", disable=quiet or len(paths) < 2) as images_bar:
        for path, frames in read_ahead(paths, read):
            total = predictor.window_count(frames.shape, stride) * len(frames) if mode == "exact" else 0
            with tqdm(
                total=total, desc=path.name, unit="window", leave=False, disable=quiet or mode != "exact"
            ) as windows_bar:
                size = assessor.pixel_size(pixel_size_um, path)
                results = assessor.analyse(frames, settings, size, str(path), window_progress=windows_bar.update)
            if on_result is not None:
                on_result(path, frames, results)
            images_bar.update(1)


def cell_fractions(result: FrameResult, mask: np.ndarray) -> tuple[float, float]:
    """Fraction of the frame covered by cells, and the sick fraction of that cell-covered area."""
    return float(mask.mean()), summarise_map(result.sick_map, result.threshold, mask)[1]
