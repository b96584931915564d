"""Outputs of ``phototox timecourse``: per-frame CSV, per-dose CSV, JSON summary, PNG plots, Markdown."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np

from phototox.io.images import write_text_atomic
from phototox.stats.dose_tests import DoseTests, format_dose_tests
from phototox.timecourse.cells import field_per_cell_rates
from phototox.timecourse.measures import MEASURES

CITATION = (
    "P(sick): DeadNet, Richmond et al. (2017), arXiv:1701.06109; the readouts were checked on the Usiigaci "
    "T98G time-lapse, Tsai et al., SoftwareX 9 (2019), MIT licence (benchmarks/README.md)"
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
        "division_events_started",
        "failed_division_events_started",
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
                    *[int(c[t]) if c is not None else "" for c in (s.divisions, s.failed_divisions)],
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


def write_reports(out: Path, series, measures: dict[str, np.ndarray], onsets, context: dict, settings) -> dict:
    """Write every output; return the JSON summary."""
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
    tests = context["dose_tests"]
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
        "onset_rule": (
            "per exposed field and measure: a departure at a frame when the field lies outside the control "
            "fields' prediction interval for one new field at that frame (beyond the measure's floor); an onset "
            f"needs {context['persistence_frames']} consecutive departures; false onsets at most "
            f"{settings.onset.alpha:.0%} per measure over all frames and exposed fields (Bonferroni)"
        ),
        "sickness_onsets_withheld": context["sickness_withheld"] or None,
        "out_of_domain_frames": {
            s.field.name: int(s.out_of_domain.sum()) for s in series if s.out_of_domain is not None
        },
        "mitosis_settings": vars(settings.mitosis),
        "cell_counts": context.get("cell_counts"),
        "event_settings": vars(settings.events),
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
                "per_cell": field_per_cell_rates(s),
                "rounding_events": [_track(t, s.field.interval_min) for t in s.events],
                "persistent_objects": [_track(t, s.field.interval_min) for t in s.persistent],
                "events": [
                    {"first_round_frame": e.frame, "y_px": round(e.y, 1), "x_px": round(e.x, 1), "outcome": e.outcome}
                    for e in s.outcome_events
                ],
            }
            for s, g in zip(series, groups)
        ],
        "control_group": control,
        "onsets": [vars(o) for o in onsets],
        "onset_statement": None
        if control is not None
        else ("no onset can be given: no control fields (zero-dose fields in a doses file)"),
        "dose_tests": {m: t.as_dict() if isinstance(t, DoseTests) else {"verdict": t} for m, t in tests.items()},
        "dose_tests_text": {
            m: format_dose_tests(t, "J/cm2") if isinstance(t, DoseTests) else [t] for m, t in tests.items()
        },
        "between_field_consistency": context["consistency"],
        "run_time": {
            "seconds": context["seconds"],
            "frames": context["frames"],
            "seconds_per_frame": context["seconds_per_frame"],
            "activity_workers": context["workers"],
        },
        "citation": CITATION,
    }
    from phototox.timecourse.plots import no_onset_reason, plot_dose_tests, plot_measures, plot_onsets

    plot_measures(summary, order, times, onsets, context, out / "timecourse_measures.png")
    written = ["timecourse.csv", "timecourse_by_dose.csv", "timecourse.json", "timecourse_measures.png"]
    why = no_onset_reason(
        onsets,
        control,
        context["consistency"],
        settings.onset.alpha,
        context["persistence_frames"],
        context["sickness_withheld"] if context["model"] else "not computed (--no-sickness)",
    )
    doc["why_no_onset"] = why or None
    doc["onsets_figure_text"] = plot_onsets(
        onsets,
        exposed,
        group_doses,
        times,
        onset_measures,
        out / "timecourse_onsets.png",
        why,
        context["consistency"],
    )
    written.append("timecourse_onsets.png")
    if tests and plot_dose_tests(tests, out / "timecourse_doses.png"):
        written.append("timecourse_doses.png")
    write_text_atomic(out / "timecourse.json", json.dumps(doc, indent=2, default=_json_default))
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
    lines += ["", f"Per cell (cell counts: {doc.get('cell_counts')}):", ""]
    for f in doc["fields"]:
        rates = {k: "n/a" if v is None else f"{v:.3g}" for k, v in f["per_cell"].items() if k != "denominators"}
        lines.append(
            f"- {f['field']}: {rates['events_per_cell_per_hour']} resolved rounding events per cell per hour, "
            f"about {rates['fraction_never_rounding']} of cells never round (1 - events / mean cells), median mitosis "
            f"{rates['median_mitosis_min']} min ({f['per_cell']['denominators']})"
        )
    lines += [
        "",
        "## Onsets per field (against the control fields at the same time point)",
        "",
        doc["onset_rule"] + ".",
        "",
    ]
    if doc["sickness_onsets_withheld"]:
        lines += [doc["sickness_onsets_withheld"] + ".", ""]
    if doc["onset_statement"]:
        lines.append(doc["onset_statement"] + ".")
    else:
        lines += ["| measure | group | field | onset (min) |", "|---|---|---|---|"]
        for o in doc["onsets"]:
            onset = o["note"] or ("none" if o["time_min"] is None else f"{o['time_min']:.0f} ({o['direction']})")
            lines.append(f"| {o['measure']} | {o['group']} | {o['field']} | {onset} |")
    if doc["dose_tests_text"]:
        lines += [
            "",
            "## Doses against the zero-light controls (fields as units)",
            "",
            "Verdicts: `no difference shown`, `harmless (non-inferior)`, `not shown harmless`, `sicker`, "
            "`cannot test: ...`. P(sick) never makes a dose harmless.",
            "",
        ]
        for text in doc["dose_tests_text"].values():
            lines += ["```", *text, "```", ""]
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
