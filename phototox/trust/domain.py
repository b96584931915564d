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

from phototox.errors import PhototoxError
from phototox.trust.domain_pass import FEATURE as ONE_PASS
from phototox.trust.domain_pass import window_features
from phototox.trust.domain_windows import WindowFeatures, domain_features

MARGIN = 0.10
FEATURE = "conv3_2 mean+std and pooled conv4 mean, per 220 px window, under the model's preprocessing contract"
FINE_DETAIL = (
    "log(energy at 4-16 px periods / energy at 32-128 px periods) of each Hann-tapered window under the "
    "model's preprocessing contract, median over windows"
)
MIN_IMAGES = 3
ALPHA = 0.05
"""Default false-alarm rate of a control-fitted (conformal) domain threshold."""


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
    feature: str = FEATURE
    """the feature the statistics were fitted on: :data:`FEATURE` (two passes) or the one-pass one
    (:data:`phototox.trust.domain_pass.FEATURE`)"""

    @property
    def one_pass(self) -> bool:
        """Fitted on the one-pass feature (:mod:`phototox.trust.domain_pass`): the dense pass can give it."""
        return self.feature == ONE_PASS

    def features(self, predictor, frame: np.ndarray) -> WindowFeatures:
        """The features of ``frame`` (at the model's scale) these statistics were fitted on, window by window."""
        if self.one_pass:
            return window_features(predictor, frame)
        return domain_features(predictor, frame)

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
            str(d.get("feature", FEATURE)),
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
    feature: str = FEATURE,
) -> dict:
    """The ``meta["domain"]`` entry of a model file."""
    return {
        "feature": feature,
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
    one_pass: bool | None = None,
) -> dict:
    """``meta["domain"]`` for a model from in-domain images already at the model's pixel size.

    Each item of ``images`` is one field: a 2-D frame, or a list/stack of frames of the same field
    (one leave-one-out unit). Call it at training time with the training images (never the
    validation ones, which are the test of the threshold). ``on_controls``: the images are a user's
    control fields and ``base_fine_detail`` the base model's ``fine_detail`` entry, if any
    (:func:`fit_fine_detail`); their trunk threshold is then conformal at false-alarm rate ``alpha``.
    ``one_pass`` (default: for box-contract models, whose dense pass can give it) fits the one-pass
    feature (:mod:`phototox.trust.domain_pass`), else the two-pass :data:`FEATURE`.
    """
    if one_pass is None:
        one_pass = predictor.contract.kind == "box"
    compute = window_features if one_pass else domain_features
    per_image, fine = [], []
    for item in images:
        frames = [item] if np.ndim(item) == 2 else list(item)
        features = [compute(predictor, f) for f in frames]
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
        ONE_PASS if one_pass else FEATURE,
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
