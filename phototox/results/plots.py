"""Figures people look at rather than read: training curves, map overlays, ROC, dose response.

All figures use matplotlib's non-interactive Agg backend and are written atomically as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phototox.io.images import atomic_path

OVERLAY_DPI = 110
"""Dots per inch of saved figures: an overlay's image area has one PNG pixel per drawn pixel."""


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, plt.figure(*args, **kwargs)


def _save(plt, fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=OVERLAY_DPI, bbox_inches="tight")
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


MAX_OVERLAY_SIDE = 2048
"""Longest side, in image pixels, drawn in an overlay: larger images are block-averaged first."""
MAX_OVERLAY_ASPECT = 4.0
"""Overlays of longer or wider images are drawn stretched to this aspect ratio (and say so)."""


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks (edges trimmed): a display-size copy of a big image."""
    if factor <= 1:
        return array
    h, w = (array.shape[0] // factor) * factor, (array.shape[1] // factor) * factor
    if h == 0 or w == 0:
        return array[::factor, ::factor]
    return array[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3), dtype=np.float64)


MIN_OVERLAY_WIDTH = 320
"""Narrower images are drawn enlarged by a whole factor to at least this many PNG pixels (and say so)."""


def scale_bar_um(field_width_um: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k µm) between 10% and 25% of the field width."""
    best = 0.0
    for exponent in range(-3, 7):
        for mantissa in (1.0, 2.0, 5.0):
            length = mantissa * 10.0**exponent
            if 0.10 <= length / field_width_um <= 0.25 and abs(length / field_width_um - 0.15) < abs(
                best / field_width_um - 0.15
            ):
                best = length
    return best


def _add_scale_bar(ax, shown_width: int, um_per_shown_px: float, note: str) -> None:
    """A white bar with its length in µm at the lower right of ``ax`` (data units: shown pixels)."""
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = scale_bar_um(shown_width * um_per_shown_px)
    if length <= 0:
        return
    bar = AnchoredSizeBar(
        ax.transData,
        length / um_per_shown_px,
        f"{length:g} µm{note}",
        "lower right",
        pad=0.4,
        color="white",
        frameon=True,
        size_vertical=max(2.0, 0.006 * shown_width),
        fontproperties=FontProperties(size=9),
    )
    bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")
    ax.add_artist(bar)


