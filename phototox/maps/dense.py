"""Dense (fully convolutional) sickness maps: one pass over a frame instead of one per window.

The classifier's head is recast as convolutions (``dense_head``), so the trunk runs once over the
whole frame and yields a logit pair every 16 px (the network stride). Finer strides that divide
16 use shift-and-stitch: the frame is run again from each sub-stride offset and the grids
interleaved. Coarser multiples of 16 subsample the 16 px grid.

Under the ``box`` preprocessing contract (:mod:`phototox.maps.normalise`) each tile is normalised on
demand (bands of rows, :class:`TileInputs`; memory bounded for any frame) and the trunk, with
BatchNorm folded into the convolutions (:class:`FusedTrunk`), runs over it: with the interior-pooled ``deadnet-gap`` head each output then
equals the window's exact output to float precision (``normalisation="box"`` here).

For models trained with the paper's per-crop contract (the shipped v2 models) there is no exact
dense equivalent, because a pixel lies in many windows, and the map is an approximation. Since
the first convolution is linear, normalising a window ``(x - m) / s`` before conv1 equals
``(conv1(x) - m * sum(w)) / s + b`` after it; ``local`` normalisation applies that with the mean
and standard deviation of the 220 px box centred on each conv1 output (computed with integral
images in float64), ``global`` uses the whole frame's statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phototox.errors import PhototoxError
from phototox.maps.dense_engine import TileRunner, tile_runner
from phototox.maps.normalise import EPS, normalise_region
from phototox.maps.settings import NORMALISATIONS, check_dense_stride
from phototox.maps.windows import window_count
from phototox.models.architectures import NETWORK_STRIDE, WINDOW

"""Dense approximations of the per-crop contract (``box`` frames need none)."""
CONV1_KERNEL = 9


def _box_sums(values: torch.Tensor, size: int) -> torch.Tensor:
    """Sums over every ``size`` x ``size`` box (valid positions) via an integral image."""
    integral = F.pad(values.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def conv1_statistics(
    frame: torch.Tensor, normalisation: str, window: int = WINDOW
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std maps, one value per conv1 output position (shape (H-8, W-8))."""
    h, w = frame.shape
    out_h, out_w = h - CONV1_KERNEL + 1, w - CONV1_KERNEL + 1
    if normalisation == "global":
        std = frame.std(unbiased=False)
        mean = frame.mean()
        return mean.expand(out_h, out_w), std.expand(out_h, out_w)
    if normalisation != "local":
        raise PhototoxError(f"unknown dense normalisation {normalisation!r}; use one of {NORMALISATIONS}")
    x = frame.double()
    area = float(window * window)
    box_mean = _box_sums(x, window) / area
    box_var = (_box_sums(x * x, window) / area - box_mean**2).clamp_min(0)
    half = window // 2 - CONV1_KERNEL // 2  # conv1 output p is centred on pixel p + 4
    qy = torch.clamp(torch.arange(out_h, device=frame.device) - half, 0, h - window)
    qx = torch.clamp(torch.arange(out_w, device=frame.device) - half, 0, w - window)
    mean = box_mean[qy][:, qx]
    std = box_var.sqrt()[qy][:, qx]
    return mean.float(), std.float()


