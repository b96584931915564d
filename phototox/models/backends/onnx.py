"""ONNX backend: a classifier run by onnxruntime on CPU (inputs copied from any device)."""

from __future__ import annotations

import numpy as np
import torch

from phototox.errors import ModelLoadError


class OnnxBackend:
    """Runs ONNX bytes that map (N, 1, W, W) float32 windows to (N, 2) class probabilities."""

    weight_format = "onnx"
    supports_dense = False

    def __init__(self, data: bytes, source: str) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelLoadError(
                f'{source}: ONNX weights need onnxruntime (pip install -e ".[bioimageio]" or pip install onnxruntime)'
            ) from exc
        try:
            self.session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{source}: ONNX weights cannot be loaded ({str(exc).splitlines()[0]})") from None
        self.input_name = self.session.get_inputs()[0].name

    def to(self, device: torch.device) -> None:
        """onnxruntime runs on CPU; results are moved back to the inputs' device."""

    def sick_probability(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: batch.detach().cpu().numpy().astype(np.float32)})[0]
        out = np.asarray(out, dtype=np.float32).reshape(len(batch), -1)
        return torch.from_numpy(out[:, 1].copy()).to(batch.device)
