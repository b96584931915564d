"""The preprocessing contract: the one place where phototox normalises pixels for a model.

A model records its contract in its weight file (``meta["normalisation"]``); every consumer --
training, exact and dense maps, evaluation, Grad-CAM, the bioimage.io package -- asks
:func:`contract_of` and calls :func:`normalise_frame` / :func:`normalise_windows` from here.

Two contracts exist:

``box`` (models trained from now on)
    Every pixel of the *whole frame* is shifted and scaled by the mean and standard deviation of
    the ``size`` x ``size`` box centred on it (``size`` odd, default :data:`DEFAULT_BOX`). Beyond
    the frame's edge the box sees the frame mirrored, edge pixel repeated (``scipy.ndimage``'s
    ``reflect``, numpy's ``symmetric``). Statistics are float32 box means of the
    median-shifted frame (running sums, float64 accumulators: :func:`normalise_region`). A window is
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

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d

from phototox.errors import PhototoxError
from phototox.models.contract import DEFAULT_BOX, Contract

EPS = 1e-6
"""Standard deviations below this are treated as blank (the pixel is only shifted, not scaled)."""
BAND_ROWS = 512
"""Rows normalised at a time, so float32 temporaries stay bounded for any frame size."""


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map any integer positions into ``0..length-1`` by mirroring, edge repeated (any distance)."""
    period = 2 * length
    m = np.mod(index, period)
    return np.where(m < length, m, period - 1 - m)


CONDITION_LIMIT = 4.0
"""Float32 statistics are used where every box's mean lies within ``sqrt(CONDITION_LIMIT)`` of its
standard deviations from the region's median offset; ``E[x^2] - E[x]^2`` then loses at most a few
float32 roundings of ``(1 + CONDITION_LIMIT)`` times the variance. Elsewhere (a region with a step
between plateaus, a blank box) the region is normalised in float64."""


def _box_sums64(values: np.ndarray, size: int) -> np.ndarray:
    """Sums over every ``size`` x ``size`` box (valid positions) via a float64 integral image."""
    integral = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    np.cumsum(values, axis=0, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def _box_means32(values: np.ndarray, size: int, rows: int, cols: int) -> np.ndarray:
    """Means over every ``size`` x ``size`` box (valid positions) of float32 ``values``, float32.

    Running sums along each axis (``scipy.ndimage.uniform_filter1d``, a float64 accumulator per
    line), so the error does not grow with the frame as a float32 integral image's would.
    """
    r = size // 2
    out = uniform_filter1d(values, size, axis=0)[r : r + rows]
    return uniform_filter1d(out, size, axis=1)[:, r : r + cols]


def _scaled(centre: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    std = np.sqrt(var)
    std[std < EPS] = 1.0
    out = centre - mean
    out /= std
    return out.astype(np.float32, copy=False)


def normalise_region(frame: np.ndarray, y0: int, y1: int, x0: int, x1: int, size: int = DEFAULT_BOX) -> np.ndarray:
    """Box-normalised pixels ``frame[y0:y1, x0:x1]`` of the whole frame, float32.

    Reads only the region plus a ``size // 2`` halo (mirrored beyond the frame's edges), so any
    tiling of the frame reproduces :func:`box_normalise` of the whole frame. Computed in float32,
    stably: the region's median is subtracted first (a 16-bit frame's offset of ~32k would otherwise
    swamp ``E[x^2] - E[x]^2`` in float32), box means are running sums with float64 accumulators, and
    a region where some box's mean still lies far from that offset in its own standard deviations
    (:data:`CONDITION_LIMIT`) is computed in float64 instead.
    """
    h, w = frame.shape
    r = size // 2
    rows = reflect_index(np.arange(y0 - r, y1 + r), h)
    cols = reflect_index(np.arange(x0 - r, x1 + r), w)
    raw = np.asarray(frame).take(rows, axis=0).take(cols, axis=1)  # two 1-D gathers: cheaper than one 2-D index
    offset = float(np.median(frame[y0:y1:7, x0:x1:7]))  # conditioning: the result is shift-invariant
    out_h, out_w = y1 - y0, x1 - x0
    if raw.dtype.kind == "f" and raw.dtype.itemsize > 4:
        padded = (raw - offset).astype(np.float32)  # float64 input: shift before rounding to float32
    else:
        padded = raw.astype(np.float32)
        padded -= np.float32(offset)
    mean = _box_means32(padded, size, out_h, out_w)
    mean_sq = np.square(mean)
    var = _box_means32(np.square(padded), size, out_h, out_w)
    var -= mean_sq
    if np.all(mean_sq <= CONDITION_LIMIT * var):  # also false for a blank box (var 0) or not a number
        return _scaled(padded[r : r + out_h, r : r + out_w], mean, var)
    shifted = raw.astype(np.float64) - offset
    area = float(size * size)
    mean64 = _box_sums64(shifted, size) / area
    var64 = np.maximum(_box_sums64(shifted * shifted, size) / area - mean64 * mean64, 0.0)
    return _scaled(shifted[r : r + out_h, r : r + out_w], mean64, var64)


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
