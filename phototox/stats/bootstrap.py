"""Bias-corrected and accelerated (BCa) bootstrap intervals, and DeadNet's virtual batches.

DeadNet (Richmond et al., 2017) reports test accuracy with BCa bootstrap confidence intervals
over 100 "virtual batches", each of 10 healthy and 10 sick crops drawn with replacement.
:func:`virtual_batch_accuracies` draws those batches; :func:`bca_interval` computes the BCa
interval (Efron 1987) for any statistic of resampled units (crops, or whole images for the
cluster bootstrap that respects correlated crops of one image).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bca_interval(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """BCa interval of ``statistic(indices)`` where indices resample ``n_units`` units with replacement."""
    if n_units < 2:
        raise ValueError("a bootstrap interval needs at least two units")
    rng = np.random.default_rng(seed)
    everything = np.arange(n_units)
    theta = float(statistic(everything))
    boot = np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_resamples)], dtype=float)
    jack = np.array([statistic(np.delete(everything, i)) for i in range(n_units)], dtype=float)
    return _bca_from(theta, boot, jack, confidence)


def _bca_from(theta: float, boot: np.ndarray, jack: np.ndarray, confidence: float) -> Interval:
    prop_less = np.mean(boot < theta)
    if prop_less in (0.0, 1.0) or np.ptp(boot) == 0:
        return Interval(theta, float(np.min(boot)), float(np.max(boot)), confidence)
    z0 = ndtri(prop_less)
    diffs = jack.mean() - jack
    denom = 6.0 * (np.sum(diffs**2) ** 1.5)
    accel = float(np.sum(diffs**3) / denom) if denom > 0 else 0.0
    alpha = (1 - confidence) / 2
    z = ndtri(np.array([alpha, 1 - alpha]))
    adjusted = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    low, high = np.quantile(boot, adjusted)
    return Interval(theta, float(low), float(high), confidence)


def bca_mean(values: np.ndarray, n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """BCa interval of the mean of ``values`` (vectorised)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        raise ValueError("a bootstrap interval needs at least two values")
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, n, (n_resamples, n))].mean(axis=1)
    jack = (values.sum() - values) / (n - 1)
    return _bca_from(float(values.mean()), boot, jack, confidence)


def virtual_batch_accuracies(
    correct: np.ndarray, labels: np.ndarray, n_batches: int = 100, per_class: int = 10, seed: int = 0
) -> np.ndarray:
    """Accuracy of each of ``n_batches`` balanced batches (``per_class`` crops of each class, with replacement)."""
    rng = np.random.default_rng(seed)
    correct = np.asarray(correct, dtype=float)
    healthy, sick = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if len(healthy) == 0 or len(sick) == 0:
        raise ValueError("virtual batches need crops of both classes")
    picks = np.concatenate(
        [rng.choice(healthy, (n_batches, per_class)), rng.choice(sick, (n_batches, per_class))], axis=1
    )
    return correct[picks].mean(axis=1)


def paper_accuracy_interval(
    correct: np.ndarray, labels: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """DeadNet's reporting: BCa interval of the mean accuracy over 100 virtual 10+10 batches."""
    batches = virtual_batch_accuracies(correct, labels, seed=seed)
    return bca_mean(batches, confidence=confidence, seed=seed + 1)


def cluster_accuracy_interval(
    correct: np.ndarray,
    groups: np.ndarray,
    labels: np.ndarray,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 4000,
) -> Interval:
    """BCa interval of balanced crop accuracy, resampling whole groups (images): honest for correlated crops."""
    group_ids, inverse = np.unique(groups, return_inverse=True)
    n_groups = len(group_ids)
    correct = np.asarray(correct, dtype=float)
    # per-group sums by class, so each resample is a cheap weighted sum
    sums = np.zeros((n_groups, 2))
    counts = np.zeros((n_groups, 2))
    np.add.at(sums, (inverse, labels), correct)
    np.add.at(counts, (inverse, labels), 1)

    def balanced(indices: np.ndarray) -> float:
        s, c = sums[indices].sum(0), counts[indices].sum(0)
        rates = [s[k] / c[k] for k in (0, 1) if c[k] > 0]
        return float(np.mean(rates))

    return bca_interval(balanced, n_groups, n_resamples, confidence, seed)
