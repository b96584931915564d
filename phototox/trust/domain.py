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
without it), then ``max * (1 + MARGIN)`` for training images. On a user's control fields
(``phototox calibrate``) it is conformal (:func:`conformal_threshold`): the
``ceil((k + 1)(1 - alpha))``-th smallest of the k held-out field scores, so that a new field like
the controls is flagged with probability at most ``alpha`` (or ``1/(k + 1)``, the least k fields can
reach), and each image gets a p-value ``(1 + #held-out field scores >= its score) / (k + 1)``. (The
held-out scores come from statistics fitted on k - 1 fields, a new image's from all k: slightly
conservative.)

Fine detail, a second, one-sided check for a pixel size given too fine (cells look smaller than the
model learned them): the trunk is tolerant of scale (the retrain's resampling jitter taught it
so), and 2 of 11 fields made 4x too coarse scored just under its threshold. Per window,
``log(energy at 4-16 px periods / energy at 32-128 px periods)`` of the normalised, Hann-tapered
window: detail within cells against the scale of whole cells (1.7-7 um against 14-56 um at
0.434 um/px); an image's value is the median over the same windows. The limit is the fitting
images' largest value plus ``MARGIN`` of their range. Only the upper side is checked: an image of
lower resolution upsampled to the model's scale has legitimately less fine detail, and blur beyond
that is left to the trunk score and the ``out_of_focus`` flag. Damage raises fine detail too
(fragmenting cells; celldeath's sick fields lie higher than its healthy ones), so refitted on a
user's healthy control fields the limit allows the base model's whole training range above the
controls: after ``calibrate`` it catches only gross scale errors.

``out_of_domain`` is either check failing. Few windows (an image smaller than about 2x2 windows)
make both checks noisier. The statistics, threshold, limit and how they were made live in the
model file's ``meta["domain"]``; :func:`compute_domain_stats` makes them for a new model (call it
at training time with the training images) and ``phototox calibrate`` refits them on a user's own
control fields.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

import numpy as np
import torch

from phototox.errors import PhototoxError
from phototox.maps.normalise import normalise_windows
from phototox.maps.windows import window_origins
from phototox.shapes import plane_shape

MAX_WINDOWS = 48
MARGIN = 0.10
FEATURE = "conv3_2 mean+std and pooled conv4 mean, per 220 px window, under the model's preprocessing contract"
FINE_DETAIL = (
    "log(energy at 4-16 px periods / energy at 32-128 px periods) of each Hann-tapered window under the "
    "model's preprocessing contract, median over windows"
)
FINE_BAND = (1 / 16, 1 / 4)  # cycles per pixel: detail within cells
COARSE_BAND = (1 / 128, 1 / 32)  # cycles per pixel: the scale of whole cells
MIN_IMAGES = 3
ALPHA = 0.05
"""Default false-alarm rate of a control-fitted (conformal) domain threshold."""


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


def _contract_windows(predictor, frame: np.ndarray, max_windows: int):
    """Batches of the grid's windows, normalised as the network receives them, (n, 1, w, w)."""
    w = predictor.window
    tensor = torch.from_numpy(predictor.normalised_frame(frame))
    crops = torch.stack([tensor[y : y + w, x : x + w] for y, x in window_grid(plane_shape(frame), w, max_windows)])
    for start in range(0, len(crops), predictor.batch_size):
        yield normalise_windows(crops[start : start + predictor.batch_size], predictor.contract)[:, None]


def fine_detail(windows: torch.Tensor) -> np.ndarray:
    """Per window of (n, 1, h, w): ``log(fine-band energy / coarse-band energy)`` (:data:`FINE_DETAIL`)."""
    x = windows[:, 0].double()
    x = x - x.mean(dim=(1, 2), keepdim=True)
    h, w = x.shape[1:]
    taper = torch.outer(
        torch.hann_window(h, periodic=False, dtype=torch.float64),
        torch.hann_window(w, periodic=False, dtype=torch.float64),
    )
    power = torch.fft.rfft2(x * taper).abs() ** 2
    radius = torch.sqrt(
        torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
        + torch.fft.rfftfreq(w, dtype=torch.float64)[None, :] ** 2
    )

    def energy(band: tuple[float, float]) -> torch.Tensor:
        return power[:, (radius > band[0]) & (radius <= band[1])].sum(1)

    tiny = torch.finfo(torch.float64).tiny
    return torch.log((energy(FINE_BAND) + tiny) / (energy(COARSE_BAND) + tiny)).numpy()


