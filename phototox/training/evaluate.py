"""Honest evaluation: crop and image accuracy, ROC AUC, confusion, per group and per replicate.

Crops are DeadNet's 256/128 tiling of each image, centre-cropped to the 220 window (no
augmentation) and normalised once under the model's contract; an image's score is the mean sick
probability of its crops. Confidence
intervals: the paper's BCa over 100 virtual 10+10 batches, and a BCa cluster bootstrap over
whole images, which is wider and more honest because the crops of one image are correlated.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.io.images import atomic_path, write_text_atomic
from phototox.io.manifest import Sample
from phototox.maps.inference import Predictor
from phototox.results.plots import plot_image_scores, plot_roc
from phototox.stats.bootstrap import cluster_accuracy_interval, paper_accuracy_interval
from phototox.training.dataset import CropDataset


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (sick = positive)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(labels)[distinct]
    fps = (distinct + 1) - tps
    positives, negatives = max(labels.sum(), 1), max(len(labels) - labels.sum(), 1)
    return np.r_[0.0, fps / negatives], np.r_[0.0, tps / positives]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); NaN with one class only."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    n_pos, n_neg = labels.sum(), len(labels) - labels.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def confusion(predicted: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """[[true healthy called healthy, called sick], [true sick called healthy, called sick]]."""
    return [[int(np.sum((labels == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]


@dataclass
class Evaluation:
    """Crop-level predictions of a manifest and everything computed from them."""

    probs: np.ndarray
    labels: np.ndarray
    sample_index: np.ndarray
    samples: list[Sample]
    threshold: float = 0.5
    seed: int = 0
    metrics: dict = field(default_factory=dict)

    def compute(self) -> dict:
        p, y = self.probs, self.labels
        predicted = (p >= self.threshold).astype(int)
        correct = predicted == y
        groups = np.array([self.samples[i].group for i in self.sample_index])
        both = len(set(y.tolist())) == 2
        m: dict = {
            "n_crops": len(y),
            "n_images": len(set(self.sample_index.tolist())),
            "threshold": self.threshold,
            "crop_accuracy": float(correct.mean()),
            "crop_balanced_accuracy": float(np.mean([correct[y == k].mean() for k in (0, 1) if np.any(y == k)])),
            "crop_auc": roc_auc(p, y),
            "confusion_crops": confusion(predicted, y),
        }
        if both:
            m["paper_ci"] = paper_accuracy_interval(correct, y, seed=self.seed).as_dict()
            if len(set(groups.tolist())) >= 2:
                m["cluster_ci"] = cluster_accuracy_interval(correct, groups, y, seed=self.seed).as_dict()
        images = self.per_image()
        img_scores = np.array([r["mean_sick_probability"] for r in images])
        img_labels = np.array([r["label_id"] for r in images])
        img_pred = (img_scores >= self.threshold).astype(int)
        m["image_accuracy"] = float(np.mean(img_pred == img_labels))
        m["image_auc"] = roc_auc(img_scores, img_labels)
        m["confusion_images"] = confusion(img_pred, img_labels)
        m["per_replicate"] = self._per_key(lambda s: s.replicate or "(none)")
        m["per_dose"] = (
            self._per_key(lambda s: "" if s.dose is None else f"{s.dose:g}")
            if any(s.dose is not None for s in self.samples)
            else {}
        )
        self.metrics = m
        return m

    def per_image(self) -> list[dict]:
        rows = []
        for i in sorted(set(self.sample_index.tolist())):
            mask = self.sample_index == i
            s = self.samples[i]
            score = float(self.probs[mask].mean())
            rows.append(
                {
                    "path": str(s.path),
                    "group": s.group,
                    "replicate": s.replicate,
                    "label": s.label_name,
                    "label_id": s.label,
                    "n_crops": int(mask.sum()),
                    "mean_sick_probability": score,
                    "crop_accuracy": float(np.mean((self.probs[mask] >= self.threshold) == s.label)),
                    "predicted": "sick" if score >= self.threshold else "healthy",
                }
            )
        return rows

    def _per_key(self, key) -> dict:
        out: dict = {}
        keys = np.array([key(self.samples[i]) for i in self.sample_index])
        for value in sorted(set(keys.tolist())):
            mask = keys == value
            y, p = self.labels[mask], self.probs[mask]
            out[value] = {
                "n_crops": int(mask.sum()),
                "n_images": len(set(self.sample_index[mask].tolist())),
                "labels": sorted({self.samples[i].label_name for i in self.sample_index[mask]}),
                "crop_accuracy": float(np.mean((p >= self.threshold) == y)),
                "mean_sick_probability": float(p.mean()),
                "auc": roc_auc(p, y),
            }
        return out


def evaluate_samples(
    predictor: Predictor,
    samples: list[Sample],
    indices: list[int] | None = None,
    threshold: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> Evaluation:
    """Classify every evaluation crop of the chosen samples through the shared Predictor.

    Windows are normalised once, under the model's contract, exactly as in training without
    augmentation (and, for ``box`` models, exactly as in a map of the whole frame).
    """
    dataset = CropDataset(samples, indices, augment=None, seed=seed, contract=predictor.contract)
    from tqdm import tqdm

    probs = []
    batch = predictor.batch_size
    for start in tqdm(range(0, len(dataset), batch), disable=not progress, desc="evaluating", unit="batch"):
        windows = np.stack([dataset[i][0][0].numpy() for i in range(start, min(start + batch, len(dataset)))])
        probs.append(predictor.classify_windows(windows, normalised=True))
    evaluation = Evaluation(
        np.concatenate(probs), dataset.labels(), np.array([r.sample for r in dataset.refs]), samples, threshold, seed
    )
    evaluation.compute()
    return evaluation


EVALUATION_FILES = ("metrics.json", "per_image.csv", "roc.png", "image_scores.png", "reliability.png")


def evaluation_output_paths(out_dir: str | Path) -> list[Path]:
    """The files an evaluation may write (:func:`write_evaluation` and the report around it)."""
    return [Path(out_dir) / name for name in EVALUATION_FILES]


def write_evaluation(evaluation: Evaluation, out_dir: str | Path, provenance: dict | None = None) -> list[Path]:
    """metrics.json, per_image.csv, roc.png and image_scores.png in ``out_dir`` (``provenance`` in both tables)."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        out / "metrics.json",
        json.dumps({**evaluation.metrics, **({"provenance": provenance} if provenance else {})}, indent=2),
    )
    rows = [{**r, **(provenance or {})} for r in evaluation.per_image()]
    with atomic_path(out / "per_image.csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written = [out / "metrics.json", out / "per_image.csv"]
    if len(set(evaluation.labels.tolist())) == 2:
        fpr, tpr = roc_curve(evaluation.probs, evaluation.labels)
        plot_roc(fpr, tpr, evaluation.metrics["crop_auc"], out / "roc.png", "crop-level ROC")
        written.append(out / "roc.png")
    plot_image_scores(
        [Path(r["path"]).stem for r in rows],
        np.array([r["mean_sick_probability"] for r in rows]),
        np.array([r["label_id"] for r in rows]),
        out / "image_scores.png",
        "per-image score",
    )
    written.append(out / "image_scores.png")
    return written


def format_metrics(m: dict) -> str:
    """A short human-readable table of the headline metrics."""
    lines = [
        f"crops {m['n_crops']}  images {m['n_images']}  threshold {m['threshold']}",
        f"crop accuracy          {m['crop_accuracy']:.3f}   balanced {m['crop_balanced_accuracy']:.3f}",
        f"crop ROC AUC           {m['crop_auc']:.3f}",
        f"image accuracy         {m['image_accuracy']:.3f}   image AUC {m['image_auc']:.3f}",
    ]
    for key, name in (("paper_ci", "paper BCa (100 virtual 10+10 batches)"), ("cluster_ci", "cluster BCa (images)")):
        if key in m:
            ci = m[key]
            lines.append(f"{name:38s} {ci['estimate']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]")
    lines.append(f"confusion (rows true healthy/sick, cols called healthy/sick): {m['confusion_crops']}")
    for rep, r in m["per_replicate"].items():
        lines.append(
            f"  replicate {rep:10s} crops {r['n_crops']:5d}  labels {','.join(r['labels']):14s} "
            f"acc {r['crop_accuracy']:.3f}  mean P(sick) {r['mean_sick_probability']:.3f}"
        )
    return "\n".join(lines)
