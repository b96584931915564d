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
from phototox.maps.settings import BF16_DEVIATION, ENGINES

TileRunner = Callable[[torch.Tensor], torch.Tensor]
"""Maps a normalised (1, 1, h, w) channels-last tile to its logit grid (2, ny, nx)."""

_SESSIONS: OrderedDict[str, object] = OrderedDict()
_MAX_SESSIONS = 4
_SESSIONS_LOCK = threading.Lock()  # the HTTP server maps from several threads
_LOG = logging.getLogger(__name__)
_BF16_TOLD = threading.Event()


class _DenseFunction(nn.Module):
    """``trunk`` then ``model.dense_head``: what one box-contract tile goes through."""

    def __init__(self, trunk: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = cast(Callable[[torch.Tensor], torch.Tensor], self.model.dense_head)
        return head(self.trunk(x))


def trunk_with_tap(trunk: nn.Module, x: torch.Tensor, tap: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The trunk's output and that of its module named ``tap`` (a name in ``features``), in one pass.

    ``trunk``: ``features`` (an ``nn.Sequential``) or its :class:`phototox.maps.dense.FusedTrunk`
    (``sources``: the ``features`` name of each of its ``layers``).
    """
    if hasattr(trunk, "sources"):
        steps = list(zip(cast(Any, trunk).sources, cast(Any, trunk).layers))
    else:
        steps = list(trunk.named_children())
    if tap not in {name for name, _ in steps}:
        raise PhototoxError(f"the trunk has no layer {tap!r}")
    tapped = x
    for name, layer in steps:
        x = layer(x)
        if name == tap:
            tapped = x
    return x, tapped


class _TappedFunction(nn.Module):
    """:class:`_DenseFunction` that also returns the output of the trunk layer ``tap`` and the trunk's."""

    def __init__(self, trunk: nn.Module, model: nn.Module, tap: str) -> None:
        super().__init__()
        self.trunk = trunk
        self.model = model
        self.tap = tap

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        head = cast(Callable[[torch.Tensor], torch.Tensor], self.model.dense_head)
        out, tapped = trunk_with_tap(cast(Any, self.trunk), x, self.tap)
        return head(out), tapped, out


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


def _session(function: nn.Module, onnxruntime, tap: str | None = None) -> object:
    """An ONNX Runtime session computing ``function`` for any tile size (cached per weights and tap)."""
    key = f"{_weights_key(function)}-{torch.get_num_threads()}-{tap}"
    names = ["logits"] if tap is None else ["logits", "tapped", "trunk"]
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
            output_names=names,
            dynamic_axes={"tile": {2: "height", 3: "width"}} | {n: {2: f"{n}_rows", 3: f"{n}_columns"} for n in names},
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


def tile_runner(
    trunk: nn.Module, model: nn.Module, device: torch.device, engine: str = "auto", tap: str | None = None
) -> TileRunner:
    """The function a dense pass applies to each normalised tile, on the engine asked for.

    ``trunk`` is ``model``'s trunk or its :class:`phototox.maps.dense.FusedTrunk`; ``model`` has a
    ``dense_head``. A model in training mode always runs on PyTorch.
    ``engine`` "onnx" insists (one error if ONNX Runtime is missing or the device is not the
    CPU); "auto" uses it when it can and PyTorch otherwise; "torch" always uses PyTorch.
    ``tap`` (a trunk layer's name): the runner returns ``(logits, that layer's output (1, C, h, w),
    the trunk's output (1, C, h, w))`` instead of the logits alone.
    """
    engine = check_engine(engine)
    function: nn.Module = _DenseFunction(trunk, model) if tap is None else _TappedFunction(trunk, model, tap)
    function.training = model.training  # the caller's mode (submodules untouched)

    def with_torch(x: torch.Tensor) -> Any:
        out = function(x)
        return out[0] if tap is None else (out[0][0], out[1], out[2])

    with_torch.engine = "torch"  # type: ignore[attr-defined]

    if engine == "bf16" and not function.training:
        if not _BF16_TOLD.is_set():  # once per process, not once per frame
            _BF16_TOLD.set()
            _LOG.warning("dense engine bf16: %s", BF16_DEVIATION)

        def with_bf16(x: torch.Tensor) -> Any:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = function(x)
            return out[0].float() if tap is None else (out[0][0].float(), out[1].float(), out[2].float())

        with_bf16.engine = "torch-bf16"  # type: ignore[attr-defined]
        return with_bf16
    if engine in ("torch", "bf16") or function.training:
        return with_torch
    onnxruntime = _onnxruntime()
    if device.type != "cpu" or onnxruntime is None:
        if engine == "onnx":
            raise PhototoxError(
                "dense engine onnx needs the onnxruntime package (part of the core install: pip install -e .) "
                "and a CPU device; --engine torch runs without it"
            )
        return with_torch
    try:
        session = _session(function, onnxruntime, tap)
    except Exception as exc:  # an export or runtime the model does not support: PyTorch computes the same
        if engine == "onnx":
            raise PhototoxError(f"dense engine onnx: this model cannot be exported ({exc})") from None
        _LOG.debug("dense pass falls back to PyTorch: %s", exc)
        return with_torch

    def with_onnxruntime(x: torch.Tensor) -> Any:
        tile = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        outputs = session.run(None, {"tile": tile})  # type: ignore[attr-defined]
        if tap is None:
            return torch.from_numpy(outputs[0][0])
        return torch.from_numpy(outputs[0][0]), torch.from_numpy(outputs[1]), torch.from_numpy(outputs[2])

    with_onnxruntime.engine = "onnxruntime"  # type: ignore[attr-defined]

    return with_onnxruntime
