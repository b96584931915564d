"""Acquisition statistics of an image, and a nuisance baseline that predicts labels from them alone.

If brightness, contrast, focus or noise spectrum separate the classes of a training set, a
network can learn the microscope or the batch instead of the cells. The *nuisance baseline* is a
ridge-regularised logistic regression on a handful of acquisition statistics (no cell morphology)
evaluated with grouped cross-validation (no group on both sides); its AUC, with a bootstrap
interval over groups (stratified by label, percentile), says how much of the label such cues alone give away. An AUC near 0.5 is
reassuring; near 1 the data cannot tell biology from acquisition by accuracy alone.

Statistics (each documented in :data:`FEATURES`) are computed on the middle frame of each
manifest row's frame range, as the evaluation crops are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from phototox.io.images import read_frames
from phototox.io.manifest import Sample
from phototox.stats.bootstrap import Interval

FEATURES: dict[str, str] = {
    "mean": "mean intensity",
    "p01": "1st percentile of intensity",
    "p50": "median intensity",
    "p99": "99th percentile of intensity",
    "contrast_cv": "contrast: standard deviation / mean",
    "contrast_range": "contrast: (p99 - p1) / median",
    "sharpness": "sharpness: log variance of the Laplacian of the std-normalised image",
    "spectral_slope": "slope of log radial power spectrum against log frequency (0.02-0.45 cycles/px)",
    "high_freq_energy": "fraction of spectral power above 0.25 cycles/px (noise, fine texture)",
    "saturation": "fraction of pixels at the image's minimum or maximum value (clipping)",
}


def acquisition_statistics(frame: np.ndarray) -> dict[str, float]:
    """The :data:`FEATURES` of one 2-D frame (float or integer)."""
    img = np.asarray(frame, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError("acquisition statistics need a 2-D frame of at least 8x8 pixels")
    p01, p50, p99 = np.percentile(img, [1, 50, 99])
    mean, std = float(img.mean()), float(img.std())
    safe = max(abs(p50), 1e-12)
    normalised = (img - mean) / max(std, 1e-12)
    lap_var = float(ndimage.laplace(normalised).var())
    slope, high = _spectrum(normalised)
    lo, hi = img.min(), img.max()
    saturation = float(np.mean(img == hi) + np.mean(img == lo)) if hi > lo else 1.0
    return {
        "mean": mean,
        "p01": float(p01),
        "p50": float(p50),
        "p99": float(p99),
        "contrast_cv": std / max(abs(mean), 1e-12),
        "contrast_range": float((p99 - p01) / safe),
        "sharpness": float(np.log(max(lap_var, 1e-12))),
        "spectral_slope": slope,
        "high_freq_energy": high,
        "saturation": saturation,
    }


def _spectrum(normalised: np.ndarray, max_side: int = 1024) -> tuple[float, float]:
    """Radial power-spectrum slope and high-frequency energy fraction (Hann-windowed)."""
    img = normalised[:max_side, :max_side]
    h, w = img.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2(img * window))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    edges = np.linspace(0.02, 0.45, 24)
    index = np.digitize(radius.ravel(), edges)
    sums = np.bincount(index, power.ravel(), minlength=len(edges) + 1)[1 : len(edges)]
    counts = np.bincount(index, minlength=len(edges) + 1)[1 : len(edges)]
    centres = (edges[:-1] + edges[1:]) / 2
    ok = (counts > 0) & (sums > 0)
    slope = float(np.polyfit(np.log(centres[ok]), np.log(sums[ok] / counts[ok]), 1)[0]) if ok.sum() >= 2 else 0.0
    inside = radius <= 0.5
    total = power[inside].sum()
    high = float(power[inside & (radius > 0.25)].sum() / total) if total > 0 else 0.0
    return slope, high


def sample_statistics(samples: list[Sample], indices: list[int] | None = None) -> np.ndarray:
    """(n, len(FEATURES)) statistics of the chosen samples' middle frames."""

    rows = []
    for i in range(len(samples)) if indices is None else indices:
        s = samples[i]
        frames = read_frames(s.path, colour="luminance", min_size=8)
        first, last = s.frames if s.frames is not None else (0, len(frames) - 1)
        frame = frames[min((first + last) // 2, len(frames) - 1)]
        stats = acquisition_statistics(frame)
        rows.append([stats[k] for k in FEATURES])
    return np.array(rows, dtype=np.float64)


# --- a small logistic regression (no extra dependency) ------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Ridge logistic regression by Newton's method on standardised features; returns [mu, sd, w, b]."""
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return np.concatenate([mu, sd, w])


def predict_logistic(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(label 1) from :func:`fit_logistic`'s parameters."""
    k = x.shape[1]
    mu, sd, w = params[:k], params[k : 2 * k], params[2 * k :]
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    return 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))


def grouped_folds(groups: np.ndarray, labels: np.ndarray, n_folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Test-index arrays of ``n_folds`` folds; each group whole in one fold, labels spread across folds."""
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    majority = {g: int(labels[groups == g].mean() >= 0.5) for g in names}
    folds: list[list[str]] = [[] for _ in range(min(n_folds, len(names)))]
    position = 0
    for label in (0, 1):
        members = [g for g in names if majority[g] == label]
        for g in rng.permutation(members):
            folds[position % len(folds)].append(g)
            position += 1
    return [np.flatnonzero(np.isin(groups, f)) for f in folds if f]


def stratified_cluster_interval(
    statistic,
    members: list[np.ndarray],
    strata: np.ndarray,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic(rows)`` resampling whole groups within each label stratum.

    Stratifying keeps both labels in every resample (AUC stays defined); resampling groups, not
    images, respects images that share a field or a time-lapse.
    """
    rng = np.random.default_rng(seed)
    by_stratum = [np.flatnonzero(strata == k) for k in np.unique(strata)]
    everything = np.concatenate(members)
    estimate = float(statistic(everything))
    boot = []
    for _ in range(n_resamples):
        picked = np.concatenate([rng.choice(units, len(units)) for units in by_stratum])
        boot.append(statistic(np.concatenate([members[k] for k in picked])))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(np.array(boot, dtype=float), [alpha, 1 - alpha])
    return Interval(estimate, float(min(low, estimate)), float(max(high, estimate)), confidence)


@dataclass
class NuisanceBaseline:
    """Out-of-fold predictions of the acquisition-statistics classifier and their summary."""

    scores: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    auc: Interval | None
    balanced_accuracy: Interval | None
    n_folds: int
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "n_images": len(self.labels),
            "n_folds": self.n_folds,
            "auc": self.auc.as_dict() if self.auc else None,
            "balanced_accuracy": self.balanced_accuracy.as_dict() if self.balanced_accuracy else None,
            "note": self.note,
        }


def _balanced_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    called = scores >= 0.5
    rates = [np.mean(called[labels == k] == k) for k in (0, 1) if np.any(labels == k)]
    return float(np.mean(rates))


def nuisance_baseline(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    n_folds: int = 5,
    seed: int = 0,
    n_resamples: int = 2000,
) -> NuisanceBaseline:
    """Grouped cross-validated logistic regression on acquisition statistics, intervals over groups."""
    from phototox.training.evaluate import roc_auc

    labels, groups = np.asarray(labels, int), np.asarray(groups).astype(str)
    scores = np.full(len(labels), np.nan)
    folds = grouped_folds(groups, labels, n_folds, seed)
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        if len(set(labels[train].tolist())) < 2:
            continue
        scores[test] = predict_logistic(fit_logistic(features[train], labels[train]), features[test])
    ok = ~np.isnan(scores)
    note = "" if ok.all() else f"{int((~ok).sum())} image(s) unscored: their training folds held one class"
    s, y, g = scores[ok], labels[ok], groups[ok]
    if len(set(y.tolist())) < 2 or len(np.unique(g)) < 2:
        return NuisanceBaseline(
            scores, labels, groups, None, None, len(folds), note or "needs both labels in at least two groups"
        )
    names, inverse = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(names))]
    strata = np.array([int(y[m].mean() >= 0.5) for m in members])

    def auc_of(rows: np.ndarray) -> float:
        return roc_auc(s[rows], y[rows])

    def acc_of(rows: np.ndarray) -> float:
        return _balanced_accuracy(s[rows], y[rows])

    auc = stratified_cluster_interval(auc_of, members, strata, n_resamples, seed=seed)
    acc = stratified_cluster_interval(acc_of, members, strata, n_resamples, seed=seed + 1)
    return NuisanceBaseline(scores, labels, groups, auc, acc, len(folds), note)
