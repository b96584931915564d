"""Outputs of ``phototox timecourse``: per-frame CSV, per-dose CSV, JSON summary, PNG plots, Markdown."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np

from ..images import atomic_path, write_text_atomic
from .onset import largest_unaffected_dose

CITATION_T98G = (
    "T98G data: Tsai et al., Usiigaci, SoftwareX 9 (2019), MIT licence; "
    "DeadNet: Richmond et al. (2017), arXiv:1701.06109"
)


def _csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, (float, np.floating)) else str(value)


def per_frame_rows(series, groups: list[str]) -> tuple[list[str], list[list]]:
    measures = list(series[0].values)
    header = [
        "field",
        "source",
        "group",
        "dose_J_per_cm2_total",
        "cumulative_dose_J_per_cm2",
        "frame",
        "time_min",
        *measures,
        "round_objects",
        "rounding_events_started",
    ]
    flagged = series[0].out_of_domain is not None
    if flagged:
        header.append("out_of_domain")
    rows = []
    for s, group in zip(series, groups):
        f = s.field
        cumulative = f.dose.cumulative_j_cm2(len(f.frames)) if f.dose else [None] * len(f.frames)
        total = f.dose.total_j_cm2 if f.dose else None
        for t in range(len(f.frames)):
            rows.append(
                [
                    f.name,
                    f.source,
                    group,
                    _fmt(total),
                    _fmt(cumulative[t]),
                    t,
                    _fmt(f.times_min[t]),
                    *[_fmt(s.values[m][t]) for m in measures],
                    int(s.round_objects[t]),
                    int(s.events_started[t]),
                    *([int(s.out_of_domain[t])] if flagged else []),
                ]
            )
    return header, rows


def group_summary(measures: dict[str, np.ndarray], groups: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Mean, 95% t-interval and range over the fields of each group per frame: {group: {measure: (5, T)}}."""
    from scipy import stats

    out: dict[str, dict[str, np.ndarray]] = {}
    labels = np.asarray(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without values (motion at frame 0)
        for g in dict.fromkeys(groups):
            out[g] = {}
            for m, values in measures.items():
                v = values[labels == g]
                mean = np.nanmean(v, axis=0)
                if len(v) > 1:
                    half = stats.t.ppf(0.975, len(v) - 1) * np.nanstd(v, axis=0, ddof=1) / np.sqrt(len(v))
                else:
                    half = np.full_like(mean, np.nan)
                out[g][m] = np.stack([mean, mean - half, mean + half, np.nanmin(v, axis=0), np.nanmax(v, axis=0)])
    return out


def _order(groups: list[str], control: str | None, group_doses: dict[str, float]) -> list[str]:
    unique = list(dict.fromkeys(groups))
    return sorted(unique, key=lambda g: (g != control, group_doses.get(g, 0.0), g))


def safe_dose_summary(
    onsets,
    boot,
    measures: list[str],
    exposed: list[str],
    group_doses: dict[str, float],
    times: np.ndarray,
    confidence: float,
) -> dict:
    """Largest dose whose onset is not earlier than the lowest dose's, per measure and for the earliest measure."""
    if not exposed or not group_doses:
        return {}
    result = {}
    by_key = {(o.measure, o.group): o.time_min for o in onsets}
    alpha = (1 - confidence) / 2
    for i, m in enumerate([*measures, "any"]):
        if m == "any":
            point = {group_doses[g]: _earliest([by_key[(x, g)] for x in measures]) for g in exposed}
        else:
            point = {group_doses[g]: by_key[(m, g)] for g in exposed}
        estimate = largest_unaffected_dose(point)
        low = high = None
        if boot is not None:
            draws: list[float] = []
            for b in boot:
                idx = b.min(axis=0, where=b >= 0, initial=10**9) if m == "any" else b[i]
                dose = largest_unaffected_dose(
                    {
                        group_doses[g]: (None if idx[j] < 0 or idx[j] >= 10**9 else float(times[idx[j]]))
                        for j, g in enumerate(exposed)
                    }
                )
                if dose is None:  # only for no exposed group, refused above
                    raise ValueError("no exposed group to find a safe dose for")
                draws.append(dose)
            low, high = (float(q) for q in np.quantile(draws, [alpha, 1 - alpha], method="inverted_cdf"))
        result[m] = {"dose_J_per_cm2": estimate, "low": low, "high": high}
    return result


def _earliest(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


def write_reports(out: Path, series, measures: dict[str, np.ndarray], onsets, context: dict, settings) -> dict:
    """Write every output; return the JSON summary."""
    from .pipeline import MEASURES

    out.mkdir(parents=True, exist_ok=True)
    groups, control, group_doses = context["groups"], context["control"], context["group_doses"]
    times = series[0].field.times_min
    header, rows = per_frame_rows(series, groups)
    write_text_atomic(out / "timecourse.csv", _csv_text(header, rows))

    summary = group_summary(measures, groups)
    order = _order(groups, control, group_doses)
    group_rows = []
    for g in order:
        for t in range(len(times)):
            group_rows.append(
                [
                    g,
                    _fmt(group_doses.get(g)),
                    sum(1 for x in groups if x == g),
                    t,
                    _fmt(times[t]),
                    *[_fmt(summary[g][m][k, t]) for m in measures for k in range(3)],
                ]
            )
    group_header = [
        "group",
        "dose_J_per_cm2_total",
        "fields",
        "frame",
        "time_min",
        *[f"{m}_{k}" for m in measures for k in ("mean", "low95", "high95")],
    ]
    write_text_atomic(out / "timecourse_by_dose.csv", _csv_text(group_header, group_rows))

    exposed = [g for g in order if g != control] if control is not None else []
    onset_measures = list(dict.fromkeys(o.measure for o in onsets))  # P(sick) is absent when withheld
    safe = (
        safe_dose_summary(
            onsets, context["boot"], onset_measures, exposed, group_doses, times, settings.onset.confidence
        )
        if control is not None
        else {}
    )
    fit = _dose_response(series, groups, control)
    doc = {
        "what": "phototox timecourse: per-frame measures, onsets against control fields at the same time point",
        "pixel_size_um": context["pixel_um"],
        "interval_min": context["interval_min"],
        "model": context["model"],
        "model_note": (
            "P(sick) comes from DeadNet-style models trained on other cells and microscopes; check the "
            "model card (models/MODEL_CARD.md) for their domain before trusting it on these images"
            if context["model"]
            else "P(sick) not computed (--no-sickness)"
        ),
        "flow": f"scikit-image optical_flow_{settings.flow_method} on {context['flow_factor']}x{context['flow_factor']}"
        " block-averaged frames",
        "measures": {m: MEASURES[m][1] for m in measures},
        "onset_settings": {**vars(settings.onset), "persistence_frames": context["persistence_frames"]},
        "sickness_onsets_withheld": context["sickness_withheld"] or None,
        "out_of_domain_frames": {
            s.field.name: int(s.out_of_domain.sum()) for s in series if s.out_of_domain is not None
        },
        "mitosis_settings": vars(settings.mitosis),
        "fields": [
            {
                "field": s.field.name,
                "source": s.field.source,
                "group": g,
                "frames": len(s.field.frames),
                "dose": None
                if s.field.dose is None
                else {
                    "irradiance_mW_per_cm2": s.field.dose.irradiance_mw_cm2,
                    "exposure_ms_per_frame": s.field.dose.exposure_ms,
                    "exposed_frames": s.field.dose.frames,
                    "wavelength_nm": s.field.dose.wavelength_nm,
                    "dose_per_frame_J_per_cm2": s.field.dose.per_frame_j_cm2,
                    "total_dose_J_per_cm2": s.field.dose.total_j_cm2,
                },
                "mitotic_rounding_events": s.n_events,
                "mitotic_rounding_events_per_hour": s.n_events / (len(s.field.frames) * s.field.interval_min / 60),
                "persistent_round_objects": s.n_persistent,
                "rounding_events": [_track(t, s.field.interval_min) for t in s.events],
                "persistent_objects": [_track(t, s.field.interval_min) for t in s.persistent],
            }
            for s, g in zip(series, groups)
        ],
        "control_group": control,
        "onsets": [vars(o) for o in onsets],
        "onset_statement": None
        if control is not None
        else ("no onset can be given: no control fields (zero-dose fields in a doses file)"),
        "largest_dose_not_earlier_than_lowest": safe,
        "between_field_consistency": context["consistency"],
        "dose_response_final_frame": fit,
        "run_time": {
            "seconds": context["seconds"],
            "frames": context["frames"],
            "seconds_per_frame": context["seconds_per_frame"],
            "activity_workers": context["workers"],
        },
        "citation": CITATION_T98G,
    }
    write_text_atomic(out / "timecourse.json", json.dumps(doc, indent=2, default=_json_default))
    from .plots import plot_measures, plot_onsets

    plot_measures(summary, order, times, onsets, context, out / "timecourse_measures.png")
    written = ["timecourse.csv", "timecourse_by_dose.csv", "timecourse.json", "timecourse_measures.png"]
    if control is not None and exposed:
        plot_onsets(onsets, exposed, group_doses, times, onset_measures, out / "timecourse_onsets.png")
        written.append("timecourse_onsets.png")
    write_text_atomic(out / "timecourse_report.md", markdown(doc, series, written))
    doc["written"] = [str(out / w) for w in [*written, "timecourse_report.md"]]
    return doc


def _track(track, interval_min: float) -> dict:
    """A rounding track: first and last frame (0-based), start time, first position (field pixels y, x)."""
    y, x = track.points[0]
    return {
        "first_frame": track.start,
        "last_frame": track.end,
        "start_min": track.start * interval_min,
        "y_px": round(y, 1),
        "x_px": round(x, 1),
    }


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def _dose_response(series, groups, control) -> dict | None:
    """Reuse phototox dose-response on each field's last-frame P(sick), when there are three or more doses."""
    if control is None or "mean_sick_probability" not in series[0].values:
        return None
    from ..doses import fit_dose_response

    doses = np.array([s.field.dose.total_j_cm2 for s in series])
    scores = np.array([s.values["mean_sick_probability"][-1] for s in series])
    if len(np.unique(doses)) < 3:
        return None
    try:
        fit = fit_dose_response(doses, scores, margin=0.1, n_boot=200)
    except (RuntimeError, ValueError, Exception) as exc:
        return {"error": f"no fit: {exc}"}
    return {
        "unit": "J/cm2",
        "note": "logistic fit of last-frame mean P(sick) against total dose (phototox dose-response)",
        **vars(fit),
    }


def markdown(doc: dict, series, written: list[str]) -> str:
    """A short report for people."""
    lines = [
        "# phototox timecourse",
        "",
        (
            f"{len(series)} field(s), {doc['fields'][0]['frames']} frames every {doc['interval_min']:g} min, "
            f"pixel size {doc['pixel_size_um']:g} um. Model: {doc['model'] or 'none (P(sick) skipped)'}. "
            f"Motion: {doc['flow']}."
        ),
        "",
    ]
    lines += [
        "## Fields",
        "",
        "| field | group | total dose (J/cm2) | rounding events | events/h | persistent round objects |",
        "|---|---|---|---|---|---|",
    ]
    for f in doc["fields"]:
        dose = "" if f["dose"] is None else f"{f['dose']['total_dose_J_per_cm2']:.4g}"
        lines.append(
            f"| {f['field']} | {f['group']} | {dose} | {f['mitotic_rounding_events']} | "
            f"{f['mitotic_rounding_events_per_hour']:.2f} | {f['persistent_round_objects']} |"
        )
    persist = doc["onset_settings"]
    lines += [
        "",
        "## Onsets (against the control fields at the same time point)",
        "",
        f"A departure counts when it exceeds {persist['z_threshold']:g} noise units for "
        f"{persist['persistence_frames']} consecutive frames "
        f"({persist['persistence_frames'] * doc['interval_min']:.0f} min).",
        "",
    ]
    if doc["sickness_onsets_withheld"]:
        lines += [doc["sickness_onsets_withheld"] + ".", ""]
    if doc["onset_statement"]:
        lines.append(doc["onset_statement"] + ".")
    else:
        lines += [
            "| measure | group | onset (min) | 95% interval (min) | resamples with onset |",
            "|---|---|---|---|---|",
        ]
        for o in doc["onsets"]:
            if o["note"]:
                lines.append(f"| {o['measure']} | {o['group']} | {o['note']} | | |")
                continue
            onset = "none" if o["time_min"] is None else f"{o['time_min']:.0f} ({o['direction']})"
            low = "" if o["low_min"] is None else f"{o['low_min']:.0f}"
            high = "end of recording" if o["high_min"] is None else f"{o['high_min']:.0f}"
            lines.append(
                f"| {o['measure']} | {o['group']} | {onset} | {low} to {high} | {100 * o['found_fraction']:.0f}% |"
            )
        safe = doc["largest_dose_not_earlier_than_lowest"].get("any")
        if safe:
            interval = "" if safe["low"] is None else f" (95% interval {safe['low']:.4g} to {safe['high']:.4g})"
            lines += [
                "",
                (
                    f"Largest dose whose earliest onset (any measure) is not earlier than the lowest dose's: "
                    f"**{safe['dose_J_per_cm2']:.4g} J/cm2**{interval}."
                ),
            ]
    if doc["between_field_consistency"]:
        found = [c for c in doc["between_field_consistency"] if c["time_min"] is not None]
        lines += [
            "",
            "## Between-field check (each field against all others as controls)",
            "",
            f"{len(found)} departure(s) in {len(doc['between_field_consistency'])} field x measure tests"
            + (
                ": " + "; ".join(f"{c['field']} {c['measure']} at {c['time_min']:.0f} min" for c in found)
                if found
                else " -- the fields behave alike."
            ),
        ]
    lines += [
        "",
        f"Run time: {doc['run_time']['seconds_per_frame']:.2f} s per frame "
        f"(activity measured in {doc['run_time']['activity_workers']} process(es)).",
        "",
        "Files: " + ", ".join(written) + ".",
        "",
        doc["model_note"] + ".",
        "",
        doc["citation"] + ".",
    ]
    return "\n".join(lines) + "\n"


def write_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
