"""A model's preprocessing contract: how its input pixels are normalised (``meta["normalisation"]``).

Part of what a weight file promises, so it lives with the models (no torch here); the
implementation that applies it is :mod:`phototox.maps.normalise`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from phototox.errors import PhototoxError

DEFAULT_BOX = 221
"""Default side of the normalisation box, px: the 220 px window's scale, odd so it is centred."""
MAX_BOX = 1001
"""Largest box side accepted, px: a box sizes the halo every band and tile allocates
(``size // 2`` px each side), so a model's metadata may not make it unbounded."""
KINDS = ("box", "crop")
EDGE = "reflect"


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
