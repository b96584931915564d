"""DeadNet and its compact variant, in PyTorch.

The convolutional trunk follows the original Caffe configuration of DeadNet (Richmond et al.,
2017, arXiv:1701.06109): one 220x220 grey crop in, four conv blocks (each conv followed by batch
norm with learned scale/shift and ReLU), 2x2 max-pooling with Caffe's ceil rounding, stride 16.

Two heads are registered:

* ``deadnet`` -- the paper's head: fc 512 (from 128*14*14 = 25,088 inputs), BN, ReLU, dropout 0.5,
  fc 512, BN, ReLU, dropout 0.5, fc 2. About 13.4 M parameters, 12.8 M of them in fc1.
* ``deadnet-gap`` -- the default: average pooling over the central 8x8 cells of the 14x14 conv4
  map (those the crop's zero padding cannot reach), dropout and one linear layer. About 0.3 M
  parameters (45x fewer), which keeps the shipped weights small and makes the dense (fully
  convolutional) sickness map a plain average pool that matches the crops' computation.

``softmax_output=True`` makes ``forward`` return class probabilities instead of logits (used by
the bioimage.io package, whose output is described as probabilities); the weights are the same.

Both expose :meth:`features` (the trunk), :meth:`head` (window logits) and :meth:`dense_head`
(the head recast as convolutions, giving one logit pair per 16 px step over a whole frame).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

CLASSES = ("healthy", "sick")
"""Output classes, in output order (``phototox.defaults.CLASSES`` repeats them, as for WINDOW)."""
WINDOW = 220
"""Side of the square crop the classifier sees, in pixels (``phototox.defaults.WINDOW`` repeats it
for modules that must not import torch; this file is packaged alone into zoo packages)."""

NETWORK_STRIDE = 16
"""Step between neighbouring outputs of the dense (fully convolutional) map, in pixels."""
GRADCAM_LAYER = "relu4_2"
"""Module name (inside ``features``) of the paper's Grad-CAM layer conv4_2 (after BN and ReLU)."""

# (name, in, out, kernel, padding) for each conv; "pool" entries are 2x2 max-pools.
_TRUNK: tuple[tuple, ...] = (
    ("1_1", 1, 16, 9, 0),
    ("1_2", 16, 16, 3, 1),
    ("pool", 1),
    ("2_1", 16, 32, 3, 1),
    ("2_2", 32, 32, 3, 1),
    ("pool", 2),
    ("3_1", 32, 64, 3, 1),
    ("3_2", 64, 64, 3, 1),
    ("pool", 3),
    ("4_1", 64, 128, 3, 1),
    ("4_2", 128, 128, 3, 1),
    ("pool", 4),
)
TRUNK_CHANNELS = 128
TRUNK_SIDE = 14  # conv4 map side after pool4 for a 220 crop


