"""The one inference path every front end calls: model + preprocessing + window/dense map.

``Predictor.analyse(frames)`` turns a (T, H, W) stack into per-frame results: the sickness map at
the image's size (bilinear upsampling of the window grid), its mean, the fraction of the area
above the threshold, the image-level class and its confidence. The CLI, CellProfiler module,
Fiji bridge, HTTP server and bioimage.io checks all go through here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from .defaults import DEFAULT_STRIDE
from .dense import NORMALISATIONS, check_dense_stride, dense_sick_grid
from .devices import release, resolve_device
from .errors import ImageInputError, PhototoxError
from .images import as_grey_frames
from .model import CLASSES, WINDOW
from .preprocess import normalise_crops
from .weights import LoadedModel
from .windows import upsample_grid, window_origins

MODES = ("exact", "dense")
DEFAULT_MODE = "dense"
DEFAULT_THRESHOLD = 0.5


@dataclass
class FrameResult:
    """What phototox says about one frame."""

    sick_map: np.ndarray  # (H, W) float32 in [0, 1]
    grid: np.ndarray  # (ny, nx) window probabilities
    mean_sick_probability: float
    sick_area_fraction: float
    label: str
    confidence: float
    threshold: float
    stride: int
    mode: str

    def summary(self) -> dict:
        """The scalar results as a JSON-friendly dict."""
        out = asdict(self)
        del out["sick_map"], out["grid"]
        out["windows"] = int(self.grid.size)
        return out


@dataclass
class Predictor:
    """A loaded model on a device, with the map settings every front end shares."""

    model: LoadedModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 8
    tile_windows: int = 48

    @classmethod
    def create(cls, model: LoadedModel, device: str = "auto", batch_size: int | None = None) -> "Predictor":
        """Move the model to ``device`` in channels-last layout (2-3x faster convolutions on CPU).

        ``batch_size`` defaults to 8 windows on CPU (larger batches fall out of cache and run
        slower, see benchmarks/README.md) and 64 on accelerators.
        """
        dev = resolve_device(device)
        model.module.to(dev).eval()
        model.module.to(memory_format=torch.channels_last)
        return cls(model, dev, batch_size or (8 if dev.type == "cpu" else 64))

    @property
    def window(self) -> int:
        return self.model.window

    # -- windows ------------------------------------------------------------------------------
    @torch.no_grad()
    def classify_windows(self, windows: torch.Tensor | np.ndarray) -> np.ndarray:
        """Sick probability of each raw (N, 220, 220) window (normalised here, per crop)."""
        windows = torch.as_tensor(np.asarray(windows) if not torch.is_tensor(windows) else windows)
        if windows.ndim != 3 or tuple(windows.shape[1:]) != (self.window, self.window):
            raise ImageInputError(f"windows must be (N, {self.window}, {self.window}), got {tuple(windows.shape)}")
        out = []
        for start in range(0, len(windows), self.batch_size):
            batch = normalise_crops(windows[start:start + self.batch_size].to(self.device))
            out.append(self.model.sick_probability(self.model.module(batch[:, None])).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    @torch.no_grad()
    def exact_grid(self, frame: np.ndarray, stride: int) -> np.ndarray:
        """Window grid by cropping every window and classifying in batches (memory-bounded)."""
        ys = window_origins(frame.shape[0], self.window, stride)
        xs = window_origins(frame.shape[1], self.window, stride)
        tensor = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).to(self.device)
        positions = [(y, x) for y in ys for x in xs]
        probs = np.empty(len(positions), dtype=np.float32)
        w = self.window
        for start in range(0, len(positions), self.batch_size):
            chunk = positions[start:start + self.batch_size]
            batch = torch.stack([tensor[y:y + w, x:x + w] for y, x in chunk])
            output = self.model.module(normalise_crops(batch)[:, None])
            probs[start:start + len(chunk)] = self.model.sick_probability(output).cpu().numpy()
        return probs.reshape(len(ys), len(xs))

    def dense_grid(self, frame: np.ndarray, stride: int, normalisation: str = "local") -> np.ndarray:
        """Window grid from one fully convolutional pass (shift-and-stitch below 16 px)."""
        if not hasattr(self.model.module, "dense_head"):
            raise PhototoxError(f"model {self.model.source} has no dense form; use --mode exact")
        tensor = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).to(self.device)
        return dense_sick_grid(self.model.module, tensor, stride, normalisation, self.tile_windows)

    # -- frames -------------------------------------------------------------------------------
    def check_settings(self, stride: int, mode: str, threshold: float, normalisation: str = "local") -> None:
        """Validate map settings before any work is done."""
        if mode not in MODES:
            raise PhototoxError(f"unknown map mode {mode!r}; use one of {', '.join(MODES)}")
        if not isinstance(stride, (int, np.integer)) or stride < 1:
            raise PhototoxError(f"stride must be a positive whole number of pixels, got {stride!r}")
        if mode == "dense":
            check_dense_stride(int(stride))
            if normalisation not in NORMALISATIONS:
                raise PhototoxError(f"unknown dense normalisation {normalisation!r}; use one of {NORMALISATIONS}")
        if not 0.0 < threshold < 1.0:
            raise PhototoxError(f"threshold must lie strictly between 0 and 1, got {threshold}")

    def analyse_frame(self, frame: np.ndarray, stride: int = DEFAULT_STRIDE, mode: str = DEFAULT_MODE,
                      threshold: float = DEFAULT_THRESHOLD, normalisation: str = "local",
                      mask: np.ndarray | None = None) -> FrameResult:
        """Sickness map and summary numbers of one validated 2-D frame (numbers over ``mask`` if given)."""
        self.check_settings(stride, mode, threshold, normalisation)
        if mask is not None and mask.shape != frame.shape:
            raise ImageInputError(f"mask of shape {mask.shape} does not match the image shape {frame.shape}")
        grid = self.exact_grid(frame, stride) if mode == "exact" else self.dense_grid(frame, stride, normalisation)
        sick_map = np.clip(upsample_grid(grid, frame.shape, self.window, stride), 0.0, 1.0)
        return FrameResult(sick_map, grid, *summarise_map(sick_map, threshold, mask), threshold, int(stride), mode)

    def analyse(self, image: np.ndarray, source: str = "image", stride: int = DEFAULT_STRIDE,
                mode: str = DEFAULT_MODE, threshold: float = DEFAULT_THRESHOLD, normalisation: str = "local",
                colour: str = "refuse", progress=None) -> list[FrameResult]:
        """Validate an image or stack (any accepted layout) and analyse every frame."""
        self.check_settings(stride, mode, threshold, normalisation)
        frames = as_grey_frames(image, source, colour=colour, min_size=self.window)
        results = []
        for frame in frames:
            results.append(self.analyse_frame(frame, stride, mode, threshold, normalisation))
            if progress is not None:
                progress(1)
        return results

    def release(self) -> None:
        """Free accelerator memory held by cached allocations."""
        release(self.device)


def summarise_map(sick_map: np.ndarray, threshold: float,
                  mask: np.ndarray | None = None) -> tuple[float, float, str, float]:
    """Mean P(sick), fraction of pixels at or above ``threshold``, class and its confidence.

    Over the pixels where ``mask`` is true when one is given; NaN numbers (class healthy) when it
    selects no pixel.
    """
    values = sick_map[mask.astype(bool)] if mask is not None else sick_map.ravel()
    if values.size == 0:
        return float("nan"), float("nan"), CLASSES[0], float("nan")
    mean = float(values.mean())
    label = CLASSES[1] if mean >= threshold else CLASSES[0]
    return mean, float((values >= threshold).mean()), label, mean if label == CLASSES[1] else 1.0 - mean


def object_means(sick_map: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean sick probability of the pixels of each labelled object (labels 1..N) and the label ids."""
    if sick_map.shape != labels.shape:
        raise ImageInputError(f"objects of shape {labels.shape} do not match the image shape {sick_map.shape}")
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros(0, np.float64), ids
    return np.asarray(ndimage.mean(sick_map, labels=labels, index=ids), dtype=np.float64), ids
