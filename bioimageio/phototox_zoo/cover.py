"""The package cover: a real sick and a real healthy field with their sickness maps, 2:1 as the zoo asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phototox.io.images import atomic_path, to_display_uint8

COVER_INCHES = (10.0, 5.0)
COVER_DPI = 120


def _square(frame: np.ndarray, sick_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centred square of a field and its map (so two panels make 2:1)."""
    h, w = frame.shape
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return frame[y : y + side, x : x + side], sick_map[y : y + side, x : x + side]


def write_cover(path: Path, panels: list[tuple[np.ndarray, np.ndarray, str]], footer: str) -> None:
    """Two square panels side by side: grey field, P(sick) in colour over it, caption in the panel."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=COVER_INCHES, dpi=COVER_DPI)
    shown = None
    for k, (frame, sick_map, caption) in enumerate(panels[:2]):
        frame, sick_map = _square(frame, sick_map)
        ax = fig.add_axes((0.5 * k, 0.0, 0.5, 1.0))
        ax.imshow(to_display_uint8(frame), cmap="gray", interpolation="bilinear")
        shown = ax.imshow(sick_map, cmap="magma", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
        ax.contour(sick_map, levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_axis_off()
        ax.text(
            0.02,
            0.98,
            caption,
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=11,
            color="white",
            bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
        )
    if shown is not None:
        bar = fig.add_axes((0.955, 0.08, 0.012, 0.4))
        fig.colorbar(shown, cax=bar)
        bar.tick_params(colors="white", labelsize=8)
        bar.set_title("P(sick)", color="white", fontsize=8)
    fig.text(
        0.01, 0.01, footer, fontsize=7.5, color="white", bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"}
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=COVER_DPI)
    plt.close(fig)
