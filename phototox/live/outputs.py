"""Outputs of a watched acquisition, written as it goes (each file replaced atomically, so a crash
loses at most the frame in flight) and a final report.

``<out>/positions/<name>.csv`` (one row per analysed frame), ``<out>/maps/<name>.ome.tif`` (OME-TIFF) (P(sick) maps
with a model, else the cell cover per 8x8 block), ``<out>/dose.csv`` (every acquired frame's light),
``<out>/warnings.csv``; at the end ``live_report.md``, ``live.json`` and ``live_readouts.png``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from phototox.io.images import write_text_atomic, write_tiff_atomic


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_position(watcher, name: str) -> None:
    """Rewrite one position's CSV and maps, the dose ledger and the warnings (atomically)."""
    out = Path(watcher.settings.out_dir)
    pos = watcher.positions[name]
    dose_column = "dose_cumulative_J_per_cm2" if watcher.calibration is not None else "dose_cumulative_ms_x_setting"
    header = ["frame", "time_min", *watcher.readouts, dose_column]
    (out / "positions").mkdir(exist_ok=True)
    rows = [[_fmt(r.get("dose_cumulative") if h == dose_column else r.get(h)) for h in header] for r in pos.rows]
    write_text_atomic(out / "positions" / f"{name}.csv", _csv(header, rows))
    if pos.maps:
        (out / "maps").mkdir(exist_ok=True)
        metadata: dict = {"axes": "TYX", "TimeIncrement": watcher.interval_min, "TimeIncrementUnit": "min"}
        if watcher.assessor is None:  # cell cover per 8 x 8 pixel block
            metadata.update(PhysicalSizeX=8 * watcher.pixel_um, PhysicalSizeY=8 * watcher.pixel_um)
        write_tiff_atomic(out / "maps" / f"{name}.ome.tif", np.stack(pos.maps), ome=True, metadata=metadata)
    with watcher.lock:
        frames = list(watcher.ledger.frames)
    light = [f"{d}.{p}" for d, p in watcher.settings.light]
    dose_header = [
        "position",
        "frame",
        "channel",
        "exposure_ms",
        *light,
        "light_on",
        "dose_ms_x_setting",
        "dose_J_per_cm2",
    ]
    dose_rows = [
        [
            f.position,
            f.frame,
            f.channel,
            _fmt(f.exposure_ms),
            *(_fmt(f.settings.get(k)) for k in light),
            f.light_on,
            _fmt(f.dose_units),
            _fmt(f.dose_j_cm2),
        ]
        for f in frames
    ]
    write_text_atomic(out / "dose.csv", _csv(dose_header, dose_rows))
    write_warnings(watcher)


def write_warnings(watcher) -> None:
    """``warnings.csv``: one row per warning so far."""
    out = Path(watcher.settings.out_dir)
    header = ["position", "control", "readout", "onset_frame", "onset_time_min", "known_at_frame", "direction"]
    rows = [
        [w.position, w.is_control, w.readout, w.onset_frame, _fmt(w.onset_time_min), w.warned_frame, w.direction]
        for w in watcher.onsets.warnings
    ]
    write_text_atomic(out / "warnings.csv", _csv(header, rows))


def summary(watcher) -> dict:
    """Everything the final report says, as data."""
    onsets, s = watcher.onsets, watcher.settings
    latency = np.asarray(watcher.latency_s) if watcher.latency_s else np.array([np.nan])
    positions = []
    for name in watcher.names:
        truth = watcher.truth(name) if watcher.truth is not None else None
        positions.append(
            {
                "position": name,
                "role": "control" if name in s.controls else "exposed",
                "dose_total": watcher.ledger.total(name),
                "analysed_frames": len(watcher.positions[name].rows),
                "skipped_frames": sum(1 for n, _ in watcher.skipped if n == name),
                "warnings": [
                    {"readout": w.readout, "onset_frame": w.onset_frame, "known_at_frame": w.warned_frame}
                    for w in onsets.warnings
                    if w.position == name
                ],
                "simulated_onset_frame": truth,
            }
        )
    return {
        "dose_unit": watcher.ledger.unit,
        "pixel_size_um": watcher.pixel_um,
        "interval_min": watcher.interval_min,
        "model": s.model or "none (activity readouts only: confluence, motion)",
        "analysis_channel": watcher.channel,
        "readouts": watcher.readouts,
        "controls": list(s.controls),
        "frames_planned": watcher.n_frames,
        "rule": (
            f"time-course onset rule: running median of {s.onset.smooth_frames} frames, change from the first "
            f"{s.onset.baseline_frames}, outside the controls' prediction interval (phototox.stats.compare) for "
            f"{s.onset.persistence} consecutive frames; each frame at level {onsets.level:.3g} = alpha "
            f"{s.onset.alpha:g} / ({len(watcher.readouts)} readouts x {len(watcher.names)} positions x run starts); "
            "controls are tested against the other controls (a warning there is false); skipped frames are "
            "missing and break a run"
        ),
        "positions": positions,
        "warnings": [w.message() for w in onsets.warnings],
        "skipped_analysis_frames": len(watcher.skipped),
        "latency_s": {"median": float(np.nanmedian(latency)), "max": float(np.nanmax(latency))},
        "analysis_s_per_frame": float(np.mean(watcher.analysis_s)) if watcher.analysis_s else None,
        "errors": watcher.errors,
    }


