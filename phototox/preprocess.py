"""Crop-level variance normalisation, the one preprocessing step DeadNet uses.

Each 220x220 crop is shifted to zero mean and scaled to unit variance on its own, in training and
at inference alike (Richmond et al., 2017). This removes the absolute brightness and contrast of
the camera and illumination, so 8-bit, 16-bit and float images need no other scaling.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-6
"""Standard deviations below this are treated as a blank crop (output all zeros)."""


def normalise_crops(crops: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-variance per crop over its last two axes (any leading shape)."""
    crops = crops.float()
    mean = crops.mean(dim=(-2, -1), keepdim=True)
    std = crops.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (crops - mean) / torch.where(std < EPS, torch.ones_like(std), std)


def normalise_crop_np(crop: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`normalise_crops` for a single 2-D crop (float32 out)."""
    crop = crop.astype(np.float32)
    std = float(crop.std())
    return (crop - crop.mean()) / (std if std >= EPS else 1.0)
