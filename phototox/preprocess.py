"""Backwards-compatible names for the paper's per-crop normalisation.

The one implementation lives in :mod:`phototox.normalise` (the preprocessing contract); this
module only re-exports the per-crop (``crop``) contract under its historical names.
"""

from __future__ import annotations

import numpy as np
import torch

from .normalise import EPS, normalise_crops

__all__ = ["EPS", "normalise_crop_np", "normalise_crops"]


def normalise_crop_np(crop: np.ndarray) -> np.ndarray:
    """Per-crop contract for one 2-D numpy crop (float32 out), via :func:`normalise_crops`."""
    return normalise_crops(torch.from_numpy(np.asarray(crop, dtype=np.float32))).numpy()
