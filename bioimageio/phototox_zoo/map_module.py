"""The fully convolutional map model of the zoo "map" package: any image in, P(sick) image out.

``DeadNetMap`` wraps a DeadNet(-GAP) and computes what ``phototox map --mode dense --stride 16``
computes, inside the model, so a zoo consumer needs no phototox:

1. normalisation, chosen by the weights' meta ``normalisation`` (:data:`NORMALISATIONS`):
   ``local`` (today's per-crop models): per-window normalisation folded after conv1, with the mean
   and standard deviation of the 220 px box centred on each conv1 output (``phototox.maps.dense``);
   ``box``: the frame is normalised pixel-wise by the statistics of a ``size`` px box centred on each
   pixel before the network (the box contract, under which dense equals exact);
2. the network's dense head: one window probability every 16 px, windows starting at 0, 16, ...;
3. bilinear upsampling from window centres to every pixel (edge values held), as
   ``phototox.maps.windows.upsample_grid`` does.

In the package this file's code below the marker is appended to ``phototox/model.py`` (which
provides ``build_model``, ``WINDOW``, ``NETWORK_STRIDE``, ``torch``, ``F`` and ``nn``), so the
architecture source is one file that imports nothing but torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phototox.models.architectures import NETWORK_STRIDE, WINDOW, build_model

# --- package source below (appended to model.py in the zoo package) ---

MAP_EPS = 1e-6
CONV1_SIZE = 9
NORMALISATIONS = ("local", "box")


def _box_sums_2d(values: torch.Tensor, size: int) -> torch.Tensor:
    """Sums over every ``size`` x ``size`` box of a 2-D tensor (valid positions), via an integral image."""
    integral = F.pad(values.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def _mirror_index(length: int, margin: int, device: torch.device) -> torch.Tensor:
    """Positions ``-margin .. length + margin - 1`` mirrored into the frame, edge repeated (phototox's rule)."""
    index = torch.arange(-margin, length + margin, device=device) % (2 * length)
    return torch.where(index < length, index, 2 * length - 1 - index)


def _box_normalise(frame: torch.Tensor, size: int) -> torch.Tensor:
    """Each pixel by the mean and std of the ``size`` box centred on it, the frame mirrored beyond its edges."""
    r = size // 2
    rows = _mirror_index(frame.shape[0], r, frame.device)
    cols = _mirror_index(frame.shape[1], r, frame.device)
    padded = frame.double()[rows][:, cols]
    area = float(size * size)
    mean = _box_sums_2d(padded, size) / area
    std = (_box_sums_2d(padded * padded, size) / area - mean**2).clamp_min(0).sqrt()
    std = torch.where(std < MAP_EPS, torch.ones_like(std), std)
    return ((frame.double() - mean) / std).float()


def _box_statistics(frame: torch.Tensor, size: int, out_h: int, out_w: int, offset: int) -> tuple:
    """Mean and std of the ``size`` box centred on each output position (boxes clamped inside the frame)."""
    h, w = frame.shape
    x = frame.double()
    area = float(size * size)
    mean = _box_sums_2d(x, size) / area
    var = (_box_sums_2d(x * x, size) / area - mean**2).clamp_min(0)
    half = size // 2 - offset
    qy = torch.clamp(torch.arange(out_h, device=frame.device) - half, 0, h - size)
    qx = torch.clamp(torch.arange(out_w, device=frame.device) - half, 0, w - size)
    return mean[qy][:, qx].float(), var.sqrt()[qy][:, qx].float()


def _interpolation(length: int, centres: torch.Tensor) -> torch.Tensor:
    """(length, n) linear interpolation weights from window centres to pixels, edge values held."""
    n = centres.numel()
    if n == 1:
        return torch.ones(length, 1, dtype=torch.float64)
    pos = torch.minimum(torch.arange(length, dtype=torch.float64).clamp_min(float(centres[0])), centres[-1])
    step = float(centres[1] - centres[0])  # tensors, not floats, where the size matters: traceable at any size
    left = torch.minimum(((pos - centres[0]) // step).long().clamp_min(0), torch.full_like(pos, n - 2).long())
    frac = (pos - centres[left]) / step
    weights = torch.zeros(length, n, dtype=torch.float64)
    rows = torch.arange(length)
    weights[rows, left] = 1.0 - frac
    weights[rows, left + 1] += frac
    return weights


class DeadNetMap(nn.Module):
    """(batch, 1, y, x) phase-contrast images -> (batch, 1, y, x) P(sick) at every pixel."""

    def __init__(self, arch: str = "deadnet-gap", normalisation: dict | None = None, **arch_kwargs) -> None:
        super().__init__()
        arch_kwargs.pop("softmax_output", None)
        self.net = build_model(arch, **arch_kwargs)
        self.normalisation = dict(normalisation or {"kind": "local"})
        if self.normalisation.get("kind") not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r}; known kinds: {NORMALISATIONS}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"input must be (batch, 1, y, x), got {tuple(x.shape)}")
        return torch.stack([self.sick_map(x[b, 0]) for b in range(x.shape[0])])[:, None]

    def sick_map(self, frame: torch.Tensor) -> torch.Tensor:
        """P(sick) at every pixel of one (y, x) frame."""
        h, w = frame.shape
        if h < WINDOW or w < WINDOW:
            raise ValueError(f"image {h}x{w} px is smaller than the {WINDOW} px window")
        grid = torch.softmax(self.logits(frame.float()), dim=0)[1]
        centres_y = torch.arange(grid.shape[0], dtype=torch.float64) * NETWORK_STRIDE + (WINDOW - 1) / 2.0
        centres_x = torch.arange(grid.shape[1], dtype=torch.float64) * NETWORK_STRIDE + (WINDOW - 1) / 2.0
        wy, wx = _interpolation(h, centres_y), _interpolation(w, centres_x)
        return (wy.to(grid.device) @ grid.double() @ wx.T.to(grid.device)).float().clamp(0.0, 1.0)

    def logits(self, frame: torch.Tensor) -> torch.Tensor:
        """Logit grid (2, ny, nx) of the windows at 16 px steps from the top-left corner."""
        frame = (frame - frame.mean()) / frame.std().clamp_min(MAP_EPS)  # conditioning only
        conv1 = self.net.features[0]
        if self.normalisation["kind"] == "box":
            size = int(self.normalisation.get("size", WINDOW))
            normalised = _box_normalise(frame, size)
            return self.net.dense_head(self.net.features(normalised[None, None]))[0]
        out_h, out_w = frame.shape[0] - CONV1_SIZE + 1, frame.shape[1] - CONV1_SIZE + 1
        mean, std = _box_statistics(frame, WINDOW, out_h, out_w, offset=CONV1_SIZE // 2)
        std = torch.where(std < MAP_EPS, torch.ones_like(std), std)
        raw = F.conv2d(frame[None, None], conv1.weight)
        y = (raw - mean[None, None] * conv1.weight.sum(dim=(1, 2, 3)).view(1, -1, 1, 1)) / std[None, None]
        y = y + conv1.bias.view(1, -1, 1, 1)
        return self.net.dense_head(self.net.features[1:](y))[0]
