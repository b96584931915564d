"""The domain check's features, window by window: a fixed grid of windows, their trunk features
(two passes: the windows run through the network on their own) and their fine detail
(:mod:`phototox.trust.domain` explains both; :mod:`phototox.trust.domain_pass` takes the trunk
features from the map's own dense pass instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phototox.errors import PhototoxError
from phototox.maps.normalise import normalise_windows
from phototox.maps.windows import window_origins
from phototox.shapes import plane_shape

MAX_WINDOWS = 48
FINE_BAND = (1 / 16, 1 / 4)  # cycles per pixel: detail within cells
COARSE_BAND = (1 / 128, 1 / 32)  # cycles per pixel: the scale of whole cells


def window_grid(shape: tuple[int, int], window: int, max_windows: int = MAX_WINDOWS) -> list[tuple[int, int]]:
    """Origins of non-overlapping windows covering a frame, evenly thinned to ``max_windows``."""
    ys = window_origins(shape[0], window, window)
    xs = window_origins(shape[1], window, window)
    # centre the grid so both borders lose the same margin
    ys = ys + (shape[0] - (ys[-1] + window)) // 2
    xs = xs + (shape[1] - (xs[-1] + window)) // 2
    positions = [(int(y), int(x)) for y in ys for x in xs]
    if len(positions) > max_windows:
        keep = np.linspace(0, len(positions) - 1, max_windows).round().astype(int)
        positions = [positions[i] for i in keep]
    return positions


def _contract_windows(predictor, frame: np.ndarray, max_windows: int):
    """Batches of the grid's windows, normalised as the network receives them, (n, 1, w, w)."""
    w = predictor.window
    tensor = torch.from_numpy(predictor.normalised_frame(frame))
    crops = torch.stack([tensor[y : y + w, x : x + w] for y, x in window_grid(plane_shape(frame), w, max_windows)])
    for start in range(0, len(crops), predictor.batch_size):
        yield normalise_windows(crops[start : start + predictor.batch_size], predictor.contract)[:, None]


def fine_detail(windows: torch.Tensor) -> np.ndarray:
    """Per window of (n, 1, h, w): ``log(fine-band energy / coarse-band energy)`` (:data:`FINE_DETAIL`)."""
    x = windows[:, 0].float()  # float32 FFT: the log energy ratio moves by ~1e-6, 2-3x faster than float64
    x = x - x.mean(dim=(1, 2), keepdim=True)
    h, w = x.shape[1:]
    taper = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False))
    power = torch.view_as_real(torch.fft.rfft2(x * taper)).pow(2).sum(-1).double()  # |X|^2 without a square root
    radius = torch.sqrt(
        torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
        + torch.fft.rfftfreq(w, dtype=torch.float64)[None, :] ** 2
    )

    def energy(band: tuple[float, float]) -> torch.Tensor:
        return power[:, (radius > band[0]) & (radius <= band[1])].sum(1)

    tiny = torch.finfo(torch.float64).tiny
    return torch.log((energy(FINE_BAND) + tiny) / (energy(COARSE_BAND) + tiny)).numpy()


@dataclass
class WindowFeatures:
    """A frame's domain features: trunk features (n_windows, 256) and fine detail (n_windows,)."""

    trunk: np.ndarray
    fine_detail: np.ndarray


@torch.no_grad()
def domain_features(predictor, frame: np.ndarray, max_windows: int = MAX_WINDOWS) -> WindowFeatures:
    """Both checks' features of a frame already at the model's scale, from one pass over its windows.

    Trunk features per window: the mean and standard deviation over space of the 64 conv3_2
    channels (texture at the cell scale) and the mean of the 128 conv4 channels over the cells the
    head pools.
    """
    module = predictor.model.module
    trunk = getattr(module, "features", None)
    layers: dict[str, torch.nn.Module] = dict(trunk.named_children()) if trunk is not None else {}
    if not {"relu3_2", "pool4"} <= set(layers):
        raise PhototoxError(f"model {predictor.model.source} exposes no DeadNet trunk; no domain check")
    border = int(getattr(module, "border", 0))
    trunk_out, fine_out = [], []
    for batch in _contract_windows(predictor, frame, max_windows):
        fine_out.append(fine_detail(batch))
        x = batch.to(predictor.device)
        conv3 = x  # replaced by the relu3_2 output, which the check above guarantees
        for name, layer in layers.items():
            x = layer(x)
            if name == "relu3_2":
                conv3 = x
        inner = x[:, :, border : x.shape[2] - border, border : x.shape[3] - border]
        trunk_out.append(
            torch.cat([conv3.mean(dim=(2, 3)), conv3.std(dim=(2, 3)), inner.mean(dim=(2, 3))], 1).float().cpu().numpy()
        )
    return WindowFeatures(np.concatenate(trunk_out).astype(np.float64), np.concatenate(fine_out))