@dataclass
class WindowFeatures:
    """A frame's domain features: trunk features (n_windows, 256) and fine detail (n_windows,)."""

    trunk: np.ndarray
    fine_detail: np.ndarray


@torch.no_grad()
def domain_features(predictor, frame: np.ndarray, max_windows: int = MAX_WINDOWS) -> WindowFeatures:
    """Both checks' features of a frame already at the model's scale, from one pass over its windows.

    Trunk features per window: the mean and standard deviation over space of the 64 conv3_2
    channels (texture at the cell scale) and the mean of the 128 conv4 channels over the cells the
    head pools.
    """
    module = predictor.model.module
    trunk = getattr(module, "features", None)
    layers: dict[str, torch.nn.Module] = dict(trunk.named_children()) if trunk is not None else {}
    if not {"relu3_2", "pool4"} <= set(layers):
        raise PhototoxError(f"model {predictor.model.source} exposes no DeadNet trunk; no domain check")
    border = int(getattr(module, "border", 0))
    trunk_out, fine_out = [], []
    for batch in _contract_windows(predictor, frame, max_windows):
        fine_out.append(fine_detail(batch))
        x = batch.to(predictor.device)
        conv3 = x  # replaced by the relu3_2 output, which the check above guarantees
        for name, layer in layers.items():
            x = layer(x)
            if name == "relu3_2":
                conv3 = x
        inner = x[:, :, border : x.shape[2] - border, border : x.shape[3] - border]
        trunk_out.append(
            torch.cat([conv3.mean(dim=(2, 3)), conv3.std(dim=(2, 3)), inner.mean(dim=(2, 3))], 1).float().cpu().numpy()
        )
    return WindowFeatures(np.concatenate(trunk_out).astype(np.float64), np.concatenate(fine_out))


@dataclass
class DomainVerdict:
    """One image's domain check: trunk score, fine detail, and whether either lies outside."""

    score: float
    threshold: float
    fine_detail: float
    fine_detail_limit: float | None  # None: a model fitted before this check
    p_value: float | None = None
    """conformal p-value against the held-out control fields (control-fitted domains only)"""

    @property
    def too_fine(self) -> bool:
        return self.fine_detail_limit is not None and self.fine_detail > self.fine_detail_limit

    @property
    def out_of_domain(self) -> bool:
        return self.score > self.threshold or self.too_fine

    def fields(self) -> dict:
        """The result-row fields of this verdict (fine detail blank for models without its limit)."""
        limit = self.fine_detail_limit
        return {
            "domain_score": round(self.score, 4),
            "domain_threshold": round(self.threshold, 4),
            "fine_detail": None if limit is None else round(self.fine_detail, 4),
            "fine_detail_limit": None if limit is None else round(limit, 4),
            "out_of_domain": self.out_of_domain,
            "domain_p_value": None if self.p_value is None else round(self.p_value, 4),
        }


