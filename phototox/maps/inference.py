"""The one inference path, under the front door (:class:`phototox.trust.assess.Assessor`): model + preprocessing + window/dense map.

``Predictor.analyse_frame(frame, settings)`` turns one frame, already at the model's pixel size,
into its sickness map (bilinear upsampling of the window grid), its mean, the fraction of the area
above the threshold, the image-level class and its confidence. Front ends do not call it
directly: they call :class:`phototox.trust.assess.Assessor`, which adds the pixel size, domain, quality
and control verdicts around this one path (the front door). :class:`MapSettings` are validated
once, when they are made; nothing here validates them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from phototox.errors import ImageInputError, PhototoxError
from phototox.maps.dense import dense_sick_grid
from phototox.maps.devices import release, resolve_device
from phototox.maps.normalise import (
    Contract,
    contract_of,
    normalise_frame,
    normalise_lone_window,
    normalise_windows,
)
from phototox.maps.settings import DEFAULT_SETTINGS, MapSettings
from phototox.maps.windows import upsample_map, window_origins
from phototox.models.architectures import CLASSES
from phototox.models.base import LoadedModel
from phototox.schema import Trust, summary_of
from phototox.shapes import plane_shape


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
    engine: str = "torch"
    trust: Trust = field(default_factory=Trust)  # pixel size, domain, quality, controls (phototox.trust.assess)
    novelty_map: np.ndarray | None = None
    """'unlike your controls' map (window novelty / the reference's line; > 1 beyond it), with a reference"""

    def summary(self) -> dict:
        """The scalar results under their :mod:`phototox.schema` column names."""
        return summary_of(self, self.grid.size)


@dataclass
class Predictor:
    """A loaded model on a device: window grids and maps of frames already at the model's pixel size."""

    model: LoadedModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 8
    tile_windows: int = 48
    dense_engine: str = "auto"
    """Runtime of box-contract dense tiles (:mod:`phototox.maps.dense_engine`): same numbers, any engine."""

    @classmethod
    def create(
        cls, model: LoadedModel, device: str = "auto", batch_size: int | None = None, engine: str = "auto"
    ) -> Predictor:
        """Move the model to ``device`` in channels-last layout (2-3x faster convolutions on CPU).

        ``batch_size`` defaults to 8 windows on CPU (larger batches fall out of cache and run
        slower, see benchmarks/README.md) and 64 on accelerators. ``engine`` runs dense tiles
        (:data:`phototox.maps.dense_engine.ENGINES`); every result names the runtime that ran.
        """
        from phototox.maps.dense_engine import check_engine

        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise PhototoxError(f"batch size (--batch-size) must be a whole number >= 1, got {batch_size!r}")
        engine = check_engine(engine)
        dev = resolve_device(device)
        model.to(dev)
        return cls(model, dev, batch_size or (8 if dev.type == "cpu" else 64), dense_engine=engine)

    @classmethod
    def from_spec(
        cls, spec: str | None = None, device: str = "auto", batch_size: int | None = None, engine: str = "auto"
    ) -> Predictor:
        """The one way from a model argument (a shipped name, file, package, zoo id or URL) to a predictor.

        See :mod:`phototox.models.loader` for what ``spec`` may be; ``None`` is the shipped default.
        """
        from phototox.models.loader import load_model

        return cls.create(load_model(spec), device, batch_size, engine)

    @property
    def window(self) -> int:
        return self.model.window

    @property
    def contract(self) -> Contract:
        """The model's preprocessing contract (:mod:`phototox.maps.normalise`)."""
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
        approximation, see :mod:`phototox.maps.normalise`). Pass ``normalised=True`` for windows cut
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

    def dense_grid(
        self,
        frame: np.ndarray,
        stride: int,
        normalisation: str = "local",
        on_engine: Callable[[str], None] | None = None,
    ) -> np.ndarray:
        """Window grid from one fully convolutional pass (shift-and-stitch below 16 px).

        Under the ``box`` contract this equals :meth:`exact_grid` to float precision for
        ``deadnet-gap`` models; ``normalisation`` ("local"/"global") only chooses the
        approximation used for per-crop models. ``on_engine`` hears which runtime ran the tiles.
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
            on_engine=on_engine,
        )

    # -- frames -------------------------------------------------------------------------------
    def analyse_frame(
        self,
        frame: np.ndarray,
        settings: MapSettings = DEFAULT_SETTINGS,
        *,
        mask: np.ndarray | None = None,
        window_progress: Callable[[int], None] | None = None,
    ) -> FrameResult:
        """Sickness map and summary numbers of one validated 2-D frame (numbers over ``mask`` if given).

        ``frame`` is at the model's pixel size; the map is at the frame's size.
        ``window_progress`` (exact mode) is called with the number of windows done after each batch.
        """
        if not isinstance(settings, MapSettings):
            raise TypeError(
                f"settings must be a MapSettings, got {type(settings).__name__} (stride, mode moved into it)"
            )
        if mask is not None and mask.shape != frame.shape:
            raise ImageInputError(f"mask of shape {mask.shape} does not match the image shape {frame.shape}")
        engine = ["torch"]
        if settings.mode == "exact":
            grid = self.exact_grid(frame, settings.stride, window_progress)
        else:
            grid = self.dense_grid(frame, settings.stride, settings.normalisation, on_engine=engine.append)
        return self.result_from_grid(grid, plane_shape(frame), settings, mask, engine[-1])

    def result_from_grid(
        self,
        grid: np.ndarray,
        shape: tuple[int, int],
        settings: MapSettings,
        mask: np.ndarray | None = None,
        engine: str = "torch",
    ) -> FrameResult:
        """The frame's result from its window grid at ``settings.stride`` (map, summary numbers)."""
        check_finite(grid, f"model {self.model.source}")
        sick_map = upsample_map(grid, shape, self.window, settings.stride)
        return FrameResult(
            sick_map,
            grid,
            *summarise_map(sick_map, settings.threshold, mask),
            settings.threshold,
            int(settings.stride),
            settings.mode,
            engine,
        )

    def window_count(self, shape: tuple[int, ...], stride: int) -> int:
        """Number of windows of one (..., H, W) frame at ``stride``."""
        return len(window_origins(shape[-2], self.window, stride)) * len(window_origins(shape[-1], self.window, stride))

    def release(self) -> None:
        """Free accelerator memory held by cached allocations."""
        release(self.device)


class NotANumberError(PhototoxError):
    """The model produced NaN or infinite probabilities: an error, never a class."""


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
