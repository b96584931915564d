"""The domain check's features from the dense pass itself: one pass for the map and the check.

The two-pass check (:func:`phototox.trust.domain_windows.domain_features`, feature :data:`phototox.trust.domain.FEATURE`)
cuts its windows again, box-normalises the whole frame a second time and runs them through the
eager trunk, whose zero padding at each window's edge also enters the conv3_2 statistics. The
one-pass feature (:data:`FEATURE`) is the same vector on windows the dense pass computes anyway:

- windows on the 16 px network grid (the centred non-overlapping grid of
  :func:`phototox.trust.domain_windows.window_grid`, each origin moved to the nearest multiple of 16 px);
- conv3_2 mean and standard deviation over each window's **interior** 45 x 45 cells, those no zero
  padding reaches (the outer 4 cells of the 53 x 53 map see the window's edge), so a window's
  statistics are the same whether it is run alone or inside a tile;
- the 128 conv4 channels averaged over the cells the head pools (unchanged);
- fine detail of the same box-normalised window pixels (unchanged statistic).

:func:`window_features` computes the same features window by window (two passes: the reference,
used to fit the statistics and wherever no dense pass runs: exact mode, per-crop models);
:class:`DomainTaps` collects them from the dense tiles. ``tests/test_domain_pass.py`` checks that
both agree. Models whose ``meta["domain"]`` was fitted on the two-pass feature keep the two-pass
check.
"""

from __future__ import annotations

import numpy as np
import torch

from phototox.errors import PhototoxError
from phototox.maps.dense import TileTaps
from phototox.maps.dense_engine import trunk_with_tap
from phototox.maps.normalise import normalise_windows
from phototox.maps.windows import window_count
from phototox.models.architectures import NETWORK_STRIDE, WINDOW
from phototox.shapes import plane_shape
from phototox.trust.domain_windows import MAX_WINDOWS, WindowFeatures, fine_detail, window_grid

FEATURE = (
    "conv3_2 mean+std over each window's interior 45x45 cells (no zero padding) and pooled conv4 mean, "
    "per 220 px window on the 16 px grid, under the model's preprocessing contract (one pass)"
)
TAP = "relu3_2"
TAP_STRIDE = 4
"""Pixels per cell of the conv3_2 map (two 2x2 pools)."""
INTERIOR = (4, 49)
"""conv3_2 cells of a 220 px window (53 x 53) that no zero padding reaches: 4..48 (conv1_2, conv2_x, conv3_x pad 1)."""


def grid_indices(shape: tuple[int, int], max_windows: int = MAX_WINDOWS) -> list[tuple[int, int]]:
    """Window indices (i, j) on the 16 px grid: the domain grid's origins moved to the nearest 16 px."""
    ny = window_count(shape[0], WINDOW, NETWORK_STRIDE)
    nx = window_count(shape[1], WINDOW, NETWORK_STRIDE)
    out = []
    for y, x in window_grid(shape, WINDOW, max_windows):
        i = min(int(np.floor(y / NETWORK_STRIDE + 0.5)), ny - 1)
        j = min(int(np.floor(x / NETWORK_STRIDE + 0.5)), nx - 1)
        out.append((i, j))
    return out


