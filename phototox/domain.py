"""The domain check: is this image like the ones the model learned from?

Score: the Mahalanobis distance of each window's trunk features -- the mean and spread of the 64
conv3_2 channels plus the 128 conv4 channels averaged over the cells the head pools (the vector the
classifier's last layer reads) -- to the mean and covariance of the training windows' features
(Ledoit-Wolf shrinkage, so 256 dimensions are estimated stably from a few hundred windows),
divided by sqrt(256) so that a
typical in-domain window scores about 1. An image's score is the median over a fixed grid of
non-overlapping windows (at most ``MAX_WINDOWS``), so a few odd windows (a bubble, an edge) do not
flag a field, but a field that is odd throughout does. (Chosen on celldeath: conv4 means alone
left inverted-contrast fields below the threshold; adding conv3 texture statistics separated all
six kinds of strange image in benchmarks/bench_domain.py.)

Threshold: leave-one-image-out over the fitting images (each image scored by statistics fitted
without it), then ``max * (1 + MARGIN)``. The statistics, threshold and how they were made live in
the model file's ``meta["domain"]``; :func:`compute_domain_stats` makes them for a new model (call
it at training time with the training images) and ``phototox calibrate`` refits them on a user's
own control fields.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import torch

from .errors import PhototoxError
from .normalise import normalise_windows
from .shapes import plane_shape
from .windows import window_origins

MAX_WINDOWS = 48
MARGIN = 0.10
FEATURE = "conv3_2 mean+std and pooled conv4 mean, per 220 px window, under the model's preprocessing contract"
MIN_IMAGES = 3


def window_grid(shape: tuple[int, int], window: int, max_windows: int = MAX_WINDOWS) -> list[tuple[int, int]]:
    """Origins of non-overlapping windows covering a frame, evenly thinned to ``max_windows``."""
    ys = window_origins(shape[0], window, window)
    xs = window_origins(shape[1], window, window)
    # centre the grid so both borders lose the same margin
    ys = ys + (shape[0] - (ys[-1] + window)) // 2
    xs = xs + (shape[1] - (xs[-1] + window)) // 2
    positions = [(int(y), int(x)) for y in ys for x in xs]
    if len(positions) > max_windows:
        keep = np.linspace(0, len(positions) - 1, max_windows).round().astype(int)
        positions = [positions[i] for i in keep]
    return positions


@torch.no_grad()
def window_features(predictor, frame: np.ndarray, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """(n_windows, 256) trunk features of a frame already at the model's scale.

    Per window: the mean and standard deviation over space of the 64 conv3_2 channels (texture at
    the cell scale) and the mean of the 128 conv4 channels over the cells the head pools.
    """
    module = predictor.model.module
    trunk = getattr(module, "features", None)
    layers: dict[str, torch.nn.Module] = dict(trunk.named_children()) if trunk is not None else {}
    if not {"relu3_2", "pool4"} <= set(layers):
        raise PhototoxError(f"model {predictor.model.source} exposes no DeadNet trunk; no domain check")
    w = predictor.window
    contract = predictor.contract
    tensor = torch.from_numpy(predictor.normalised_frame(frame))
    crops = torch.stack([tensor[y : y + w, x : x + w] for y, x in window_grid(plane_shape(frame), w, max_windows)])
    border = int(getattr(module, "border", 0))
    out = []
    for start in range(0, len(crops), predictor.batch_size):
        x = normalise_windows(crops[start : start + predictor.batch_size], contract).to(predictor.device)[:, None]
        conv3 = x  # replaced by the relu3_2 output, which the check above guarantees
        for name, layer in layers.items():
            x = layer(x)
            if name == "relu3_2":
                conv3 = x
        inner = x[:, :, border : x.shape[2] - border, border : x.shape[3] - border]
        out.append(
            torch.cat([conv3.mean(dim=(2, 3)), conv3.std(dim=(2, 3)), inner.mean(dim=(2, 3))], 1).float().cpu().numpy()
        )
    return np.concatenate(out).astype(np.float64)


@dataclass
class DomainStats:
    """Mean and precision of in-domain window features, and the image-score threshold."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def window_scores(self, features: np.ndarray) -> np.ndarray:
        diff = features - self.mean
        d2 = np.einsum("ij,jk,ik->i", diff, self.precision, diff)
        return np.sqrt(np.maximum(d2, 0.0) / features.shape[1])

    def image_score(self, features: np.ndarray) -> float:
        return float(np.median(self.window_scores(features)))

    @classmethod
    def from_meta(cls, meta: dict) -> DomainStats | None:
        d = meta.get("domain")
        if not isinstance(d, dict) or "mean" not in d:
            return None
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["precision"], np.float64), float(d["threshold"]))


def fit_gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Ledoit-Wolf-shrunk precision matrix of (n, d) features."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(features)
    return lw.location_, lw.precision_


def fit_domain(per_image: list[np.ndarray], margin: float = MARGIN) -> tuple[DomainStats, dict]:
    """Fit statistics on all images' windows; threshold from leave-one-image-out scores."""
    if len(per_image) < MIN_IMAGES:
        raise PhototoxError(f"domain statistics need at least {MIN_IMAGES} images, got {len(per_image)}")
    loo = []
    for i in range(len(per_image)):
        mean, precision = fit_gaussian(np.concatenate([f for j, f in enumerate(per_image) if j != i]))
        loo.append(DomainStats(mean, precision, np.inf).image_score(per_image[i]))
    mean, precision = fit_gaussian(np.concatenate(per_image))
    threshold = float(max(loo) * (1 + margin))
    report = {
        "loo_scores": [round(float(s), 4) for s in loo],
        "margin": margin,
        "rule": f"max leave-one-image-out score x {1 + margin:g}",
    }
    return DomainStats(mean, precision, threshold), report


def domain_meta(
    stats: DomainStats, report: dict, fitted_on: str, n_images: int, n_windows: int, pixel_size_um: float | None
) -> dict:
    """The ``meta["domain"]`` entry of a model file."""
    return {
        "feature": FEATURE,
        "aggregate": "median over windows",
        "mean": stats.mean.round(6).tolist(),
        "precision": stats.precision.round(6).tolist(),
        "threshold": round(stats.threshold, 4),
        "fitted_on": fitted_on,
        "n_images": n_images,
        "n_windows": n_windows,
        "pixel_size_um": pixel_size_um,
        "made": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **report,
    }


def compute_domain_stats(
    predictor, images: list, fitted_on: str, pixel_size_um: float | None = None, margin: float = MARGIN
) -> dict:
    """``meta["domain"]`` for a model from in-domain images already at the model's pixel size.

    Each item of ``images`` is one field: a 2-D frame, or a list/stack of frames of the same field
    (one leave-one-out unit). Call it at training time with the training images (never the
    validation ones, which are the test of the threshold).
    """
    per_image = []
    for item in images:
        frames = [item] if np.ndim(item) == 2 else list(item)
        per_image.append(np.concatenate([window_features(predictor, f) for f in frames]))
    stats, report = fit_domain(per_image, margin)
    return domain_meta(stats, report, fitted_on, len(per_image), int(sum(len(f) for f in per_image)), pixel_size_um)


def domain_warning(source: str, score: float, threshold: float) -> str:
    """The one-line CLI warning for an out-of-domain image."""
    return (
        f"phototox: warning: {source}: OUT OF DOMAIN (score {score:.2f} > {threshold:.2f}): "
        "unlike the model's training images; its P(sick) is not to be trusted"
    )