def markdown(doc: dict) -> str:
    """The final report."""
    lines = [
        "# phototox live: watched acquisition",
        "",
        f"Readouts: {', '.join(doc['readouts'])} on channel {doc['analysis_channel']!r}, pixel size "
        f"{doc['pixel_size_um']:g} um, interval {doc['interval_min']:g} min; model: {doc['model']}.",
        f"Dose: {doc['dose_unit']}.",
        f"Rule: {doc['rule']}.",
        "",
        "| position | role | dose | frames analysed | skipped | warnings (readout: onset frame, known at) "
        "| simulated onset |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in doc["positions"]:
        warned = "; ".join(f"{w['readout']}: {w['onset_frame']} (at {w['known_at_frame']})" for w in p["warnings"])
        truth = p["simulated_onset_frame"]
        lines.append(
            f"| {p['position']} | {p['role']} | {p['dose_total']:.4g} | {p['analysed_frames']} | {p['skipped_frames']} "
            f"| {warned or 'none'} | {'' if truth is None else truth} |"
        )
    lines += [
        "",
        f"Latency frameReady -> result: median {doc['latency_s']['median']:.3g} s, max "
        f"{doc['latency_s']['max']:.3g} s; analysis frames skipped under load: {doc['skipped_analysis_frames']}.",
    ]
    if doc["errors"]:
        lines += ["", "Problems:", *(f"- {e}" for e in doc["errors"])]
    lines += [
        "",
        "Warnings only: phototox never changes the acquisition. Synthetic cells (the simulator) test the "
        "machinery, not the biology.",
    ]
    return "\n".join(lines) + "\n"


def plot(watcher, path: Path) -> None:
    """Each readout's change from baseline per position (controls grey), warnings marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from phototox.timecourse.onset import prepared

    onsets = watcher.onsets
    fig, axes = plt.subplots(1, len(onsets.readouts), figsize=(4.5 * len(onsets.readouts), 3.6), squeeze=False)
    times = np.arange(onsets.n_frames) * watcher.interval_min
    for ax, r in zip(axes[0], onsets.readouts):
        ready = prepared(onsets.values[r], onsets.settings)
        for i, name in enumerate(onsets.positions):
            control = i in onsets.controls
            ax.plot(times, ready[i], color="0.6" if control else None, lw=1, label=None if control else name)
        for w in onsets.warnings:
            if w.readout == r:
                ax.axvline(w.onset_time_min, color="red" if w.is_control else "black", ls=":", lw=1)
        scale = " (log)" if r in ("confluence", "motion_um_per_min") else ""
        ax.set(title=r, xlabel="time (min)", ylabel=f"change from baseline{scale}")
    axes[0][0].legend(fontsize=7, title="exposed (controls grey)")
    fig.suptitle("phototox live: dotted lines = warned onsets", fontsize=9)
    fig.tight_layout()
    from phototox.timecourse.report import write_png

    write_png(fig, path)
    plt.close(fig)


def write_final(watcher) -> dict:
    """The last per-position files, then ``live.json``, ``live_report.md`` and ``live_readouts.png``."""
    out = Path(watcher.settings.out_dir)
    for name in watcher.names:
        write_position(watcher, name)
    doc = summary(watcher)
    write_text_atomic(out / "live.json", json.dumps(doc, indent=1, default=str))
    write_text_atomic(out / "live_report.md", markdown(doc))
    plot(watcher, out / "live_readouts.png")
    return doc
