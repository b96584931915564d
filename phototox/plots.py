"""Figures people look at rather than read: training curves, map overlays, ROC, dose response.

All figures use matplotlib's non-interactive Agg backend and are written atomically as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import atomic_path, to_display_uint8


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, plt.figure(*args, **kwargs)


def _save(plt, fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_training_curves(history: list[dict], path: str | Path) -> None:
    """Loss and accuracy against iteration, training and validation."""
    plt, fig = _figure(figsize=(9, 3.6))
    it = [row["iteration"] for row in history]
    for position, metric in ((1, "loss"), (2, "acc")):
        ax = fig.add_subplot(1, 2, position)
        ax.plot(it, [row[f"train_{metric}"] for row in history], label="train (running)")
        if any(f"val_{metric}" in row for row in history):
            ax.plot(it, [row.get(f"val_{metric}", np.nan) for row in history], label="validation")
        ax.set_xlabel("iteration")
        ax.set_ylabel("cross-entropy" if metric == "loss" else "crop accuracy")
        if metric == "acc":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(plt, fig, path)


def plot_map_overlay(frame: np.ndarray, sick_map: np.ndarray, path: str | Path, title: str = "",
                     threshold: float | None = None, label: str = "P(sick)", width: float = 8.0) -> None:
    """The image in grey with the map over it in colour, and a colour bar."""
    plt, fig = _figure(figsize=(width, width * frame.shape[0] / frame.shape[1] + 0.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(to_display_uint8(frame), cmap="gray", interpolation="nearest")
    shown = ax.imshow(sick_map, cmap="magma", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
    if threshold is not None:
        ax.contour(sick_map, levels=[threshold], colors="cyan", linewidths=0.8)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.035, pad=0.02, label=label)
    _save(plt, fig, path)


def plot_heatmap_overlay(frame: np.ndarray, heat: np.ndarray, path: str | Path, title: str = "") -> None:
    """A Grad-CAM heat map (scaled to its maximum) over the image."""
    scaled = heat / heat.max() if heat.max() > 0 else heat
    plot_map_overlay(frame, scaled, path, title, label="Grad-CAM (relative)")


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: str | Path, title: str = "") -> None:
    """ROC curve with its area."""
    plt, fig = _figure(figsize=(4.2, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, lw=2, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate (healthy called sick)")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    _save(plt, fig, path)


def plot_image_scores(names: list[str], scores: np.ndarray, labels: np.ndarray, path: str | Path,
                      title: str = "") -> None:
    """Per-image mean sick probability, coloured by true label."""
    plt, fig = _figure(figsize=(max(5, 0.22 * len(names) + 2), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    order = np.argsort(scores)
    colours = np.where(labels[order] == 1, "tab:red", "tab:blue")
    ax.bar(range(len(order)), scores[order], color=colours)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=90, fontsize=6)
    ax.set_ylabel("mean P(sick)")
    ax.set_ylim(0, 1)
    ax.set_title(title + "  (red: labelled sick, blue: labelled healthy)", fontsize=9)
    _save(plt, fig, path)


def plot_dose_response(doses: np.ndarray, scores: np.ndarray, fit_x: np.ndarray, fit_y: np.ndarray,
                       safe_dose: float | None, path: str | Path, unit: str = "", *,
                       band: tuple | None = None, safe_interval: tuple[float, float] | None = None,
                       gap: tuple[float, float] | None = None, margin: float | None = None,
                       baseline: float | None = None, title: str = "") -> None:
    """Sick probability against light dose: the fit with its bootstrap band, the largest safe dose
    with its interval, and, when it lies between two measured doses, that gap marked and said."""
    plt, fig = _figure(figsize=(6.2, 4.3))
    ax = fig.add_subplot(1, 1, 1)
    u = f" {unit}" if unit else ""
    if band is not None:
        ax.fill_between(band[0], band[1], band[2], color="0.6", alpha=0.35, lw=0,
                        label="95% bootstrap band of the fit")
    ax.plot(fit_x, fit_y, color="black", lw=1.5, label="logistic fit")
    ax.scatter(doses, scores, s=18, alpha=0.8, zorder=3, label="images (mean P(sick) each)")
    if baseline is not None and margin is not None:
        ax.axhline(baseline + margin, color="tab:green", lw=0.8, ls=":",
                   label=f"baseline + margin ({baseline:.3g} + {margin:g})")
    if safe_interval is not None:
        ax.axvspan(*safe_interval, color="tab:green", alpha=0.15, lw=0,
                   label=f"95% interval of the safe dose {safe_interval[0]:.3g}-{safe_interval[1]:.3g}{u}")
    if safe_dose is not None:
        ax.axvline(safe_dose, color="tab:green", ls="--", label=f"largest safe dose {safe_dose:.3g}{u}")
    if gap is not None:
        ax.axvspan(*gap, ymin=0, ymax=0.04, color="tab:orange", alpha=0.8, lw=0,
                   label=f"no image between {gap[0]:g} and {gap[1]:g}{u}")
        ax.text(0.02, 0.97, f"the safe dose lies between the measured doses {gap[0]:g} and {gap[1]:g}{u}:\n"
                "interpolated by the fit, not observed", transform=ax.transAxes, va="top", fontsize=7.5,
                color="tab:orange", bbox={"facecolor": "white", "alpha": 0.85, "lw": 0})
    elif safe_dose is None:
        ax.text(0.02, 0.97, "no safe dose: even the lowest dose is above baseline + margin", transform=ax.transAxes,
                va="top", fontsize=7.5, color="tab:red")
    if band is None:
        ax.text(0.98, 0.03, "too few images for a bootstrap band or interval", transform=ax.transAxes,
                ha="right", fontsize=7, color="0.4")
    ax.set_xlabel(f"light dose{u}")
    ax.set_ylabel("mean P(sick) per image")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    _save(plt, fig, path)


def plot_class_model(result, path: str | Path, target: str) -> None:
    """The optimised input and its class score over the iterations."""
    plt, fig = _figure(figsize=(8, 3.8))
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(result.image, cmap="gray")
    ax.set_title(f"class model: {target}", fontsize=9)
    ax.set_axis_off()
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(result.scores, label="class score (logit)")
    ax2 = ax.twinx()
    ax2.plot(result.probabilities, color="tab:orange", label="probability")
    ax2.set_ylim(0, 1.02)
    ax.set_xlabel("iteration")
    ax.set_ylabel("logit")
    ax2.set_ylabel(f"P({target})")
    ax.grid(alpha=0.3)
    _save(plt, fig, path)
