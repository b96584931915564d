"""The preprocessing contract: the one place where phototox normalises pixels for a model.

A model records its contract in its weight file (``meta["normalisation"]``); every consumer --
training, exact and dense maps, evaluation, Grad-CAM, the bioimage.io package -- asks
:func:`contract_of` and calls :func:`normalise_frame` / :func:`normalise_windows` from here.

Two contracts exist:

``box`` (models trained from now on)
    Every pixel of the *whole frame* is shifted and scaled by the mean and standard deviation of
    the ``size`` x ``size`` box centred on it (``size`` odd, default :data:`DEFAULT_BOX`). Beyond
    the frame's edge the box sees the frame mirrored, edge pixel repeated (``scipy.ndimage``'s
    ``reflect``, numpy's ``symmetric``). Statistics use integral images in float64. A window is
    then simply a crop of the normalised frame, so exact mode (windows) and dense mode (one
    convolutional pass) see the same numbers, and with the interior-pooled ``deadnet-gap`` head
    they agree to float precision whatever the weights. Because each pixel depends only on its
    box, a tile normalised with a halo of ``size // 2`` px (mirrored only at the frame's true
    edges) equals the same part of the whole frame: tiled consumers (Fiji, CellProfiler,
    huge frames) reproduce it exactly (:func:`normalise_region`).

``crop`` (the paper's; the shipped v2 models, and any weight file without the field)
    Each 220 px window is shifted to zero mean and unit variance on its own (Richmond et al.,
    2017, arXiv:1701.06109). A pixel lies in many windows, so this has no dense form: dense maps
    of such models are an approximation (see :mod:`phototox.maps.dense`).

Where exactness cannot hold even under ``box``: the paper's fully connected ``deadnet`` head sees
the crop's zero padding, so its dense map differs from its windows near each window's border; and
a lone 220 px crop without its surroundings (the bioimage.io crop package) has no context, so the
mirrored box statistics there only approximate those of the full frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from phototox.errors import PhototoxError

EPS = 1e-6
"""Standard deviations below this are treated as blank (the pixel is only shifted, not scaled)."""
DEFAULT_BOX = 221
"""Default side of the normalisation box, px: the 220 px window's scale, odd so it is centred."""
MAX_BOX = 1001
"""Largest box side accepted, px: a box sizes the halo every band and tile allocates
(``size // 2`` px each side), so a model's metadata may not make it unbounded."""
KINDS = ("box", "crop")
EDGE = "reflect"
BAND_ROWS = 512
"""Rows normalised at a time, so float64 temporaries stay bounded for any frame size."""


