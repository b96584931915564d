"""Which runtime executes a dense pass: PyTorch, or ONNX Runtime for box-contract tiles on CPU.

The dense trunk of a box-contract model (BatchNorm folded, :class:`phototox.maps.dense.FusedTrunk`,
then the convolutional head) is a pure function of one normalised tile. On CPU, ONNX Runtime runs
it about 1.3-1.4x faster than eager PyTorch (``benchmarks/README.md``), with the same numbers to
float rounding. :func:`tile_runner` exports that function once per set of weights (in memory,
cached by a checksum of the weights) and falls back to PyTorch whenever ONNX Runtime is missing,
the device is not the CPU, the export fails, or the engine asked for is ``"torch"``. Engines are
interchangeable by construction; ``tests/test_dense_engine.py`` checks that they agree.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from phototox.errors import PhototoxError

ENGINES = ("auto", "torch", "onnx")
"""``auto``: ONNX Runtime on CPU when installed, else PyTorch; ``onnx`` insists on ONNX Runtime
(``onnxruntime`` is accepted for it). Results name the runtime that ran: torch or onnxruntime."""

TileRunner = Callable[[torch.Tensor], torch.Tensor]
"""Maps a normalised (1, 1, h, w) channels-last tile to its logit grid (2, ny, nx)."""

_SESSIONS: OrderedDict[str, object] = OrderedDict()
_MAX_SESSIONS = 4
_SESSIONS_LOCK = threading.Lock()  # the HTTP server maps from several threads
_LOG = logging.getLogger(__name__)


class _DenseFunction(nn.Module):
    """``trunk`` then ``model.dense_head``: what one box-contract tile goes through."""

    def __init__(self, trunk: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = cast(Callable[[torch.Tensor], torch.Tensor], self.model.dense_head)
        return head(self.trunk(x))


def _weights_key(function: nn.Module) -> str:
    """Checksum of every parameter and buffer (a new fine-tune step gives a new session)."""
    digest = hashlib.sha256()
    for name, tensor in function.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _session(function: nn.Module, onnxruntime) -> object:
    """An ONNX Runtime session computing ``function`` for any tile size (cached per weights)."""
    key = f"{_weights_key(function)}-{torch.get_num_threads()}"
    with _SESSIONS_LOCK:
        if key in _SESSIONS:
            _SESSIONS.move_to_end(key)
            return _SESSIONS[key]
    buffer = io.BytesIO()
    example = torch.zeros(1, 1, 252, 252)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            function,
            (example,),
            cast(Any, buffer),  # torch accepts a binary file object; its stubs name paths only
            opset_version=17,
            dynamo=False,
            input_names=["tile"],
            output_names=["logits"],
            dynamic_axes={"tile": {2: "height", 3: "width"}, "logits": {2: "rows", 3: "columns"}},
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    with _SESSIONS_LOCK:
        _SESSIONS[key] = session
        while len(_SESSIONS) > _MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
    return session


def check_engine(engine: str) -> str:
    """The engine's canonical name (``onnxruntime`` means ``onnx``); one line for an unknown one."""
    engine = "onnx" if engine == "onnxruntime" else engine
    if engine not in ENGINES:
        raise PhototoxError(f"unknown dense engine {engine!r} (--engine); use one of {', '.join(ENGINES)}")
    return engine


def tile_runner(trunk: nn.Module, model: nn.Module, device: torch.device, engine: str = "auto") -> TileRunner:
    """The function a dense pass applies to each normalised tile, on the engine asked for.

    ``trunk`` is ``model``'s trunk or its :class:`phototox.maps.dense.FusedTrunk`; ``model`` has a
    ``dense_head``. A model in training mode always runs on PyTorch.
    ``engine`` "onnx" insists (one error if ONNX Runtime is missing or the device is not the
    CPU); "auto" uses it when it can and PyTorch otherwise; "torch" always uses PyTorch.
    """
    engine = check_engine(engine)
    function = _DenseFunction(trunk, model)
    function.training = model.training  # the caller's mode (submodules untouched)

    def with_torch(x: torch.Tensor) -> torch.Tensor:
        return function(x)[0]

    with_torch.engine = "torch"  # type: ignore[attr-defined]

    if engine == "torch" or function.training:
        return with_torch
    onnxruntime = _onnxruntime()
    if device.type != "cpu" or onnxruntime is None:
        if engine == "onnx":
            raise PhototoxError(
                'dense engine onnx needs the onnxruntime package and a CPU device (pip install -e ".[bioimageio]")'
            )
        return with_torch
    try:
        session = _session(function, onnxruntime)
    except Exception as exc:  # an export or runtime the model does not support: PyTorch computes the same
        if engine == "onnx":
            raise PhototoxError(f"dense engine onnx: this model cannot be exported ({exc})") from None
        _LOG.debug("dense pass falls back to PyTorch: %s", exc)
        return with_torch

    def with_onnxruntime(x: torch.Tensor) -> torch.Tensor:
        tile = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {"tile": tile})[0][0])  # type: ignore[attr-defined]

    with_onnxruntime.engine = "onnxruntime"  # type: ignore[attr-defined]

    return with_onnxruntime
