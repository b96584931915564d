"""One adapter per weight format, chosen by a priority list.

A bioimage.io package may hold several weight formats; phototox takes the first of
:data:`WEIGHT_PRIORITY` it can run safely: ``pytorch_state_dict`` of a phototox architecture
(loaded into phototox's own classes: fully convolutional maps, Grad-CAM, fine-tuning), then
``onnx`` (exact mode only, through onnxruntime). TorchScript is never loaded: it is code.
"""

from __future__ import annotations

from phototox.models.backends.onnx import OnnxBackend
from phototox.models.backends.torch import TorchBackend

WEIGHT_PRIORITY = ("pytorch_state_dict", "onnx")

__all__ = ["WEIGHT_PRIORITY", "OnnxBackend", "TorchBackend"]