@dataclass(frozen=True)
class Contract:
    """How a model's input pixels are normalised (saved in its weight file's metadata)."""

    kind: str = "box"
    size: int = DEFAULT_BOX
    edge: str = EDGE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PhototoxError(f"unknown normalisation {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "box":
            size = self.size
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size % 2 == 0:
                raise PhototoxError(f"normalisation box size must be an odd whole number, got {str(size)[:40]!r}")
            if not 3 <= size <= MAX_BOX:
                raise PhototoxError(f"normalisation box size must lie in 3..{MAX_BOX} px, got {size}")
            if self.edge != EDGE:
                raise PhototoxError(f"normalisation edge rule {self.edge!r} is not supported (only {EDGE!r})")

    @property
    def halo(self) -> int:
        """Pixels of context a tile needs on each side to be normalised as in the whole frame."""
        return self.size // 2 if self.kind == "box" else 0

    def to_meta(self) -> dict:
        """JSON form stored as ``meta["normalisation"]``."""
        return asdict(self) if self.kind == "box" else {"kind": "crop"}

    def describe(self) -> str:
        if self.kind == "crop":
            return "per-window zero mean, unit variance (paper)"
        return f"{self.size} px box centred on each pixel, mirrored edges"


PER_CROP = Contract("crop")


def contract_from_meta(value: object) -> Contract:
    """Parse ``meta["normalisation"]``; a missing field means the paper's per-crop contract."""
    if value is None:
        return PER_CROP
    if not isinstance(value, dict):
        raise PhototoxError(f"model metadata 'normalisation' must be a mapping, got {type(value).__name__}")
    kind = value.get("kind", "crop")
    if kind == "crop":
        return PER_CROP
    return Contract(str(kind)[:40], value.get("size", DEFAULT_BOX), str(value.get("edge", EDGE))[:40])


def contract_of(model) -> Contract:
    """The contract of a :class:`phototox.models.base.LoadedModel` (from its metadata)."""
    return contract_from_meta((getattr(model, "meta", None) or {}).get("normalisation"))


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map any integer positions into ``0..length-1`` by mirroring, edge repeated (any distance)."""
    period = 2 * length
    m = np.mod(index, period)
    return np.where(m < length, m, period - 1 - m)


def _box_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sums over every ``size`` x ``size`` box (valid positions) via an integral image."""
    integral = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    np.cumsum(values, axis=0, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def normalise_region(frame: np.ndarray, y0: int, y1: int, x0: int, x1: int, size: int = DEFAULT_BOX) -> np.ndarray:
    """Box-normalised pixels ``frame[y0:y1, x0:x1]`` of the whole frame, float32.

    Reads only the region plus a ``size // 2`` halo (mirrored beyond the frame's edges), so any
    tiling of the frame reproduces :func:`box_normalise` of the whole frame.
    """
    h, w = frame.shape
    r = size // 2
    rows = reflect_index(np.arange(y0 - r, y1 + r), h)
    cols = reflect_index(np.arange(x0 - r, x1 + r), w)
    padded = np.asarray(frame)[rows[:, None], cols[None, :]].astype(np.float64)
    padded -= float(np.median(frame[y0:y1:7, x0:x1:7]))  # conditioning: the result is shift-invariant
    area = float(size * size)
    mean = _box_sums(padded, size) / area
    var = np.maximum(_box_sums(padded * padded, size) / area - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std < EPS] = 1.0
    centre = padded[r : r + (y1 - y0), r : r + (x1 - x0)]
    return ((centre - mean) / std).astype(np.float32)


def box_normalise(frame: np.ndarray, size: int = DEFAULT_BOX, band_rows: int = BAND_ROWS) -> np.ndarray:
    """Box-normalise a whole (H, W) frame (float32 out), in bands of rows to bound memory."""
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise PhototoxError(f"normalisation needs a 2-D frame, got shape {frame.shape}")
    out = np.empty(frame.shape, dtype=np.float32)
    for y0 in range(0, frame.shape[0], band_rows):
        y1 = min(y0 + band_rows, frame.shape[0])
        out[y0:y1] = normalise_region(frame, y0, y1, 0, frame.shape[1], size)
    return out


def normalise_crops(crops: torch.Tensor) -> torch.Tensor:
    """The paper's per-crop contract: zero mean, unit variance over the last two axes (any leading shape)."""
    crops = crops.float()
    mean = crops.mean(dim=(-2, -1), keepdim=True)
    std = crops.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (crops - mean) / torch.where(std < EPS, torch.ones_like(std), std)


def normalise_frame(frame: np.ndarray, contract: Contract) -> np.ndarray:
    """The frame as a model with ``contract`` sees it before cutting windows (float32).

    Under ``box`` this is the normalised frame; under ``crop`` it is the raw frame (each window
    is normalised on its own by :func:`normalise_windows`).
    """
    if contract.kind == "box":
        return box_normalise(frame, contract.size)
    return np.ascontiguousarray(frame, dtype=np.float32)


def normalise_windows(windows: torch.Tensor, contract: Contract) -> torch.Tensor:
    """Windows cut from :func:`normalise_frame`'s output, ready for the network (float32)."""
    return normalise_crops(windows) if contract.kind == "crop" else windows.float()


def normalise_lone_window(window: np.ndarray, contract: Contract) -> np.ndarray:
    """A window without its surroundings (e.g. the bioimage.io crop package): best available.

    Under ``box`` the window is normalised as if it were the whole frame (mirrored context), which
    only approximates what the same window receives inside a larger frame.
    """
    if contract.kind == "box":
        return box_normalise(window, contract.size)
    return normalise_crops(torch.from_numpy(np.asarray(window, dtype=np.float32))).numpy()