class FusedTrunk(nn.Module):
    """An eval-mode trunk with each BatchNorm folded into its convolution and ReLUs in place.

    The same function as ``features`` up to float rounding, with two fewer passes over every
    activation: the first layers of a dense pass (16-32 channels over a whole tile) are
    memory-bound, so this is where dense time goes. Built afresh from the current weights.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        names = [name for name, _ in features.named_children()]
        modules = list(features)
        self.sources: list[str] = []
        """Name (in ``features``) of the last module each fused layer computes."""
        index = 0
        while index < len(modules):
            layer = modules[index]
            following = modules[index + 1] if index + 1 < len(modules) else None
            if isinstance(layer, nn.Conv2d) and isinstance(following, nn.BatchNorm2d) and _foldable(following):
                layers.append(_fold(layer, following))
                self.sources.append(names[index + 1])
                index += 2
                continue
            layers.append(nn.ReLU(inplace=True) if isinstance(layer, nn.ReLU) else layer)
            self.sources.append(names[index])
            index += 1
        self.layers = nn.Sequential(*layers)
        self.eval()  # folding is only valid in eval mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def tile_spans(n: int, tile_windows: int) -> list[tuple[int, int]]:
    """``n`` windows in ``ceil(n / tile_windows)`` runs of nearly equal length (none longer than ``tile_windows``).

    Evenly sized tiles: the same maps as fixed-size tiles (each window is computed whole in one
    tile), without a short last tile whose halo costs as much as a full one.
    """
    if n <= 0:
        return []
    k = -(-n // max(1, tile_windows))
    bounds = [(i * n) // k for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


def _foldable(bn: nn.BatchNorm2d) -> bool:
    """An affine BatchNorm with running statistics (eval mode applies a fixed affine map)."""
    return bn.affine and bn.running_mean is not None and bn.running_var is not None


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    return values[0], values[1]


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` followed by eval-mode ``bn`` (see :func:`_foldable`) as one convolution."""
    running_mean, running_var = bn.running_mean, bn.running_var
    if running_mean is None or running_var is None:
        raise PhototoxError("a BatchNorm without running statistics cannot be folded into its convolution")
    scale = bn.weight / torch.sqrt(running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        _pair(conv.kernel_size),
        _pair(conv.stride),
        conv.padding if isinstance(conv.padding, str) else _pair(conv.padding),
        _pair(conv.dilation),
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(running_mean)
    fused_bias = fused.bias
    if fused_bias is None:  # never: built with bias=True
        raise PhototoxError("fused convolution has no bias")
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused_bias.copy_((bias - running_mean) * scale + bn.bias)
    # torch's stubs omit Module.to(memory_format=...), which torch documents and accepts
    return fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def model_trunk(module: nn.Module) -> nn.Sequential:
    """``module.features``: the convolutional trunk of a DeadNet-style model."""
    features = module.features
    if not isinstance(features, nn.Sequential):
        raise PhototoxError(f"{type(module).__name__} has no convolutional trunk 'features'; no dense pass")
    return features


def _dense_head(module: nn.Module, features: torch.Tensor) -> torch.Tensor:
    head = getattr(module, "dense_head", None)
    if head is None:
        raise PhototoxError(f"{type(module).__name__} has no dense_head; no dense pass")
    return head(features)


def dense_trunk(module: nn.Module, fuse: bool = True) -> nn.Sequential | FusedTrunk:
    """The trunk a dense pass runs: :class:`FusedTrunk` (eval mode) or ``module.features`` itself."""
    if not fuse or module.training:
        return model_trunk(module)
    return FusedTrunk(model_trunk(module))


def dense_logits(
    module: nn.Module,
    frame: torch.Tensor,
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
    trunk: nn.Sequential | FusedTrunk | None = None,
) -> torch.Tensor:
    """Logit grid (2, ny, nx) at 16 px steps for a frame region and its conv1 statistics.

    With ``mean``/``std`` None the region is already normalised (``box`` contract). ``trunk``
    (default ``module.features``) may be a :class:`FusedTrunk` of it.
    """
    return _dense_head(module, dense_trunk_output(module, frame, mean, std, trunk))[0]


def dense_trunk_output(
    module: nn.Module,
    frame: torch.Tensor,
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
    trunk: nn.Sequential | FusedTrunk | None = None,
) -> torch.Tensor:
    """The trunk's output (1, C, h, w) over a frame region: what :func:`dense_logits` feeds its head.

    The same arguments as :func:`dense_logits`; :mod:`phototox.trust.novelty` pools these features per
    window so that one pass gives both P(sick) and the features of every window.
    """
    trunk = model_trunk(module) if trunk is None else trunk
    x = frame[None, None].contiguous(memory_format=torch.channels_last)
    if mean is None or std is None:
        return trunk(x)
    layers = trunk.layers if isinstance(trunk, FusedTrunk) else trunk
    conv1 = layers[0]
    if not isinstance(conv1, nn.Conv2d):
        raise PhototoxError(f"{type(module).__name__}'s trunk does not start with a convolution; no dense pass")
    # (conv1(x) - mean * sum(w)) / std + b, in place over the (memory-bound) conv1 output
    inverse = 1.0 / torch.where(std < EPS, torch.ones_like(std), std)
    y = F.conv2d(x, conv1.weight).mul_(inverse[None, None])
    y.addcmul_((mean * inverse)[None, None], -conv1.weight.sum(dim=(1, 2, 3)).view(1, -1, 1, 1))
    if conv1.bias is not None:
        y.add_(conv1.bias.view(1, -1, 1, 1))
    return layers[1:](y)


class TileInputs:
    """Network input for any region of a frame, prepared tile by tile so memory stays bounded.

    ``frame`` is a raw (H, W) array or tensor. ``normalisation`` "box" normalises it under the box
    contract (side ``box_size``, :func:`phototox.maps.normalise.normalise_region`: equal to normalising
    the whole frame, up to float rounding), one band of rows at a time in column chunks; with
    ``box_size`` None the frame is taken as already box-normalised. "local"/"global" (per-crop
    approximations) return the frame region plus the conv1 statistics computed from the rows and
    columns that region's boxes cover. Nothing frame-sized is allocated beyond ``frame`` itself.
    """

    def __init__(
        self,
        frame: np.ndarray | torch.Tensor,
        normalisation: str,
        device: torch.device,
        box_size: int | None = None,
        column_chunk: int = 2048,
    ) -> None:
        if normalisation not in (*NORMALISATIONS, "box"):
            raise PhototoxError(f"unknown dense normalisation {normalisation!r}; use one of {NORMALISATIONS}")
        self.frame = frame
        self.normalisation = normalisation
        self.device = device
        self.box_size = box_size if normalisation == "box" else None
        self.column_chunk = column_chunk
        self._band: tuple[int, int, np.ndarray] | None = None
        self.shift, self.scale = 0.0, 1.0
        if normalisation in NORMALISATIONS:  # conditioning only: the normalisation is shift/scale invariant
            mean, std = frame_moments(frame)
            self.shift, self.scale = mean, max(std, EPS)
            self.global_std = std / self.scale

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.frame.shape)  # type: ignore[return-value]

    def _raw(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        part = self.frame[y0:y1, x0:x1]
        tensor = part if torch.is_tensor(part) else torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))
        return tensor.to(self.device, torch.float32)

    def _box_band(self, y0: int, y1: int, box_size: int) -> np.ndarray:
        if self._band is None or self._band[:2] != (y0, y1):
            frame = self.frame.cpu().numpy() if torch.is_tensor(self.frame) else self.frame
            w = frame.shape[1]
            band = np.empty((y1 - y0, w), dtype=np.float32)
            for c0 in range(0, w, self.column_chunk):
                c1 = min(c0 + self.column_chunk, w)
                band[:, c0:c1] = normalise_region(frame, y0, y1, c0, c1, box_size)
            self._band = (y0, y1, band)
        return self._band[2]

    def region(
        self, y0: int, y1: int, x0: int, x1: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Input of ``frame[y0:y1, x0:x1]`` and its conv1 mean/std maps (None when normalised)."""
        if self.normalisation == "box":
            if self.box_size is None:
                return self._raw(y0, y1, x0, x1), None, None
            part = self._box_band(y0, y1, self.box_size)[:, x0:x1]
            return torch.from_numpy(np.ascontiguousarray(part)).to(self.device), None, None
        tile = (self._raw(y0, y1, x0, x1) - self.shift) / self.scale
        out_h, out_w = y1 - y0 - CONV1_KERNEL + 1, x1 - x0 - CONV1_KERNEL + 1
        if self.normalisation == "global":
            mean = torch.zeros((), device=self.device)
            std = torch.full((), self.global_std, device=self.device)
            return tile, mean.expand(out_h, out_w), std.expand(out_h, out_w)
        return tile, *self._local_statistics(y0, y1, x0, x1)

    def _local_statistics(self, y0: int, y1: int, x0: int, x1: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`conv1_statistics` ("local") restricted to the conv1 outputs of a region."""
        h, w = self.shape
        half = WINDOW // 2 - CONV1_KERNEL // 2  # conv1 output p is centred on pixel p + 4
        qy = np.clip(np.arange(y0, y1 - CONV1_KERNEL + 1) - half, 0, h - WINDOW)
        qx = np.clip(np.arange(x0, x1 - CONV1_KERNEL + 1) - half, 0, w - WINDOW)
        rows, cols = slice(qy[0], qy[-1] + WINDOW), slice(qx[0], qx[-1] + WINDOW)
        x = (self._raw(rows.start, rows.stop, cols.start, cols.stop).double() - self.shift) / self.scale
        area = float(WINDOW * WINDOW)
        box_mean = _box_sums(x, WINDOW) / area
        box_var = (_box_sums(x * x, WINDOW) / area - box_mean**2).clamp_min(0)
        iy = torch.as_tensor(qy - qy[0], device=x.device)
        ix = torch.as_tensor(qx - qx[0], device=x.device)
        return box_mean[iy][:, ix].float(), box_var.sqrt()[iy][:, ix].float()


def frame_moments(frame: np.ndarray | torch.Tensor, band_rows: int = 512) -> tuple[float, float]:
    """Mean and (population) standard deviation of a frame, in float64, in bands of rows."""
    total = squares = 0.0
    for y0 in range(0, frame.shape[0], band_rows):
        band = frame[y0 : y0 + band_rows]
        band = band.double() if torch.is_tensor(band) else torch.from_numpy(np.asarray(band, dtype=np.float64))
        total += float(band.sum())
        squares += float((band * band).sum())
    n = float(frame.shape[0] * frame.shape[1])
    mean = total / n
    return mean, float(np.sqrt(max(squares / n - mean * mean, 0.0)))


@torch.no_grad()
def dense_sick_grid(
    module: nn.Module,
    frame: np.ndarray | torch.Tensor,
    stride: int = NETWORK_STRIDE,
    normalisation: str = "local",
    tile_windows: int = 48,
    box_size: int | None = None,
    device: torch.device | str | None = None,
    fuse: bool = True,
    engine: str = "auto",
    on_engine: Callable[[str], None] | None = None,
    taps: TileTaps | None = None,
) -> np.ndarray:
    """Sick-probability grid matching :func:`phototox.maps.windows.window_origins` for ``stride``.

    ``frame`` is a float (H, W) array or tensor: the raw frame for the per-crop approximations
    (``normalisation`` "local" or "global"); under the ``box`` contract either the raw frame with
    ``box_size`` given (normalised tile by tile here) or the already normalised frame
    (``box_size`` None). Work is done in tiles of at most ``tile_windows`` x ``tile_windows``
    windows, each prepared on demand (:class:`TileInputs`), so memory is bounded for any frame
    size. ``device`` defaults to the module's. ``fuse`` runs the BatchNorm-folded
    :class:`FusedTrunk` (the same numbers up to float rounding; False runs ``module.features``).
    ``engine`` (:mod:`phototox.maps.dense_engine`) runs box-contract tiles on ONNX Runtime or PyTorch;
    ``on_engine`` is told which one did ("torch" or "onnxruntime"). ``taps`` (box contract with a
    tile runner only) is handed every tile of the 16 px grid at offset 0 with its trunk features
    (:class:`TileTaps`; the one-pass domain check), and told with ``taps.done`` that it was.
    """
    check_dense_stride(stride)
    if device is None:
        device = next(module.parameters()).device
    inputs = TileInputs(frame, normalisation, torch.device(device), box_size)
    trunk = dense_trunk(module, fuse)
    runner = None
    if normalisation == "box" and hasattr(module, "dense_head"):
        runner = tile_runner(trunk, module, torch.device(device), engine, tap=None if taps is None else taps.tap)
    elif taps is not None:
        taps = None  # no exact dense form: the caller computes its features another way
    if on_engine is not None:
        on_engine(getattr(runner, "engine", "torch"))
    h, w = inputs.shape
    ny, nx = window_count(h, WINDOW, stride), window_count(w, WINDOW, stride)
    if stride % NETWORK_STRIDE == 0:
        base = _dense_offset(module, trunk, inputs, 0, 0, tile_windows, runner, taps)
        step = stride // NETWORK_STRIDE
        return np.ascontiguousarray(base[::step, ::step][:ny, :nx])
    shifts = NETWORK_STRIDE // stride
    grid = np.empty((ny, nx), dtype=np.float32)
    for sy in range(shifts):
        for sx in range(shifts):
            oy, ox = sy * stride, sx * stride
            if oy > h - WINDOW or ox > w - WINDOW:
                continue
            part = _dense_offset(module, trunk, inputs, oy, ox, tile_windows, runner, taps if oy == ox == 0 else None)
            target = grid[sy::shifts, sx::shifts]
            target[...] = part[: target.shape[0], : target.shape[1]]
    return grid


def _dense_offset(
    module: nn.Module,
    trunk: nn.Sequential | FusedTrunk,
    inputs: TileInputs,
    oy: int,
    ox: int,
    tile_windows: int,
    runner: TileRunner | None = None,
    taps: TileTaps | None = None,
) -> np.ndarray:
    """Probability grid at 16 px steps for windows starting at (oy + 16i, ox + 16j), in even tiles.

    ``runner`` (box contract) maps a normalised tile to its logits (with ``taps``: logits, the
    tapped layer's output and the trunk's output, handed to ``taps``); else :func:`dense_logits`.
    """
    h, w = inputs.shape
    ny = window_count(h - oy, WINDOW, NETWORK_STRIDE)
    nx = window_count(w - ox, WINDOW, NETWORK_STRIDE)
    out = np.empty((ny, nx), dtype=np.float32)
    for i0, i1 in tile_spans(ny, tile_windows):
        y0, y1 = oy + NETWORK_STRIDE * i0, oy + NETWORK_STRIDE * (i1 - 1) + WINDOW
        for j0, j1 in tile_spans(nx, tile_windows):
            x0, x1 = ox + NETWORK_STRIDE * j0, ox + NETWORK_STRIDE * (j1 - 1) + WINDOW
            region, mean, std = inputs.region(y0, y1, x0, x1)
            if runner is not None and mean is None and taps is not None:
                logits, tapped, features = runner(region[None, None].contiguous(memory_format=torch.channels_last))
                taps.take(i0, i1, j0, j1, region, tapped, features)
            elif runner is not None and mean is None:
                logits = runner(region[None, None].contiguous(memory_format=torch.channels_last))
                if isinstance(logits, tuple):  # a tapping runner at a shifted offset (stride < 16): logits only
                    logits = logits[0]
            else:
                logits = dense_logits(module, region, mean, std, trunk=trunk)
            probs = torch.softmax(logits.float(), dim=0)[1]
            out[i0:i1, j0:j1] = probs[: i1 - i0, : j1 - j0].cpu().numpy()
    if taps is not None:
        taps.done = True
    return out


class TileTaps(ABC):
    """Receives each dense tile's normalised pixels and trunk features (see :func:`dense_sick_grid`).

    ``tap`` names the trunk layer (in ``features``) whose output :meth:`take` receives beside the
    trunk's output; ``take(i0, i1, j0, j1, region, tapped, out)`` gets the tile of windows
    ``[i0, i1) x [j0, j1)`` on the 16 px grid. ``done`` is set once a whole pass was handed over.
    """

    tap: str = "relu3_2"
    done: bool = False

    @abstractmethod
    def take(
        self, i0: int, i1: int, j0: int, j1: int, region: torch.Tensor, tapped: torch.Tensor, out: torch.Tensor
    ) -> None:
        """One tile's normalised pixels, the ``tap`` layer's output and the trunk's output."""


class TapsTogether(TileTaps):
    """Hands each tile to several :class:`TileTaps` sharing one ``tap`` layer (one pass feeds them all)."""

    def __init__(self, *parts: TileTaps) -> None:
        if len({p.tap for p in parts}) != 1:
            raise ValueError("taps handed the same tiles must tap the same layer")
        self.parts = parts
        self.tap = parts[0].tap

    @property
    def done(self) -> bool:
        return all(p.done for p in self.parts)

    @done.setter
    def done(self, value: bool) -> None:
        for p in self.parts:
            p.done = value

    def take(
        self, i0: int, i1: int, j0: int, j1: int, region: torch.Tensor, tapped: torch.Tensor, out: torch.Tensor
    ) -> None:
        for p in self.parts:
            p.take(i0, i1, j0, j1, region, tapped, out)
