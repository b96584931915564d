"""Expected calibration error (ECE) and reliability diagrams, with intervals over whole images.

Predictions are binned by P(sick) into equal-width bins; in each bin the mean P(sick) is compared
with the observed fraction of sick items. ECE is the count-weighted mean absolute gap,
``sum_b (n_b / n) |mean p_b - fraction sick_b|`` (0: P(sick) = 0.8 means 80% are sick). Crops of
one image are correlated, so intervals come from a cluster bootstrap that resamples whole images
(BCa for ECE, percentile per bin for the diagram). ECE of a finite sample is biased upward (a
perfectly calibrated set of n items has ECE of order sqrt(bins / n)); read it with its interval.
"""

from __future__ import annotations

import numpy as np

from phototox.stats.bootstrap import Interval, bca_interval


def _per_image_bin_sums(
    probs: np.ndarray, labels: np.ndarray, clusters: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_clusters, n_bins) count, sum of P(sick) and sum of sick labels."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, float)
    _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    n_clusters = int(inverse.max()) + 1 if len(inverse) else 0
    index = np.clip((probs * n_bins).astype(int), 0, n_bins - 1)
    shape = (n_clusters, n_bins)
    counts, psum, ysum = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    np.add.at(counts, (inverse, index), 1)
    np.add.at(psum, (inverse, index), probs)
    np.add.at(ysum, (inverse, index), labels)
    return counts, psum, ysum


def _ece_from_sums(counts: np.ndarray, psum: np.ndarray, ysum: np.ndarray) -> float:
    n = counts.sum()
    if n == 0:
        return float("nan")
    used = counts > 0
    gaps = np.abs(psum[used] - ysum[used])  # n_b * |mean p - fraction sick|
    return float(gaps.sum() / n)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE of P(sick) against 0/1 labels with ``n_bins`` equal-width bins."""
    c, p, y = _per_image_bin_sums(probs, labels, np.zeros(len(probs)), n_bins)
    return _ece_from_sums(c.sum(0), p.sum(0), y.sum(0))


def ece_interval(
    probs: np.ndarray,
    labels: np.ndarray,
    clusters: np.ndarray | None = None,
    n_bins: int = 10,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """ECE with a BCa interval resampling whole clusters (images); each item its own cluster if None."""
    clusters = np.arange(len(probs)) if clusters is None else np.asarray(clusters)
    counts, psum, ysum = _per_image_bin_sums(probs, labels, clusters, n_bins)

    def statistic(indices: np.ndarray) -> float:
        return _ece_from_sums(counts[indices].sum(0), psum[indices].sum(0), ysum[indices].sum(0))

    return bca_interval(statistic, len(counts), n_resamples, confidence, seed)


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (used as the narrowest allowed bin interval)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def reliability_diagram(
    probs: np.ndarray,
    labels: np.ndarray,
    clusters: np.ndarray | None = None,
    n_bins: int = 10,
    n_resamples: int = 1000,
    seed: int = 0,
    unit: str = "crops",
) -> dict:
    """Per-bin mean P(sick), observed fraction sick with a 95% interval, and the ECE.

    A bin's interval is the wider of the cluster-bootstrap percentile interval (whole images
    resampled) and the Wilson interval of its count, so that a bin fed by one image still shows
    the uncertainty of its few items.
    """
    clusters = np.arange(len(probs)) if clusters is None else np.asarray(clusters)
    counts, psum, ysum = _per_image_bin_sums(probs, labels, clusters, n_bins)
    rng = np.random.default_rng(seed)
    n_clusters = len(counts)
    boot = []
    for _ in range(n_resamples):
        pick = rng.integers(0, n_clusters, n_clusters)
        c, y = counts[pick].sum(0), ysum[pick].sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot.append(y / c)
    boot_arr = np.array(boot)
    total_c, total_p, total_y = counts.sum(0), psum.sum(0), ysum.sum(0)
    bins = []
    for b in range(n_bins):
        column = boot_arr[:, b][~np.isnan(boot_arr[:, b])]
        has = total_c[b] > 0
        bins.append(
            {
                "lower_edge": b / n_bins,
                "upper_edge": (b + 1) / n_bins,
                "count": int(total_c[b]),
                "mean_probability": float(total_p[b] / total_c[b]) if has else None,
                "fraction_sick": float(total_y[b] / total_c[b]) if has else None,
                "low": None,
                "high": None,
            }
        )
        if has:
            w_low, w_high = wilson_interval(total_y[b], total_c[b])
            boot_low = float(np.percentile(column, 2.5)) if len(column) else w_low
            boot_high = float(np.percentile(column, 97.5)) if len(column) else w_high
            bins[-1]["low"], bins[-1]["high"] = min(w_low, boot_low), max(w_high, boot_high)
    ece = (
        ece_interval(probs, labels, clusters, n_bins, n_resamples=2 * n_resamples, seed=seed)
        if n_clusters >= 2
        else Interval(expected_calibration_error(probs, labels, n_bins), float("nan"), float("nan"), 0.95)
    )
    return {
        "n_bins": n_bins,
        "bins": bins,
        "ece": ece.as_dict(),
        "n_items": len(probs),
        "n_images": int(n_clusters),
        "unit": unit,
        "definition": "ECE = sum over equal-width P(sick) bins of (n_bin/n)|mean P(sick) - fraction sick|; "
        "95% BCa interval resampling whole images",
    }