def _trunk_vector(tapped: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """(n, 256): conv3_2 interior mean and std of (n, 64, 53, 53) windows' maps, and pooled conv4 (n, 128)."""
    inner = tapped[:, :, INTERIOR[0] : INTERIOR[1], INTERIOR[0] : INTERIOR[1]].double()
    return torch.cat([inner.mean(dim=(2, 3)), inner.std(dim=(2, 3)), pooled.double()], 1)


class DomainTaps(TileTaps):
    """Collects the one-pass domain features of a frame's grid windows from the dense tiles."""

    def __init__(self, shape: tuple[int, int], border: int, max_windows: int = MAX_WINDOWS) -> None:
        self.indices = grid_indices(shape, max_windows)
        self.border = border
        self.done = False
        self._trunk: dict[int, np.ndarray] = {}
        self._fine: dict[int, float] = {}

    def take(
        self, i0: int, i1: int, j0: int, j1: int, region: torch.Tensor, tapped: torch.Tensor, out: torch.Tensor
    ) -> None:
        inside = [(k, i - i0, j - j0) for k, (i, j) in enumerate(self.indices) if i0 <= i < i1 and j0 <= j < j1]
        if not inside:
            return
        cells, b = 14, self.border  # conv4 cells per window, head's border
        lo, hi = INTERIOR
        rows, pixels = [], []
        for _, di, dj in inside:
            y3, x3 = (NETWORK_STRIDE // TAP_STRIDE) * di, (NETWORK_STRIDE // TAP_STRIDE) * dj
            # the window's interior conv3_2 cells; two passes over a flat copy (3x faster than std_mean on the view)
            cells_of = tapped[0, :, y3 + lo : y3 + hi, x3 + lo : x3 + hi].reshape(tapped.shape[1], -1).float()
            mean = cells_of.mean(dim=1)
            centred = cells_of - mean[:, None]
            std = torch.sqrt((centred * centred).sum(dim=1) / (cells_of.shape[1] - 1))  # unbiased, as torch.std
            pooled = out[0, :, di + b : di + cells - b, dj + b : dj + cells - b].float().mean(dim=(1, 2))
            rows.append(torch.cat([mean, std, pooled]))
            y, x = NETWORK_STRIDE * di, NETWORK_STRIDE * dj
            pixels.append(region[y : y + WINDOW, x : x + WINDOW])
        vectors = torch.stack(rows).cpu().numpy()  # == _trunk_vector of the windows' maps, to float32 rounding
        fine = fine_detail(torch.stack(pixels)[:, None].cpu())
        for n, (k, _, _) in enumerate(inside):
            self._trunk[k] = vectors[n]
            self._fine[k] = float(fine[n])

    def features(self) -> WindowFeatures:
        """The frame's :class:`~phototox.trust.domain_windows.WindowFeatures` (after a whole pass)."""
        if not self.done or len(self._trunk) != len(self.indices):
            raise PhototoxError("the dense pass did not hand over every domain window")
        order = range(len(self.indices))
        return WindowFeatures(
            np.stack([self._trunk[k] for k in order]).astype(np.float64), np.array([self._fine[k] for k in order])
        )


def model_border(predictor) -> int:
    """Cells the model's head leaves out at each side of a window's conv4 map (0 without a border)."""
    return int(getattr(predictor.model.module, "border", 0))


@torch.no_grad()
def window_features(predictor, frame: np.ndarray, max_windows: int = MAX_WINDOWS) -> WindowFeatures:
    """The one-pass feature computed window by window (two passes): the reference :class:`DomainTaps` equals."""
    module = predictor.model.module
    trunk = getattr(module, "features", None)
    if trunk is None or TAP not in dict(trunk.named_children()):
        raise PhototoxError(f"model {predictor.model.source} exposes no DeadNet trunk; no domain check")
    b = model_border(predictor)
    w = predictor.window
    normalised = torch.from_numpy(predictor.normalised_frame(frame))
    crops = torch.stack(
        [
            normalised[NETWORK_STRIDE * i : NETWORK_STRIDE * i + w, NETWORK_STRIDE * j : NETWORK_STRIDE * j + w]
            for i, j in grid_indices(plane_shape(frame), max_windows)
        ]
    )
    trunk_out, fine_out = [], []
    for start in range(0, len(crops), predictor.batch_size):
        batch = normalise_windows(crops[start : start + predictor.batch_size], predictor.contract)[:, None]
        fine_out.append(fine_detail(batch))
        out, tapped = trunk_with_tap(trunk, batch.to(predictor.device), TAP)
        pooled = out[:, :, b : out.shape[2] - b, b : out.shape[3] - b].mean(dim=(2, 3))
        trunk_out.append(_trunk_vector(tapped, pooled).float().cpu().numpy())
    return WindowFeatures(np.concatenate(trunk_out).astype(np.float64), np.concatenate(fine_out))
