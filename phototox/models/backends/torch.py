"""PyTorch backend: a phototox architecture (``phototox.models.architectures``) on a device."""

from __future__ import annotations

import torch
from torch import nn


class TorchBackend:
    """Runs a phototox ``nn.Module`` whose forward returns logits (or probabilities)."""

    weight_format = "pytorch_state_dict"

    def __init__(self, module: nn.Module, outputs: str = "logits") -> None:
        self.module = module.eval()
        self.outputs = outputs

    @property
    def supports_dense(self) -> bool:
        return hasattr(self.module, "dense_head")

    def to(self, device: torch.device) -> None:
        self.module.to(device).eval()
        self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # 2-3x faster convolutions on CPU

    def sick_probability(self, batch: torch.Tensor) -> torch.Tensor:
        output = self.module(batch).float()
        return (torch.softmax(output, dim=1) if self.outputs == "logits" else output)[:, 1]