def caffe_xavier_(tensor: torch.Tensor) -> torch.Tensor:
    """Caffe's ``xavier`` filler: uniform in +-sqrt(3 / fan_in)."""
    fan_in = tensor[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def build_trunk() -> nn.Sequential:
    """The conv trunk: 1x220x220 -> 128x14x14 (ceil-mode pooling as in Caffe)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for spec in _TRUNK:
        if spec[0] == "pool":
            layers[f"pool{spec[1]}"] = nn.MaxPool2d(2, 2, ceil_mode=True)
            continue
        name, c_in, c_out, k, pad = spec
        layers[f"conv{name}"] = nn.Conv2d(c_in, c_out, k, padding=pad, bias=True)
        layers[f"bn{name}"] = nn.BatchNorm2d(c_out)
        layers[f"relu{name}"] = nn.ReLU(inplace=False)
    return nn.Sequential(layers)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            caffe_xavier_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _bn_as_affine(x: torch.Tensor, bn: nn.BatchNorm1d) -> torch.Tensor:
    """Apply an eval-mode BatchNorm1d to the channel axis of a 4-D tensor."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


class DeadNet(nn.Module):
    """The paper's network: conv trunk + two 512-unit fully connected layers + 2-way output."""

    arch_name = "deadnet"

    def __init__(self, n_classes: int = 2, dropout: float = 0.5, softmax_output: bool = False) -> None:
        super().__init__()
        self.softmax_output = softmax_output
        self.features = build_trunk()
        flat = TRUNK_CHANNELS * TRUNK_SIDE * TRUNK_SIDE
        self.fc1 = nn.Linear(flat, 512)
        self.bn_fc1 = nn.BatchNorm1d(512)
        self.fc2 = nn.Linear(512, 512)
        self.bn_fc2 = nn.BatchNorm1d(512)
        self.fc3 = nn.Linear(512, n_classes)
        self.dropout = nn.Dropout(dropout)
        _init(self)

    def config(self) -> dict:
        """Constructor arguments that change the computation (saved with the weights)."""
        return {}

    def head(self, feat: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of 128x14x14 trunk outputs."""
        x = torch.flatten(feat, 1)
        x = self.dropout(F.relu(self.bn_fc1(self.fc1(x))))
        x = self.dropout(F.relu(self.bn_fc2(self.fc2(x))))
        return self.fc3(x)

    def dense_head(self, feat: torch.Tensor) -> torch.Tensor:
        """Logit map: fc1 as a 14x14 convolution, fc2/fc3 as 1x1 convolutions (eval mode)."""
        w1 = self.fc1.weight.view(512, TRUNK_CHANNELS, TRUNK_SIDE, TRUNK_SIDE)
        x = F.relu(_bn_as_affine(F.conv2d(feat, w1, self.fc1.bias), self.bn_fc1))
        x = F.relu(_bn_as_affine(F.conv2d(x, self.fc2.weight[:, :, None, None], self.fc2.bias), self.bn_fc2))
        return F.conv2d(x, self.fc3.weight[:, :, None, None], self.fc3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(x))
        return torch.softmax(logits, dim=1) if self.softmax_output else logits


class DeadNetGAP(nn.Module):
    """Compact DeadNet: the same trunk, average-pooled, then one linear layer.

    The pool covers the central ``(14 - 2 * border)`` squared cells of the 14x14 conv4 map. With
    ``border=3`` (8x8 cells) no pooled cell sees the zero padding at the crop's edge or Caffe's
    ceil-mode pooling remainder, so the dense map (one pass over the whole frame) computes exactly
    what the crops compute, up to normalisation.
    """

    arch_name = "deadnet-gap"

    def __init__(self, n_classes: int = 2, dropout: float = 0.5, softmax_output: bool = False, border: int = 3) -> None:
        super().__init__()
        if not 0 <= border < TRUNK_SIDE // 2:
            raise ValueError(f"border must be 0..{TRUNK_SIDE // 2 - 1}, got {border}")
        self.softmax_output = softmax_output
        self.border = border
        self.features = build_trunk()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(TRUNK_CHANNELS, n_classes)
        _init(self)

    def config(self) -> dict:
        """Constructor arguments that change the computation (saved with the weights)."""
        return {"border": self.border}

    def head(self, feat: torch.Tensor) -> torch.Tensor:
        b = self.border
        inner = feat[:, :, b : feat.shape[2] - b, b : feat.shape[3] - b]
        return self.fc(self.dropout(inner.mean(dim=(2, 3))))

    def dense_head(self, feat: torch.Tensor) -> torch.Tensor:
        b = self.border
        inner = feat[:, :, b : feat.shape[2] - b, b : feat.shape[3] - b]
        pooled = F.avg_pool2d(inner, TRUNK_SIDE - 2 * b, stride=1)
        return F.conv2d(pooled, self.fc.weight[:, :, None, None], self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(x))
        return torch.softmax(logits, dim=1) if self.softmax_output else logits


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    DeadNet.arch_name: DeadNet,
    DeadNetGAP.arch_name: DeadNetGAP,
}
DEFAULT_ARCH = DeadNetGAP.arch_name


def build_model(arch: str = DEFAULT_ARCH, **kwargs) -> nn.Module:
    """Instantiate a registered architecture by name."""
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {arch!r}; known: {known}") from None
    return factory(**kwargs)


def architecture_config(model: nn.Module) -> dict:
    """``model.config()``: the constructor arguments a registered architecture saves with its weights."""
    config = getattr(model, "config", None)
    if not callable(config):
        raise TypeError(f"{type(model).__name__} is not a phototox architecture (it has no config())")
    return config()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
