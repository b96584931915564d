"""What a loaded model is, whatever its weight format: :class:`LoadedModel` and its backend.

A backend runs normalised windows and answers P(sick); it is the only part that knows the weight
format (:mod:`phototox.models.backends`). :class:`LoadedModel` adds what phototox knows about
the model: where it came from, its checksum, its architecture and its metadata (model card,
training data, citations, the pixel size it was trained at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from phototox.errors import PhototoxError
from phototox.models.architectures import CLASSES, WINDOW


class Backend(Protocol):
    """Runs one weight format. ``batch`` is (N, 1, window, window), already normalised per crop."""

    weight_format: str

    @property
    def supports_dense(self) -> bool:
        """True when the backend holds a phototox torch module with a fully convolutional form."""

    def to(self, device: torch.device) -> None: ...

    def sick_probability(self, batch: torch.Tensor) -> torch.Tensor: ...


@dataclass
class LoadedModel:
    """A ready-to-use classifier and what is known about it."""

    backend: Backend
    arch: str
    arch_kwargs: dict
    classes: tuple[str, ...] = CLASSES
    window: int = WINDOW
    meta: dict = field(default_factory=dict)
    source: str = ""
    """The spec or path it was loaded from (a registry name for shipped models)."""
    sha256: str = ""
    """Checksum of the file it was loaded from (empty when unknown)."""
    card: dict = field(default_factory=dict)
    """Per-model metadata: summary, card file, training data, citations, pixel size (um/px)."""

    @property
    def module(self) -> nn.Module:
        """The torch module (Grad-CAM, training, dense maps, packaging need one)."""
        module = getattr(self.backend, "module", None)
        if module is None:
            raise PhototoxError(
                f"model {self.source} runs through {self.backend.weight_format} weights; "
                "this needs a phototox (PyTorch) model"
            )
        return module

    @property
    def label(self) -> str:
        """What outputs say about the model: its name or path and its checksum."""
        return f"{self.source} sha256:{self.sha256}" if self.sha256 else self.source

    @property
    def pixel_size_um(self) -> float | None:
        """Pixel size (um/px) of the training images, when known."""
        value = self.card.get("pixel_size_um")
        return float(value) if isinstance(value, (int, float)) else None

    def sick_probability(self, batch: torch.Tensor) -> torch.Tensor:
        """P(sick) of each normalised window in ``batch`` (N, 1, W, W)."""
        return self.backend.sick_probability(batch)

    def to(self, device: torch.device | str) -> LoadedModel:
        self.backend.to(torch.device(device))
        return self