def plot_map_overlay(
    frame: np.ndarray,
    sick_map: np.ndarray,
    path: str | Path,
    title: str = "",
    threshold: float | None = None,
    label: str = "P(sick)",
    stride: int | None = None,
    mask: np.ndarray | None = None,
    contour_label: str | None = None,
    pixel_size_um: float | None = None,
    scale_note: str = "",
) -> None:
    """The image, dimmed, with the map drawn over it (see :mod:`phototox.results.overlay`) and a colour bar.

    ``stride`` smooths the drawn map over half a window step (no window rectangles); ``mask``
    leaves places without cells uncoloured; the ``threshold`` contour is named in a legend.
    The image is drawn at its own size (one PNG pixel per image pixel); images longer than
    ``MAX_OVERLAY_SIDE`` are block-averaged, narrower than ``MIN_OVERLAY_WIDTH`` enlarged, very
    long or wide ones stretched to ``MAX_OVERLAY_ASPECT`` -- and the title then states the scale.
    With ``pixel_size_um`` a scale bar is drawn (``scale_note`` follows its length, e.g. " (assumed)").
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    from phototox.results.overlay import GREY_RANGE, blend, dimmed_grey, smooth_for_display

    height, width_px = frame.shape
    factor = max(1, -(-max(height, width_px) // MAX_OVERLAY_SIDE))
    shown_map = smooth_for_display(sick_map, stride) if stride else np.asarray(sick_map, np.float32)
    shown_map = _block_mean(shown_map, factor)
    grey = _block_mean(np.asarray(frame, np.float32), factor)
    if mask is not None:
        mask = _block_mean(mask.astype(np.float32), factor) >= 0.5
    aspect = height / width_px
    shown_aspect = min(max(aspect, 1 / MAX_OVERLAY_ASPECT), MAX_OVERLAY_ASPECT)
    stretched = shown_aspect != aspect
    shown_width = shown_map.shape[1]
    drawn_width = shown_width * max(1, -(-MIN_OVERLAY_WIDTH // shown_width))
    notes = []
    if stretched:
        notes.append(f"(drawn stretched: the image is {width_px} x {height} px)")
    if abs(drawn_width / width_px - 1.0) > 0.005:
        notes.append(f"(overlay at {100 * drawn_width / width_px:.0f}% of the image size)")
    title = "\n".join([title, *notes]) if title else "\n".join(notes)
    image_in = (drawn_width / OVERLAY_DPI, drawn_width * shown_aspect / OVERLAY_DPI)
    plt, fig = _figure(figsize=(image_in[0] + 1.0, image_in[1] + 0.2), dpi=OVERLAY_DPI)
    fig_w, fig_h = fig.get_size_inches()
    ax = fig.add_axes((0.0, 0.1 / fig_h, image_in[0] / fig_w, image_in[1] / fig_h))
    cax = fig.add_axes(((image_in[0] + 0.15) / fig_w, 0.1 / fig_h, 0.18 / fig_w, image_in[1] / fig_h))
    aspect_mode = "auto" if stretched else "equal"
    ax.imshow(blend(dimmed_grey(grey), shown_map, mask), interpolation="bilinear", aspect=aspect_mode)
    if pixel_size_um is not None and pixel_size_um > 0:
        _add_scale_bar(ax, shown_width, pixel_size_um * factor, scale_note)
    handles = []
    if threshold is not None and np.nanmin(shown_map) < threshold <= np.nanmax(shown_map):
        ax.contour(shown_map, levels=[threshold], colors="#00d5ff", linewidths=1.0)
        handles.append(
            Line2D(
                [],
                [],
                color="#00d5ff",
                lw=1.2,
                label=contour_label or f"{label} = {threshold:g} (the threshold; the brighter side is sicker)",
            )
        )
    if mask is not None and 0 < mask.mean() < 1:
        ax.contour(mask.astype(np.float32), levels=[0.5], colors="white", linewidths=0.6, linestyles="dotted")
        handles.append(Line2D([], [], color="white", lw=1, ls="dotted", label="edge of the cell-covered area"))
    if handles:
        legend = ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.01),
            ncol=len(handles),
            fontsize=8,
            facecolor="#333333",
            edgecolor="#333333",
            framealpha=1.0,
        )
        for text in legend.get_texts():
            text.set_color("white")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    levels = np.linspace(0.0, 1.0, 256)
    middle = np.full(256, sum(GREY_RANGE) / 2)
    bar_map = ListedColormap(blend(middle[None], levels[None])[0])
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(0, 1), bar_map), cax=cax, label=label)
    _save(plt, fig, path)


def plot_heatmap_overlay(
    frame: np.ndarray,
    heat: np.ndarray,
    path: str | Path,
    title: str = "",
    scale: float | None = None,
    label: str | None = None,
) -> None:
    """A Grad-CAM heat map over the image: divided by ``scale`` (a reference level) or its own maximum."""
    if scale is None or scale <= 0:
        scale = float(heat.max()) if heat.max() > 0 else 1.0
        label = label or "evidence, relative to this image's strongest"
    plot_map_overlay(frame, np.clip(heat / scale, 0, 1), path, title, label=label or "evidence (1 = reference)")


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


def plot_image_scores(
    names: list[str], scores: np.ndarray, labels: np.ndarray, path: str | Path, title: str = ""
) -> None:
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


def _draw_dose_tests(ax, tests, control_mean: float) -> str:
    """Each dose's 95% interval (control mean + difference) coloured by verdict, and the margin; returns the note for the title."""
    ax.axhline(
        control_mean * (1 + tests.margin),
        color="tab:red",
        lw=0.8,
        ls=":",
        label=f"margin: controls' mean + {tests.margin:.0%}",
    )
    drawn = 0
    for d in tests.doses:
        c = d.comparison
        if c.low is None or c.high is None:
            continue
        drawn += 1
        colour = "tab:green" if d.verdict.startswith("harmless") else "tab:red"
        ax.errorbar(
            [d.dose],
            [control_mean + c.effect],
            yerr=[[c.effect - c.low], [c.high - c.effect]],
            fmt="s",
            color=colour,
            ms=4,
            capsize=3,
            zorder=4,
        )
    return (
        "squares: each dose's mean and 95% interval against the controls; "
        "green = harmless (non-inferior), red = not shown harmless"
        if drawn
        else "no dose could be tested against the controls (one field or dish per dose): none is called harmless"
    )


def plot_dose_response(
    doses: np.ndarray,
    scores: np.ndarray,
    fit_x: np.ndarray,
    fit_y: np.ndarray,
    path: str | Path,
    unit: str = "",
    *,
    band: tuple | None = None,
    baseline: float | None = None,
    title: str = "",
    dose_tests=None,
) -> None:
    """Sick probability against light dose: the fit (a description) with its bootstrap band and each
    dose's non-inferiority verdict (``dose_tests``: its 95% interval against the controls and the
    margin); without verdicts, a note that no dose is judged."""
    plt, fig = _figure(figsize=(6.2, 4.3))
    ax = fig.add_subplot(1, 1, 1)
    u = f" {unit}" if unit else ""
    if band is not None:
        ax.fill_between(band[0], band[1], band[2], color="0.6", alpha=0.35, lw=0, label="95% bootstrap band of the fit")
    ax.plot(fit_x, fit_y, color="black", lw=1.5, label="logistic fit")
    ax.scatter(doses, scores, s=18, alpha=0.8, zorder=3, label="images (mean P(sick) each)")
    if dose_tests is not None and baseline is not None:  # the note goes above the axes, never over the data
        note = _draw_dose_tests(ax, dose_tests, baseline)
        title = f"{title}\n{note}" if title else note
    else:
        ax.text(
            0.02,
            0.97,
            "no dose is judged: no zero-light controls (dose 0) to test against",
            transform=ax.transAxes,
            va="top",
            fontsize=7.5,
            color="tab:red",
        )
    if band is None:
        ax.text(
            0.98,
            0.03,
            "too few images for a bootstrap band",
            transform=ax.transAxes,
            ha="right",
            fontsize=7,
            color="0.4",
        )
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
