"""Figures of the design audit (cross-tabulation heat maps, nuisance-baseline ROC) and of calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phototox.models.architectures import CLASSES
from phototox.results.plots import _figure, _save


def plot_audit(result, labels: np.ndarray, path: str | Path, max_levels: int = 24) -> None:
    """Heat maps of label against each grouping column, and the nuisance baseline's ROC with a 95% band."""
    columns = [c for c in result.columns if len(c.table) <= max_levels]
    panels = max(len(columns), 1) + 1
    plt, fig = _figure(figsize=(3.2 * panels, 3.8))
    for k, c in enumerate(columns):
        ax = fig.add_subplot(1, panels, k + 1)
        counts = np.array(list(c.table.values()), dtype=float)
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (i, j), n in np.ndenumerate(counts):
            ax.text(
                j, i, f"{int(n)}", ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.6 else "black"
            )
        ax.set_xticks(range(len(CLASSES)), CLASSES)
        ax.set_yticks(range(len(c.table)), [str(v)[:14] for v in c.table], fontsize=7)
        flag = (
            {"full": "FULLY CONFOUNDED", "large": "largely explained", "weak": ""}[c.verdict]
            if c.role == "batch"
            else f"({c.role} column)"
        )
        ax.set_title(
            f"{c.column}: V={c.cramers_v:.2f}\n{flag}",
            fontsize=9,
            color="red" if c.role == "batch" and c.verdict != "weak" else "black",
        )
    if not columns:
        ax = fig.add_subplot(1, panels, 1)
        ax.text(0.5, 0.5, "no grouping column\nwith repeated values", ha="center", va="center")
        ax.axis("off")
    ax = fig.add_subplot(1, panels, panels)
    b = result.baseline or {}
    scores = np.array([np.nan if v is None else v for v in b.get("scores", [])], dtype=float)
    ok = ~np.isnan(scores) if len(scores) else np.zeros(0, bool)
    if b.get("auc") and ok.sum() >= 4:
        fpr_grid, low, mid, high = roc_band(scores[ok], labels[ok])
        ax.fill_between(fpr_grid, low, high, color="tab:orange", alpha=0.3, label="95% bootstrap band (images)")
        ax.plot(fpr_grid, mid, color="tab:orange", label="acquisition statistics only")
        a = b["auc"]
        ax.set_title(
            f"nuisance baseline (grouped CV)\nAUC {a['estimate']:.2f} [{a['low']:.2f}, {a['high']:.2f}]", fontsize=9
        )
    else:
        ax.set_title("nuisance baseline: not computable", fontsize=9)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    ax.set_xlabel("false positive rate (healthy called sick)")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"design audit: {Path(result.manifest).name or 'manifest'} ({result.n_images} images)", fontsize=10)
    fig.tight_layout()
    _save(plt, fig, path)


def roc_band(scores: np.ndarray, labels: np.ndarray, n_resamples: int = 500, seed: int = 0):
    """ROC (TPR on a fixed FPR grid) and a pointwise 95% percentile band over resampled images."""
    from phototox.training.evaluate import roc_curve

    grid = np.linspace(0, 1, 101)

    def tpr_at(s, y):
        fpr, tpr = roc_curve(s, y)
        return np.interp(grid, fpr, tpr)

    rng = np.random.default_rng(seed)
    resampled = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(scores), len(scores))
        if len(set(labels[pick].tolist())) == 2:
            resampled.append(tpr_at(scores[pick], labels[pick]))
    curves = np.array(resampled) if resampled else np.array([tpr_at(scores, labels)])
    return grid, np.percentile(curves, 2.5, 0), tpr_at(scores, labels), np.percentile(curves, 97.5, 0)


def plot_reliability(diagram: dict, path: str | Path, title: str) -> None:
    """Reliability diagram: observed fraction sick against mean P(sick) per bin, 95% intervals, counts."""
    plt, fig = _figure(figsize=(4.8, 5.4))
    ax = fig.add_axes([0.14, 0.34, 0.8, 0.58])
    hist = fig.add_axes([0.14, 0.09, 0.8, 0.16], sharex=ax)
    bins = diagram["bins"]
    used = [b for b in bins if b["count"] > 0]
    x = np.array([b["mean_probability"] for b in used])
    y = np.array([b["fraction_sick"] for b in used])
    low = np.array([b["low"] for b in used])
    high = np.array([b["high"] for b in used])
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    ax.errorbar(
        x,
        y,
        yerr=np.vstack([np.clip(y - low, 0, None), np.clip(high - y, 0, None)]),
        fmt="o",
        color="tab:blue",
        capsize=3,
        label="observed, 95% interval (images resampled; Wilson at least)",
    )
    for b in used:
        ax.plot([b["lower_edge"], b["upper_edge"]], [b["fraction_sick"]] * 2, color="tab:blue", alpha=0.25, lw=4)
    e = diagram["ece"]
    ax.set_title(
        f"{title}\nECE {e['estimate']:.3f} [{e['low']:.3f}, {e['high']:.3f}] "
        f"({diagram['n_items']} {diagram['unit']}, {diagram['n_images']} images)",
        fontsize=9,
    )
    ax.set_ylabel("observed fraction sick")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    edges = [b["lower_edge"] for b in bins] + [bins[-1]["upper_edge"]]
    hist.bar(
        edges[:-1], [b["count"] for b in bins], width=np.diff(edges), align="edge", color="grey", edgecolor="white"
    )
    hist.set_yscale("symlog")
    hist.set_xlabel("mean predicted P(sick) in bin")
    hist.set_ylabel("count")
    _save(plt, fig, path)
