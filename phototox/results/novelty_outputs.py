"""'Unlike your controls' outputs of ``phototox map --reference``: a float32 TIFF and an overlay PNG.

The TIFF holds each window's novelty divided by the reference's line (1 = the line, above 1 =
beyond it: unlike the controls); the overlay draws half that, so 0.5 is the line (drawn as a
contour) and 1 twice the line. It is never called "sick": it marks what differs from the user's
control fields, for whatever reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from phototox.io.images import write_tiff_atomic
from phototox.maps.inference import FrameResult
from phototox.results.map_tiff import map_tiff_tags
from phototox.results.plots import plot_map_overlay


def write_novelty_outputs(
    out_dir: Path,
    stem: str,
    frames: np.ndarray,
    results: list[FrameResult],
    overlay: bool = True,
    provenance: dict | None = None,
) -> list[Path]:
    """``<stem>_unlike_controls.tif`` (one page per frame) and ``<stem>_unlike_controls.png`` (last frame)."""

    maps = np.stack([np.asarray(r.novelty_map, np.float32) for r in results])
    tif = out_dir / f"{stem}_unlike_controls.tif"
    trust = results[0].trust
    tags = map_tiff_tags(len(maps) > 1, trust.pixel_size_um, trust.pixel_size_source, provenance)
    info = json.loads(tags["metadata"]["Info"])
    info["content"] = (
        "'unlike your controls' map, float32: window novelty / the reference's line (1 = the line; a field like "
        f"the controls has any window above 1 at most {trust.unlike_controls_rate} of the time); not P(sick)"
    )
    tags["metadata"]["Info"] = json.dumps(info, indent=1)
    tags["metadata"]["Properties"]["phototox_content"] = info["content"]
    write_tiff_atomic(tif, maps if len(maps) > 1 else maps[0], **tags)
    written = [tif]
    if overlay:
        index = len(results) - 1
        r = results[index]
        t = r.trust
        title = (
            f"{stem}{f' frame {index}' if len(results) > 1 else ''}: unlike your controls (not 'sick'): "
            f"{100 * (t.unlike_controls_fraction or 0):.0f}% of windows beyond the line "
            f"[95% interval {100 * (t.unlike_controls_low or 0):.0f}-{100 * (t.unlike_controls_high or 0):.0f}%], "
            f"p = {t.unlike_controls_p_value or 0:.3g}\nline: a field like your controls crosses it at most "
            f"{100 * (t.unlike_controls_rate or 0):.0f}% of the time; P(sick) of this image {r.mean_sick_probability:.2f}"
            + (f"\nmodel {provenance['model_name']}" if provenance and provenance.get("model_name") else "")
        )
        png = out_dir / f"{stem}_unlike_controls.png"
        plot_map_overlay(
            frames[index],
            np.clip(np.asarray(r.novelty_map, np.float32) / 2, 0, 1),
            png,
            title,
            threshold=0.5,
            label="novelty vs your controls (0.5 = the line, 1 = twice it)",
            stride=r.stride,
            contour_label="the line: beyond it, unlike your controls",
            pixel_size_um=t.pixel_size_um,
        )
        written.append(png)
    return written


def unlike_lines(rows: list[dict]) -> list[str]:
    """One terminal line per row with an 'unlike your controls' result (none without a reference)."""
    lines = []
    for r in rows:
        if r.get("unlike_controls_fraction") in (None, ""):
            continue
        name = Path(str(r["path"])).name + (f" frame {r['frame']}" if r.get("frame") else "")
        lines.append(
            f"{name}: {100 * float(r['unlike_controls_fraction']):.0f}% of windows unlike your controls "
            f"[95% interval {100 * float(r['unlike_controls_low']):.0f}-{100 * float(r['unlike_controls_high']):.0f}%], "
            f"p = {float(r['unlike_controls_p_value']):.3g}"
        )
    if lines:
        rate = float(rows[0]["unlike_controls_rate"])
        lines.insert(
            0,
            f"unlike your controls (reference; not a sickness measure): a field like the controls has any window "
            f"beyond the line at most {100 * rate:.0f}% of the time",
        )
    return lines