@dataclass
class DomainStats:
    """Mean and precision of in-domain window features, the image-score threshold and fine-detail limit."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    fine_detail_limit: float | None = None
    field_scores: np.ndarray | None = None
    """held-out control field scores of a conformal (control-fitted) threshold, else None"""

    def p_value(self, score: float) -> float | None:
        """``(1 + #held-out control field scores >= score) / (k + 1)``; None without control fields."""
        if self.field_scores is None:
            return None
        return float((1 + np.sum(self.field_scores >= score)) / (self.field_scores.size + 1))

    def window_scores(self, features: np.ndarray) -> np.ndarray:
        diff = features - self.mean
        d2 = np.einsum("ij,jk,ik->i", diff, self.precision, diff)
        return np.sqrt(np.maximum(d2, 0.0) / features.shape[1])

    def image_score(self, features: np.ndarray) -> float:
        return float(np.median(self.window_scores(features)))

    def verdict(self, features: WindowFeatures) -> DomainVerdict:
        """Both checks on one image's features."""
        score = self.image_score(features.trunk)
        return DomainVerdict(
            score, self.threshold, float(np.median(features.fine_detail)), self.fine_detail_limit, self.p_value(score)
        )

    @classmethod
    def from_meta(cls, meta: dict) -> DomainStats | None:
        d = meta.get("domain")
        if not isinstance(d, dict) or "mean" not in d:
            return None
        fine = d.get("fine_detail")
        limit = float(fine["limit"]) if isinstance(fine, dict) and fine.get("limit") is not None else None
        held_out = d.get("loo_scores") if isinstance(d.get("conformal"), dict) else None
        return cls(
            np.asarray(d["mean"], np.float64),
            np.asarray(d["precision"], np.float64),
            float(d["threshold"]),
            limit,
            None if held_out is None else np.asarray(held_out, np.float64),
        )


def fit_gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Ledoit-Wolf-shrunk precision matrix of (n, d) features."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(features)
    return lw.location_, lw.precision_


def conformal_threshold(scores: np.ndarray | list[float], alpha: float = ALPHA) -> dict:
    """The ``ceil((k + 1)(1 - alpha))``-th smallest of k held-out field scores, or their max when k is too small.

    Returns the threshold, its rank, and the false-alarm rate reachable with k fields,
    ``1 - rank / (k + 1)`` (at most ``alpha``; ``1 / (k + 1)`` when the rank is capped at k).
    """
    if not 0 < alpha < 1:
        raise PhototoxError(f"false-alarm rate alpha must lie between 0 and 1, got {alpha}")
    ordered = np.sort(np.asarray(scores, np.float64))
    k = ordered.size
    wanted = math.ceil(round((k + 1) * (1 - alpha), 9))
    rank = min(wanted, k)
    rate = 1 - rank / (k + 1)
    return {
        "alpha": alpha,
        "n_fields": k,
        "rank": rank,
        "threshold": float(ordered[rank - 1]),
        "false_alarm_rate": round(rate, 4),
        "note": (
            f"{rank}-th of {k} held-out field scores: a new field like the controls is flagged with probability "
            f"at most {rate:.3f}"
            + (
                f" (alpha {alpha:g} needs at least {math.ceil(round((1 - alpha) / alpha, 9))} control fields; "
                f"{k} reach {rate:.3f})"
                if wanted > k
                else ""
            )
        ),
    }


def fit_domain(
    per_image: list[np.ndarray], margin: float = MARGIN, alpha: float | None = None
) -> tuple[DomainStats, dict]:
    """Fit statistics on all images' windows; threshold from leave-one-image-out scores.

    ``alpha`` None: ``max * (1 + margin)`` (training images); else the conformal threshold at
    false-alarm rate ``alpha`` (:func:`conformal_threshold`; control fields).
    """
    if len(per_image) < MIN_IMAGES:
        raise PhototoxError(f"domain statistics need at least {MIN_IMAGES} images, got {len(per_image)}")
    loo = []
    for i in range(len(per_image)):
        mean, precision = fit_gaussian(np.concatenate([f for j, f in enumerate(per_image) if j != i]))
        loo.append(DomainStats(mean, precision, np.inf).image_score(per_image[i]))
    mean, precision = fit_gaussian(np.concatenate(per_image))
    report: dict = {"loo_scores": [round(float(s), 4) for s in loo]}
    if alpha is None:
        threshold = float(max(loo) * (1 + margin))
        report |= {"margin": margin, "rule": f"max leave-one-image-out score x {1 + margin:g}"}
        return DomainStats(mean, precision, threshold), report
    conformal = conformal_threshold(report["loo_scores"], alpha)
    report |= {"conformal": conformal, "rule": "conformal: " + conformal["note"] + " (leave-one-field-out)"}
    return DomainStats(mean, precision, conformal["threshold"], field_scores=np.asarray(report["loo_scores"])), report


def fit_fine_detail(
    per_image: list[float], base_range: float | None = None, margin: float = MARGIN, on_controls: bool = False
) -> dict:
    """The fine-detail limit of images of known good scale.

    Training images (both classes): the largest value plus ``margin`` of their range. Control
    fields (``on_controls``): the largest value plus ``(1 + margin) * base_range``, the base model's
    training range, because healthy controls cannot show the finer detail of damaged, fragmenting
    cells (celldeath's sick training fields reach 0.6 higher than its healthy ones, phototox.synth.fields's
    most damaged about 1.5 higher than its undamaged): the check then catches only gross scale
    errors. Control fields of a base model that records no range get no limit (``limit`` None).
    """
    values = np.asarray(per_image, np.float64)
    spread = float(values.max() - values.min())
    entry: dict = {
        "statistic": FINE_DETAIL,
        "range": [round(float(values.min()), 4), round(float(values.max()), 4)],
    }
    if on_controls and base_range is None:
        return {
            **entry,
            "limit": None,
            "range_used": None,
            "rule": "no limit: the base model records no fine-detail range, and healthy control fields alone "
            "cannot bound the finer detail of damaged cells; the trunk score alone decides",
        }
    if base_range is not None and on_controls:
        range_used, factor = base_range, 1 + margin
        rule = f"largest control field + {factor:g} x the base model's training range ({base_range:.4f})"
    else:
        range_used, factor = spread, margin
        rule = f"largest fitting image + {margin:g} x their range"
    return {
        **entry,
        "limit": round(float(values.max() + factor * range_used), 4),
        "range_used": round(range_used, 4),
        "rule": rule + " (one-sided: flags finer detail only)",
    }


def domain_meta(
    stats: DomainStats,
    report: dict,
    fitted_on: str,
    n_images: int,
    n_windows: int,
    pixel_size_um: float | None,
    fine: dict,
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
        "fine_detail": fine,
    }


def compute_domain_stats(
    predictor,
    images: list,
    fitted_on: str,
    pixel_size_um: float | None = None,
    margin: float = MARGIN,
    base_fine_detail: dict | None = None,
    on_controls: bool = False,
    alpha: float = ALPHA,
) -> dict:
    """``meta["domain"]`` for a model from in-domain images already at the model's pixel size.

    Each item of ``images`` is one field: a 2-D frame, or a list/stack of frames of the same field
    (one leave-one-out unit). Call it at training time with the training images (never the
    validation ones, which are the test of the threshold). ``on_controls``: the images are a user's
    control fields and ``base_fine_detail`` the base model's ``fine_detail`` entry, if any
    (:func:`fit_fine_detail`); their trunk threshold is then conformal at false-alarm rate ``alpha``.
    """
    per_image, fine = [], []
    for item in images:
        frames = [item] if np.ndim(item) == 2 else list(item)
        features = [domain_features(predictor, f) for f in frames]
        per_image.append(np.concatenate([f.trunk for f in features]))
        fine.append(float(np.median(np.concatenate([f.fine_detail for f in features]))))
    stats, report = fit_domain(per_image, margin, alpha if on_controls else None)
    base_range = (base_fine_detail or {}).get("range_used")
    base_range = None if base_range is None else float(base_range)
    return domain_meta(
        stats,
        report,
        fitted_on,
        len(per_image),
        int(sum(len(f) for f in per_image)),
        pixel_size_um,
        fit_fine_detail(fine, base_range, margin, on_controls),
    )


def domain_warning(source: str, verdict: DomainVerdict) -> str:
    """The one-line CLI warning for an out-of-domain image, naming the check(s) that failed."""
    reasons = []
    if verdict.score > verdict.threshold:
        reasons.append(f"score {verdict.score:.2f} > {verdict.threshold:.2f}")
    if verdict.too_fine:
        reasons.append(
            f"fine detail {verdict.fine_detail:.2f} > {verdict.fine_detail_limit:.2f}: finer than the model knows, "
            "as if the cells were smaller; is the pixel size right?"
        )
    return (
        f"phototox: warning: {source}: OUT OF DOMAIN ({'; '.join(reasons)}): "
        "unlike the model's training images; its P(sick) is not to be trusted"
    )
