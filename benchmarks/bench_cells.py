"""Cell count and halo-free confluence against the Usiigaci T98G masks (agreement, not accuracy).

    python benchmarks/bench_cells.py [--overlay /tmp/cells_t37.png]   # ../shared/data ($PHOTOTOX_SHARED_DATA)

Data: Usiigaci T98G phase-contrast time-lapse (Tsai et al., SoftwareX 9, 2019; MIT), 0.87 um/px,
10.2 min/frame; masks_model1 holds Mask R-CNN instance masks for frames t01, t10, t19, t28, t37
(0-based 0, 9, 18, 27, 36): model output, so the numbers are agreement with that model. The
parameters of :mod:`phototox.timecourse.cells` were tuned on frames 0-17 (t01, t10) only;
t19, t28, t37 are reported as held out. Per frame: confluence IoU of the old texture foreground
(:func:`phototox.timecourse.activity.foreground_mask`, "before") and of the new body mask
("after") with the union of the mask objects, and the relative count error (estimate - objects) / objects.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from phototox.timecourse.activity import foreground_mask
from phototox.timecourse.cells import frame_cells

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data")) / "usiigaci_t98g_phase"
PIXEL_UM = 0.87
FRAMES = (1, 10, 19, 28, 37)
TUNED = (1, 10)


def load(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` (1-based, as in the file names) and its instance mask."""
    import tifffile
    from skimage.io import imread

    frame = tifffile.imread(DATA / "frames" / f"20180101ef002xy01t{t:02d}.tif")
    return frame, imread(DATA / "masks_model1" / f"20180101ef002xy01t{t:02d}.png")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def overlay(frame: np.ndarray, cells, masks: np.ndarray, path: Path) -> None:
    """Frame in grey; new body mask outline red, mask objects green, one dot per counted cell."""
    from skimage.io import imsave
    from skimage.segmentation import find_boundaries

    low, high = np.percentile(frame, [1, 99.5])
    grey = np.clip((frame.astype(float) - low) / (high - low), 0, 1)
    rgb = np.stack([grey] * 3, -1)
    rgb[find_boundaries(masks > 0)] = [0, 1, 0]
    rgb[find_boundaries(cells.labels, mode="inner")] = [1, 0, 0]
    from scipy import ndimage

    ids = np.unique(cells.labels)
    for y, x in ndimage.center_of_mass(cells.labels > 0, cells.labels, ids[ids > 0]):
        yy, xx = int(y), int(x)
        rgb[max(0, yy - 3) : yy + 4, max(0, xx - 3) : xx + 4] = [1, 1, 0]
    imsave(path, (rgb * 255).astype(np.uint8), check_contrast=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", type=Path, help="write a picture of the last frame (cells + masks)")
    args = parser.parse_args()
    if not (DATA / "masks_model1").is_dir():
        raise SystemExit(f"no Usiigaci data at {DATA} (set PHOTOTOX_SHARED_DATA)")
    print(
        "frame  set     IoU before  IoU after  conf before  conf after  conf masks  count  objects  rel.err  median um2 (masks)  s/frame"
    )
    errors: dict[str, list[float]] = {"tuned": [], "held out": []}
    for t in FRAMES:
        frame, masks = load(t)
        start = time.perf_counter()
        cells = frame_cells(frame, PIXEL_UM)
        seconds = time.perf_counter() - start
        old = foreground_mask(frame, PIXEL_UM)
        truth = masks > 0
        ids = np.unique(masks)
        ids = ids[ids > 0]
        mask_area = float(np.median(np.bincount(masks.ravel())[ids])) * PIXEL_UM**2
        part = "tuned" if t in TUNED else "held out"
        error = (cells.count - ids.size) / ids.size
        errors[part].append(error)
        print(
            f"{t - 1:5d}  {part:8s} {iou(old, truth):10.3f} {iou(cells.mask, truth):10.3f} "
            f"{old.mean():12.3f} {cells.confluence:11.3f} {truth.mean():11.3f} {cells.count:6d} {ids.size:8d} "
            f"{error:+8.2f}  {cells.median_area_um2:7.0f} ({mask_area:5.0f})  {seconds:7.1f}"
        )
        if args.overlay and t == FRAMES[-1]:
            overlay(frame, cells, masks, args.overlay)
    for part, values in errors.items():
        a = np.abs(values)
        print(f"count error, {part}: median |rel| {np.median(a):.2f}, max |rel| {a.max():.2f} ({len(a)} frames)")


if __name__ == "__main__":
    main()
