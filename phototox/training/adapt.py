"""Adapting a model to a user's cells from a few labelled windows: frozen trunk, new linear head.

DeadNet (Richmond et al., 2017, arXiv:1701.06109) met the same need for its second data set with
expert annotation; here a few hundred votes from ``phototox annotate serve --suggest`` suffice.

Choice (issue 26): the trunk stays frozen and only the last layer is refitted, as an
L2-regularised logistic regression on the 128 pooled conv4 features the ``deadnet-gap`` head
reads (:func:`head_features`). Why: (1) it runs in seconds on 2 CPU cores (features once, then a
128-dimensional convex fit), so a learning curve and leave-one-field-out refits cost nothing;
(2) with 25-400 labels a convex fit of 129 numbers cannot memorise a batch the way fine-tuning
13k-300k weights can; (3) the trunk is unchanged, so the model's domain statistics (and a
``calibrate``-d domain threshold) stay valid; (4) the fit is written into the model's own ``fc``
layer (``logit_sick - logit_healthy = w . f + b``), so the result is a normal phototox weight file:
dense maps, CellProfiler, Fiji, serve and the zoo package use it unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from phototox.errors import PhototoxError
from phototox.maps.normalise import normalise_windows

FEATURES = "mean of the 128 conv4 channels over the cells the deadnet-gap head pools (the head's input)"
DEFAULT_C = 0.1
"""Inverse L2 strength of the logistic head on standardised features (fixed, not tuned per user)."""


def _check_gap(module) -> int:
    """The pooling border of a deadnet-gap module, or a one-line refusal."""
    if not hasattr(module, "fc") or not hasattr(module, "border") or not hasattr(module, "features"):
        raise PhototoxError(
            "adapting needs a deadnet-gap model (trunk + one linear layer); this model has another head"
        )
    return int(module.border)


@torch.no_grad()
def head_features(predictor, frame: np.ndarray, positions: list[tuple[int, int]]) -> np.ndarray:
    """(n, 128) head inputs of the windows at ``positions`` of ``frame`` (already at the model's scale).

    Windows are cut from the frame normalised under the model's contract, exactly as maps cut them.
    """
    module = predictor.model.module
    border = _check_gap(module)
    w = predictor.window
    if not positions:
        return np.zeros((0, int(module.fc.in_features)))
    tensor = torch.from_numpy(np.ascontiguousarray(predictor.normalised_frame(frame)))
    out = []
    for start in range(0, len(positions), predictor.batch_size):
        chunk = positions[start : start + predictor.batch_size]
        crops = torch.stack([tensor[y : y + w, x : x + w] for y, x in chunk])
        x = normalise_windows(crops, predictor.contract)[:, None].to(predictor.device)
        feat = module.features(x)
        inner = feat[:, :, border : feat.shape[2] - border, border : feat.shape[3] - border]
        out.append(inner.mean(dim=(2, 3)).double().cpu().numpy())
    return np.concatenate(out)


def base_p_sick(module, features: np.ndarray) -> np.ndarray:
    """P(sick) of the model's own head on head features (eval mode: dropout off)."""
    fc = module.fc
    weight = fc.weight.detach().double().cpu().numpy()
    bias = fc.bias.detach().double().cpu().numpy()
    logits = features @ weight.T + bias
    return 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))


@dataclass
class LinearHead:
    """``P(sick) = sigmoid(features . weight + bias)`` in raw (unstandardised) feature units."""

    weight: np.ndarray
    bias: float
    c: float

    def p_sick(self, features: np.ndarray) -> np.ndarray:
        z = np.asarray(features, dtype=float) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def fit_head(features: np.ndarray, labels: np.ndarray, c: float = DEFAULT_C) -> LinearHead:
    """Logistic regression (balanced classes, L2 on standardised features) folded back to raw units."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=float)
    y = np.asarray(labels, dtype=int)
    if len(x) != len(y) or len(x) == 0:
        raise PhototoxError("no labelled windows to fit a head on")
    if len(set(y.tolist())) < 2:
        raise PhototoxError(
            f"all {len(y)} labelled windows are {('healthy', 'sick')[int(y[0])]}: a head needs both labels"
        )
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    model.fit((x - mean) / scale, y)
    w = model.coef_[0] / scale
    return LinearHead(w, float(model.intercept_[0] - np.sum(w * mean)), c)


def adapted_module(module, head: LinearHead):
    """A copy of ``module`` whose ``fc`` computes ``head`` (healthy logit 0, sick logit ``w . f + b``)."""
    _check_gap(module)
    new = copy.deepcopy(module).cpu().eval()
    with torch.no_grad():
        new.fc.weight.zero_()
        new.fc.bias.zero_()
        new.fc.weight[1] = torch.from_numpy(head.weight).to(new.fc.weight.dtype)
        new.fc.bias[1] = float(head.bias)
    return new


def adapted_meta(base_meta: dict, adaptation: dict, card: str) -> dict:
    """The new file's metadata: the base model's scale, contract, quality and domain (trunk unchanged).

    The base model's ``calibration`` (control P(sick) under the old head) is not carried: it no
    longer describes this head; it is recorded inside ``adaptation`` for provenance.
    """
    keep = ("normalisation", "pixel_size_um", "quality", "domain", "citations")
    meta = {k: base_meta[k] for k in keep if k in base_meta}
    meta["adaptation"] = adaptation
    meta["model_card"] = card
    return meta
