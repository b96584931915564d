"""Array shapes with the precision the type checker needs."""

from __future__ import annotations

import numpy as np


def plane_shape(array: np.ndarray) -> tuple[int, int]:
    """``(height, width)``: the first two axes of an image plane (``ndarray.shape`` is typed ``tuple[int, ...]``)."""
    return int(array.shape[0]), int(array.shape[1])
