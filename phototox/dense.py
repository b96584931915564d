"""Dense (fully convolutional) sickness maps: one pass over a frame instead of one per window.

The classifier's head is recast as convolutions (``dense_head``), so the trunk runs once over the
whole frame and yields a logit pair every 16 px (the network stride). Finer strides that divide
16 use shift-and-stitch: the frame is run again from each sub-stride offset and the grids
interleaved. Coarser multiples of 16 subsample the 16 px grid.

Under the ``box`` preprocessing contract (:mod:`phototox.normalise`) the frame is normalised once
and the trunk simply runs over it: with the interior-pooled ``deadnet-gap`` head each output then
equals the window's exact output to float precision (``normalisation="box"`` here).

For models trained with the paper's per-crop contract (the shipped v2 models) there is no exact
dense equivalent, because a pixel lies in many windows, and the map is an approximation. Since
the first convolution is linear, normalising a window ``(x - m) / s`` before conv1 equals
``(conv1(x) - m * sum(w)) / s + b`` after it; ``local`` normalisation applies that with the mean
and standard deviation of the 220 px box centred on each conv1 output (computed with integral
images in float64), ``global`` uses the whole frame's statistics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PhototoxError
from .models.architectures import NETWORK_STRIDE, WINDOW
from .normalise import EPS
from .settings import NORMALISATIONS, check_dense_stride

"""Dense approximations of the per-crop contract (``box`` frames need none)."""
CONV1_KERNEL = 9




def _box_sums(values: torch.Tensor, size: int) -> torch.Tensor:
    """Sums over every ``size`` x ``size`` box (valid positions) via an integral image."""
    integral = F.pad(values.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
            + integral[:-size, :-size])


def conv1_statistics(frame: torch.Tensor, normalisation: str, window: int = WINDOW) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std maps, one value per conv1 output position (shape (H-8, W-8))."""
    h, w = frame.shape
    out_h, out_w = h - CONV1_KERNEL + 1, w - CONV1_KERNEL + 1
    if normalisation == "global":
        std = frame.std(unbiased=False)
        mean = frame.mean()
        return mean.expand(out_h, out_w), std.expand(out_h, out_w)
    if normalisation != "local":
        raise PhototoxError(f"unknown dense normalisation {normalisation!r}; use one of {NORMALISATIONS}")
    x = frame.double()
    area = float(window * window)
    box_mean = _box_sums(x, window) / area
    box_var = (_box_sums(x * x, window) / area - box_mean**2).clamp_min(0)
    half = window // 2 - CONV1_KERNEL // 2  # conv1 output p is centred on pixel p + 4
    qy = torch.clamp(torch.arange(out_h, device=frame.device) - half, 0, h - window)
    qx = torch.clamp(torch.arange(out_w, device=frame.device) - half, 0, w - window)
    mean = box_mean[qy][:, qx]
    std = box_var.sqrt()[qy][:, qx]
    return mean.float(), std.float()


def dense_logits(module: nn.Module, frame: torch.Tensor, mean: torch.Tensor | None,
                 std: torch.Tensor | None) -> torch.Tensor:
    """Logit grid (2, ny, nx) at 16 px steps for a frame region and its conv1 statistics.

    With ``mean``/``std`` None the region is already normalised (``box`` contract).
    """
    if mean is None or std is None:
        return module.dense_head(module.features(frame[None, None]))[0]
    conv1 = module.features[0]
    raw = F.conv2d(frame[None, None], conv1.weight)
    std = torch.where(std < EPS, torch.ones_like(std), std)
    y = (raw - mean[None, None] * conv1.weight.sum(dim=(1, 2, 3)).view(1, -1, 1, 1)) / std[None, None]
    y = y + conv1.bias.view(1, -1, 1, 1)
    return module.dense_head(module.features[1:](y))[0]


@torch.no_grad()
def dense_sick_grid(module: nn.Module, frame: torch.Tensor, stride: int = NETWORK_STRIDE,
                    normalisation: str = "local", tile_windows: int = 48) -> np.ndarray:
    """Sick-probability grid matching :func:`phototox.windows.window_origins` for ``stride``.

    ``frame`` is a float (H, W) tensor on the model's device: the raw frame for the per-crop
    approximations (``normalisation`` "local" or "global"), or the frame already normalised under
    the ``box`` contract (``normalisation="box"``). Work is done in tiles of at most
    ``tile_windows`` x ``tile_windows`` windows, so memory is bounded for any frame size.
    """
    check_dense_stride(stride)
    h, w = frame.shape
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    if normalisation != "box":
        frame = (frame - frame.mean()) / frame.std().clamp_min(EPS)  # conditioning only; normalisation is invariant
        mean, std = conv1_statistics(frame, normalisation)
    ny, nx = (h - WINDOW) // stride + 1, (w - WINDOW) // stride + 1
    if stride % NETWORK_STRIDE == 0:
        base = _dense_offset(module, frame, mean, std, 0, 0, tile_windows)
        step = stride // NETWORK_STRIDE
        return base[::step, ::step][:ny, :nx]
    shifts = NETWORK_STRIDE // stride
    grid = np.empty((ny, nx), dtype=np.float32)
    for sy in range(shifts):
        for sx in range(shifts):
            oy, ox = sy * stride, sx * stride
            if oy > h - WINDOW or ox > w - WINDOW:
                continue
            part = _dense_offset(module, frame, mean, std, oy, ox, tile_windows)
            target = grid[sy::shifts, sx::shifts]
            target[...] = part[:target.shape[0], :target.shape[1]]
    return grid


def _dense_offset(module: nn.Module, frame: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None,
                  oy: int, ox: int, tile_windows: int) -> np.ndarray:
    """Probability grid at 16 px steps for windows starting at (oy + 16i, ox + 16j), tiled."""
    h, w = frame.shape
    ny = (h - oy - WINDOW) // NETWORK_STRIDE + 1
    nx = (w - ox - WINDOW) // NETWORK_STRIDE + 1
    out = np.empty((ny, nx), dtype=np.float32)
    for i0 in range(0, ny, tile_windows):
        i1 = min(i0 + tile_windows, ny)
        y0, y1 = oy + NETWORK_STRIDE * i0, oy + NETWORK_STRIDE * (i1 - 1) + WINDOW
        for j0 in range(0, nx, tile_windows):
            j1 = min(j0 + tile_windows, nx)
            x0, x1 = ox + NETWORK_STRIDE * j0, ox + NETWORK_STRIDE * (j1 - 1) + WINDOW
            c1y, c1x = slice(y0, y1 - CONV1_KERNEL + 1), slice(x0, x1 - CONV1_KERNEL + 1)
            stats = (None, None) if mean is None or std is None else (mean[c1y, c1x], std[c1y, c1x])
            logits = dense_logits(module, frame[y0:y1, x0:x1], *stats)
            probs = torch.softmax(logits.float(), dim=0)[1]
            out[i0:i1, j0:j1] = probs[:i1 - i0, :j1 - j0].cpu().numpy()
    return out
