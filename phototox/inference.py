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
from .dense import dense_sick_grid
from .devices import release, resolve_device
from .errors import ImageInputError, PhototoxError
from .images import as_grey_frames
from .models.architectures import CLASSES
from .models.base import LoadedModel
from .normalise import (
    Contract,
    contract_of,
    normalise_frame,
    normalise_lone_window,
    normalise_windows,
)
from .settings import MapSettings
from .shapes import plane_shape
from .windows import _interpolation_matrix, window_origins

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
    extra: dict = field(default_factory=dict)  # pixel size, domain and quality fields (phototox.assess)

    def summary(self) -> dict:
        """The scalar results as a JSON-friendly dict."""
        out = asdict(self)
        del out["sick_map"], out["grid"]
        out["windows"] = int(self.grid.size)
        out.update(out.pop("extra"))
        return out


@dataclass
class Predictor:
    """A loaded model on a device, with the map settings every front end shares."""

    model: LoadedModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 8
    tile_windows: int = 48
    dense_engine: str = "auto"
    """Runtime of box-contract dense tiles (:mod:`phototox.dense_engine`): same numbers, any engine."""

    @classmethod
    def create(cls, model: LoadedModel, device: str = "auto", batch_size: int | None = None) -> Predictor:
        """Move the model to ``device`` in channels-last layout (2-3x faster convolutions on CPU).

        ``batch_size`` defaults to 8 windows on CPU (larger batches fall out of cache and run
        slower, see benchmarks/README.md) and 64 on accelerators.
        """
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise PhototoxError(f"batch size (--batch-size) must be a whole number >= 1, got {batch_size!r}")
        dev = resolve_device(device)
        model.to(dev)
        return cls(model, dev, batch_size or (8 if dev.type == "cpu" else 64))

    @classmethod
    def from_spec(cls, spec: str | None = None, device: str = "auto", batch_size: int | None = None) -> Predictor:
        """The one way from a model argument (a shipped name, file, package, zoo id or URL) to a predictor.

        See :mod:`phototox.models.loader` for what ``spec`` may be; ``None`` is the shipped default.
        """
        from .models.loader import load_model

        return cls.create(load_model(spec), device, batch_size)

    @property
    def window(self) -> int:
        return self.model.window

    @property
    def contract(self) -> Contract:
        """The model's preprocessing contract (:mod:`phototox.normalise`)."""
        return contract_of(self.model)

    def normalised_frame(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` as the model sees it before windows are cut (see :func:`normalise_frame`)."""
        return normalise_frame(frame, self.contract)

    # -- windows ------------------------------------------------------------------------------
    @torch.no_grad()
    def classify_windows(self, windows: torch.Tensor | np.ndarray, normalised: bool = False) -> np.ndarray:
        """Sick probability of each (N, 220, 220) window.

        Raw windows (``normalised=False``) are lone windows without surroundings: per-crop models
        normalise them exactly as in a map, box models mirror them as their own frame (an
        approximation, see :mod:`phototox.normalise`). Pass ``normalised=True`` for windows cut
        from :meth:`normalised_frame`.
        """
        windows = torch.as_tensor(np.asarray(windows) if not torch.is_tensor(windows) else windows)
        if windows.ndim != 3 or tuple(windows.shape[1:]) != (self.window, self.window):
            raise ImageInputError(f"windows must be (N, {self.window}, {self.window}), got {tuple(windows.shape)}")
        contract = self.contract
        if not normalised and contract.kind == "box":
            windows = torch.from_numpy(np.stack([normalise_lone_window(w, contract) for w in windows.numpy()]))
            normalised = True
        out = []
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start : start + self.batch_size].to(self.device)
            batch = batch.float() if normalised else normalise_windows(batch, contract)
            out.append(self.model.sick_probability(batch[:, None]).cpu().numpy())
        return check_finite(np.concatenate(out), f"model {self.model.source}") if out else np.zeros(0, np.float32)

    @torch.no_grad()
    def exact_grid(self, frame: np.ndarray, stride: int, progress=None) -> np.ndarray:
        """Window grid by cutting every window of the normalised frame and classifying in batches.

        ``progress`` (optional) is called with the number of windows done after each batch.
        """
        ys = window_origins(frame.shape[0], self.window, stride)
        xs = window_origins(frame.shape[1], self.window, stride)
        contract = self.contract
        tensor = torch.from_numpy(self.normalised_frame(frame)).to(self.device)
        positions = [(y, x) for y in ys for x in xs]
        probs = np.empty(len(positions), dtype=np.float32)
        w = self.window
        for start in range(0, len(positions), self.batch_size):
            chunk = positions[start : start + self.batch_size]
            batch = torch.stack([tensor[y : y + w, x : x + w] for y, x in chunk])
            probs[start : start + len(chunk)] = (
                self.model.sick_probability(normalise_windows(batch, contract)[:, None]).cpu().numpy()
            )
            if progress is not None:
                progress(len(chunk))
        return probs.reshape(len(ys), len(xs))

    def dense_grid(self, frame: np.ndarray, stride: int, normalisation: str = "local") -> np.ndarray:
        """Window grid from one fully convolutional pass (shift-and-stitch below 16 px).

        Under the ``box`` contract this equals :meth:`exact_grid` to float precision for
        ``deadnet-gap`` models; ``normalisation`` ("local"/"global") only chooses the
        approximation used for per-crop models.
        """
        if not self.model.backend.supports_dense:
            raise PhototoxError(f"model {self.model.source} has no dense form; use --mode exact")
        contract = self.contract
        box_size = contract.size if contract.kind == "box" else None
        if box_size is not None:
            normalisation = "box"
        # the raw frame is normalised tile by tile inside the dense pass: memory stays bounded
        return dense_sick_grid(
            self.model.module,
            np.asarray(frame),
            stride,
            normalisation,  # tiles cast to float32
            self.tile_windows,
            box_size=box_size,
            device=self.device,
            engine=self.dense_engine,
        )

    # -- frames -------------------------------------------------------------------------------
    def check_settings(self, stride: int, mode: str, threshold: float, normalisation: str = "local") -> None:
        """Validate map settings before any work is done (:meth:`phototox.settings.MapSettings.validate`)."""
        MapSettings(stride=stride, mode=mode, threshold=threshold, normalisation=normalisation).validate()

    def analyse_frame(
        self,
        frame: np.ndarray,
        stride: int = DEFAULT_STRIDE,
        mode: str = DEFAULT_MODE,
        threshold: float = DEFAULT_THRESHOLD,
        normalisation: str = "local",
        mask: np.ndarray | None = None,
        window_progress=None,
    ) -> FrameResult:
        """Sickness map and summary numbers of one validated 2-D frame (numbers over ``mask`` if given).

        ``window_progress`` (exact mode) is called with the number of windows done after each batch.
        """
        self.check_settings(stride, mode, threshold, normalisation)
        if mask is not None and mask.shape != frame.shape:
            raise ImageInputError(f"mask of shape {mask.shape} does not match the image shape {frame.shape}")
        grid = (
            self.exact_grid(frame, stride, window_progress)
            if mode == "exact"
            else self.dense_grid(frame, stride, normalisation)
        )
        check_finite(grid, f"model {self.model.source}")
        sick_map = upsample_map(grid, plane_shape(frame), self.window, stride)
        return FrameResult(sick_map, grid, *summarise_map(sick_map, threshold, mask), threshold, int(stride), mode)

    def analyse(
        self,
        image: np.ndarray,
        source: str = "image",
        stride: int = DEFAULT_STRIDE,
        mode: str = DEFAULT_MODE,
        threshold: float = DEFAULT_THRESHOLD,
        normalisation: str = "local",
        colour: str = "refuse",
        progress=None,
        window_progress=None,
    ) -> list[FrameResult]:
        """Validate an image or stack (any accepted layout) and analyse every frame.

        ``progress`` is called once per frame, ``window_progress`` per batch of windows (exact mode).
        """
        self.check_settings(stride, mode, threshold, normalisation)
        frames = as_grey_frames(image, source, colour=colour, min_size=self.window)
        results = []
        for index, frame in enumerate(frames):
            try:
                results.append(
                    self.analyse_frame(frame, stride, mode, threshold, normalisation, window_progress=window_progress)
                )
            except NotANumberError as exc:
                where = f"{source}{f' frame {index}' if len(frames) > 1 else ''}"
                raise NotANumberError(f"{where}: {exc}") from None
            if progress is not None:
                progress(1)
        return results

    def window_count(self, shape: tuple[int, ...], stride: int) -> int:
        """Number of windows of one (..., H, W) frame at ``stride``."""
        return len(window_origins(shape[-2], self.window, stride)) * len(window_origins(shape[-1], self.window, stride))

    def release(self) -> None:
        """Free accelerator memory held by cached allocations."""
        release(self.device)


class NotANumberError(PhototoxError):
    """The model produced NaN or infinite probabilities: an error, never a class."""


def upsample_map(
    grid: np.ndarray, shape: tuple[int, int], window: int, stride: int, band_rows: int = 1024
) -> np.ndarray:
    """:func:`~phototox.windows.upsample_grid` clipped to [0, 1], in bands of rows.

    The result is the only (H, W) array: float64 temporaries stay a band high for any frame.
    """
    ys = np.arange(grid.shape[0]) * stride + (window - 1) / 2.0
    xs = np.arange(grid.shape[1]) * stride + (window - 1) / 2.0
    wy = _interpolation_matrix(shape[0], ys)
    across = grid.astype(np.float64) @ _interpolation_matrix(shape[1], xs).T  # (ny, W)
    out = np.empty(shape, dtype=np.float32)
    for y0 in range(0, shape[0], band_rows):
        band = out[y0 : y0 + band_rows]
        np.clip(wy[y0 : y0 + band_rows] @ across, 0.0, 1.0, out=band, casting="same_kind")
    return out


def check_finite(probabilities: np.ndarray, what: str) -> np.ndarray:
    """Return ``probabilities`` or raise :class:`NotANumberError` if any is NaN or infinite."""
    bad = int(np.count_nonzero(~np.isfinite(probabilities)))
    if bad:
        raise NotANumberError(
            f"{what} gave {bad} of {probabilities.size} window probabilities as NaN or "
            "infinite (no class can be given; the image or the model is unusable)"
        )
    return probabilities


def summarise_map(
    sick_map: np.ndarray, threshold: float, mask: np.ndarray | None = None
) -> tuple[float, float, str, float]:
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
