"""Time-course figures: every measure against time (one line per dose, 95% bands, onsets marked), onset vs dose."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.io.images import atomic_path
from phototox.timecourse.dose_verdicts import READOUTS
from phototox.timecourse.measures import MEASURES, SICKNESS_MEASURES
from phototox.timecourse.onset import NO_CONTROLS


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


TITLE_PT = 10
"""Panel titles, in points (readable at the saved 100 dpi)."""
TITLE_CHARS = 52
"""Panel titles wrap at this many characters, so that neighbouring titles never overlap."""
NOTE_PT = 9
"""Notes and legends, in points."""
MIN_SPAN = {
    "mean_sick_probability": 0.2,
    "sick_area_fraction": 0.2,
    "confluence": 0.2,
    "mitotic_events_per_hour": 4.0,
    "division_events_per_hour": 4.0,
}
"""Smallest y-axis span per measure, so that a flat series is not drawn as a dramatic one."""


def _colours(order: list[str], by_dose: bool = True) -> dict[str, str | tuple[float, float, float, float]]:
    """A matplotlib colour per group: black for the controls; doses ordered on plasma (RGBA), from
    purple to orange (never the pale yellow end); fields without doses get tab10's distinct hues."""
    import matplotlib

    exposed = [g for g in order if g != "control"]
    if not by_dose and len(exposed) <= 10:
        tab = matplotlib.colormaps["tab10"]
        return {g: tab(i) for i, g in enumerate(exposed)} | {"control": "black"}
    cmap = matplotlib.colormaps["plasma"]
    colours: dict[str, str | tuple[float, float, float, float]] = {
        g: cmap(0.05 + 0.75 * i / max(1, len(exposed) - 1)) for i, g in enumerate(exposed)
    }
    colours["control"] = "black"
    return colours


def y_limits(measure: str, low: float, high: float) -> tuple[float, float]:
    """Y-axis limits that do not magnify noise: non-negative measures start at zero, and every axis
    spans at least :data:`MIN_SPAN` (or 20% of its largest value) around the data."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return 0.0, 1.0
    span = max(high - low, MIN_SPAN.get(measure, 0.0), 0.2 * max(abs(low), abs(high)), 1e-9)
    if low >= 0:
        return 0.0, max(high, span) * 1.05
    middle = (low + high) / 2
    return middle - 0.55 * span, middle + 0.55 * span


def plot_measures(summary, order: list[str], times: np.ndarray, onsets, context: dict, path: Path) -> None:
    """One panel per measure; x: time (h); a line and 95% band per group; dashed line at each onset."""
    plt = _plt()
    measures = list(next(iter(summary.values())))
    cols = 3 if len(measures) > 4 else 2
    rows = int(np.ceil(len(measures) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    colours = _colours(order, by_dose=context["control"] is not None)
    hours = times / 60.0
    counts = {g: sum(1 for x in context["groups"] if x == g) for g in order}
    for ax, m in zip(axes.ravel(), measures):
        seen: list[np.ndarray] = []
        for g in order:
            mean, _, _, low, high = summary[g][m]
            seen += [mean, low, high]
            label = f"{g} ({counts[g]} field{'s' if counts[g] > 1 else ''})"
            ax.plot(hours, mean, color=colours.get(g), lw=1.6, label=label)
            if counts[g] > 1:
                ax.fill_between(hours, low, high, color=colours.get(g), alpha=0.15, lw=0)
        for o in onsets:
            if o.measure == m and o.time_min is not None:
                ax.axvline(o.time_min / 60, color=colours.get(o.group), ls="--", lw=1)
                ax.text(
                    o.time_min / 60,
                    0.98,
                    " onset",
                    color=colours.get(o.group),
                    fontsize=NOTE_PT,
                    va="top",
                    transform=ax.get_xaxis_transform(),
                )
        values = np.concatenate([np.ravel(v) for v in seen])
        values = values[np.isfinite(values)]
        if values.size:
            ax.set_ylim(*y_limits(m, float(values.min()), float(values.max())))
        ax.set_xlabel("time (h)")
        ax.set_ylabel(MEASURES[m][0])
        ax.set_title(textwrap.fill(MEASURES[m][1], TITLE_CHARS), fontsize=TITLE_PT)
        if context.get("sickness_withheld") and m in SICKNESS_MEASURES:
            ax.set_title(
                textwrap.fill(MEASURES[m][1], TITLE_CHARS)
                + "\nframes outside the model's domain: not interpretable, no onset",
                fontsize=TITLE_PT,
            )
            ax.set_facecolor("0.93")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(measures) :]:
        ax.set_axis_off()
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    legend_title = context.get("legend_title") or ("total light dose" if context["control"] is not None else "field")
    spare = axes.ravel()[len(measures) :]
    top = 1.0  # the panels' share of the figure height; the rest holds the legend, above the titles
    if len(spare):
        spare[0].legend(handles, labels, loc="center", title=legend_title, fontsize=NOTE_PT, frameon=False)
    else:
        top = 1.0 - (0.35 + 0.22 * int(np.ceil(len(labels) / 6))) / (3.6 * rows)
        fig.legend(
            handles,
            labels,
            loc="upper center",
            ncol=min(len(labels), 6),
            title=legend_title,
            fontsize=NOTE_PT,
            bbox_to_anchor=(0.5, 1.0),
        )
    band = "lines: mean over fields, bands: range over fields; " if context["control"] is not None else ""
    note = (
        "dashed: onset against controls at the same time point"
        if context["control"] is not None
        else "no control fields: no onset can be given"
    )
    fig.text(
        0.5,
        -0.01,
        f"{band}{note}; pixel {context['pixel_um']:g} um, frame every {context['interval_min']:g} min",
        ha="center",
        fontsize=NOTE_PT,
    )
    fig.tight_layout(rect=(0.0, 0.0, 1.0, top))
    write_png(fig, path)


def no_onset_reason(
    onsets, control: str | None, consistency: list[dict], alpha: float, persistence: int, sickness: str = ""
) -> str:
    """Why the onsets figure shows no onset ("" when some exposed field has one): no control fields,
    too few of them, or no departure beyond the family-wise false-onset level."""
    if any(o.time_min is not None for o in onsets):
        return ""
    level = f"the family-wise false-onset level ({alpha:.0%} per measure over all frames and fields, {persistence} consecutive frames)"
    notes = list(dict.fromkeys(o.note for o in onsets if o.note))
    if notes:
        lines = notes
    elif control is not None and not onsets:
        lines = ["no onset: every field is a control (no exposed fields)"]
    elif control is None:
        lines = [NO_CONTROLS + " -- pass --doses with zero-dose fields"]
    else:
        lines = [f"no onset: no exposed field departs from the control fields beyond {level}"]
    if control is None and consistency:
        found = [c for c in consistency if c["time_min"] is not None]
        fields = len(dict.fromkeys(c["field"] for c in consistency))
        lines.append(
            f"between-field check (each of the {fields} fields against the others as controls): "
            + (f"{len(found)} departure(s) beyond {level}" if found else f"no departure beyond {level}")
        )
    if sickness:
        lines.append(sickness if "P(sick)" in sickness else "P(sick): " + sickness)
    return "\n".join(lines)


def plot_onsets(
    onsets,
    exposed: list[str],
    group_doses: dict[str, float],
    times: np.ndarray,
    measures: list[str],
    path: Path,
    why: str = "",
    consistency: list[dict] | None = None,
) -> list[str]:
    """Onset time (h) of each exposed field against cumulative dose, one marker colour per measure;
    without doses, each field's departure in the between-field check (``consistency``). ``why``
    (see :func:`no_onset_reason`) is written in the figure. Returns every text the figure carries."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.6, 5.0))
    end = float(times[-1]) / 60
    by_dose = bool(exposed)
    checks = onsets if by_dose else [_Check(**c) for c in consistency or []]
    fields = list(dict.fromkeys(c.field for c in checks)) if not by_dose else []
    measures = measures or list(dict.fromkeys(c.measure for c in checks))
    offsets = np.linspace(-0.03, 0.03, len(measures)) if by_dose else np.linspace(-0.25, 0.25, len(measures))
    tab = plt.get_cmap("tab10")
    for k, m in enumerate(measures):
        xs, ys, none_x = [], [], []
        for o in checks:
            if o.measure != m or (by_dose and o.group not in exposed):
                continue
            x = group_doses[o.group] * (1 + offsets[k]) if by_dose else fields.index(o.field) + offsets[k]
            if o.time_min is None:
                none_x.append(x)
            else:
                xs.append(x)
                ys.append(o.time_min / 60)
        colour = tab(k % 10)
        ax.scatter(xs, ys, marker="o", s=30, color=colour, label=MEASURES.get(m, (m,))[0])
        if none_x:
            ax.scatter(none_x, [end] * len(none_x), marker="^", color=colour, s=40)
    ax.axhline(end, color="grey", lw=0.8, ls=":")
    ax.annotate(
        " end of recording (triangles: no onset)",
        (0.01, end),
        xytext=(0, -8),  # below the triangles drawn on the line
        textcoords="offset points",
        fontsize=NOTE_PT,
        va="top",
        color="grey",
        xycoords=("axes fraction", "data"),
    )
    ax.set_ylim(0, end * 1.08)
    if by_dose:
        ax.set_xscale("log")
        ticks = sorted(group_doses[g] for g in exposed)
        ax.set_xticks(ticks, [f"{d:g}" for d in ticks])
        ax.minorticks_off()
        ax.set_xlabel("cumulative light dose over the recording (J/cm2)")
        ax.set_title(
            "when each exposed field departs from the control fields (one marker per field)", fontsize=TITLE_PT
        )
    else:
        ax.set_xticks(range(len(fields)), fields, rotation=20, ha="right", fontsize=NOTE_PT)
        ax.set_xlim(-0.6, max(len(fields), 1) - 0.4)
        ax.set_xlabel("field")
        ax.set_title("no control fields: each field against the others (between-field check)", fontsize=TITLE_PT)
    ax.set_ylabel("onset time after the first frame (h)")
    ax.grid(alpha=0.3)
    if measures:
        ax.legend(
            fontsize=NOTE_PT, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="measure"
        )  # never over the text
    if why:
        ax.text(
            0.5,
            0.5,
            "\n".join(textwrap.fill(line, 70) for line in why.split("\n")),
            ha="center",
            va="center",
            fontsize=NOTE_PT + 1,
            transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "0.5"},
        )
    fig.tight_layout()
    texts = [t.get_text() for t in fig.findobj(plt.Text) if t.get_text()]
    write_png(fig, path)
    return texts


@dataclass
class _Check:
    """One row of the between-field check (``leave_one_out``), as plotted."""

    measure: str
    group: str
    field: str
    time_min: float | None
    direction: str = ""
    frame_level: float = 0.0
    note: str = ""


def _short_verdict(verdict: str) -> str:
    """A verdict in a word or two, for a label under its dose."""
    for start, short in (
        ("harmless", "harmless"),
        ("not shown harmless", "not shown\nharmless"),
        ("not tested", "not tested\n(sequence\nstopped)"),
        ("not called harmless", "no sensitivity"),
        ("cannot test: P(sick) out", "out of domain"),
        ("cannot test", "cannot test"),
    ):
        if verdict.startswith(start):
            return short
    return verdict[:16]


def _unplotted(t) -> str:
    """Words for a readout with no drawable change: why not, and its verdicts when it has them."""
    if isinstance(t, str):
        return t
    verdicts = "; ".join(f"{d.dose:g}: {d.verdict}" for d in t.doses)
    return f"the controls' mean is 0: no change in % of it can be drawn. Verdicts: {verdicts}"


def plot_dose_tests(tests: dict, path: Path, unit: str = "J/cm2") -> bool:
    """Each biological readout's doses against the zero-light controls: the change relative to the
    control mean with its two-sided 95% interval, the margin (the harm accepted) and each verdict.

    ``tests``: readout -> :class:`phototox.stats.dose_tests.DoseTests` (or a ``cannot test`` string, shown
    as words). Returns False (nothing written) when no readout has tests.
    """
    from phototox.stats.dose_tests import DoseTests

    judged = {m: t for m, t in tests.items() if isinstance(t, DoseTests) and t.control_mean}
    if not judged and not tests:
        return False
    plt = _plt()
    panels = max(1, len(tests))
    cols = min(3, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.ravel()[len(tests) :]:
        ax.set_axis_off()
    for ax, (measure, t) in zip(axes.ravel(), tests.items()):
        if measure not in judged:
            ax.text(
                0.5, 0.5, textwrap.fill(_unplotted(t), 40), ha="center", va="center", fontsize=9, transform=ax.transAxes
            )
            ax.set_axis_off()
            ax.set_title(textwrap.fill(READOUTS.get(measure, measure), TITLE_CHARS), fontsize=10)
            continue
        scale = 100.0 / abs(t.control_mean)
        sign = 1.0 if t.higher_is_harm else -1.0
        ax.axhline(0, color="black", lw=0.8)
        ax.axhline(sign * 100 * t.margin, color="tab:red", lw=1, ls=":", label=f"margin: {t.margin:.0%} harm")
        positions = np.arange(len(t.doses))
        for x, d in zip(positions, t.doses, strict=True):
            c = d.comparison
            colour = "tab:green" if d.verdict.startswith("harmless") else "tab:red"
            ni = d.non_inferiority
            if ni is not None and ni.harm_upper is not None:  # the bound the non-inferiority test used
                ax.plot([x + 0.18], [sign * ni.harm_upper * scale], marker=4, color=colour, ms=8, ls="")
            if c.low is None or c.high is None:
                ax.plot([x], [c.effect * scale], "x", color="0.4", ms=7)
            else:
                ax.errorbar(
                    [x],
                    [c.effect * scale],
                    yerr=[[(c.effect - c.low) * scale], [(c.high - c.effect) * scale]],
                    fmt="s",
                    color=colour,
                    ms=5,
                    capsize=4,
                )
            ax.annotate(
                _short_verdict(d.verdict),
                (x, 0),
                xytext=(0, -14),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=7,
                color=colour,
                xycoords=("data", "axes fraction"),
                annotation_clip=False,
            )
        ax.set_xticks(positions, [f"{d.dose:g}" for d in t.doses])
        ax.set_xlim(-0.6, len(t.doses) - 0.4)
        ax.set_xlabel(f"light dose ({unit})", labelpad=34)
        ax.set_ylabel("change against the controls (% of their mean)")
        ax.set_title(textwrap.fill(t.readout, TITLE_CHARS), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        "doses against the zero-light controls: mean change and two-sided 95% interval (squares), "
        "one-sided 95% bound of the harm (triangle), margin (dotted)\n"
        "green = harmless (non-inferior: the bound within the margin), red = not shown harmless, x = cannot test",
        fontsize=9,
    )
    fig.tight_layout()
    write_png(fig, path)
    return True


def write_png(fig, path: Path) -> None:
    """Save a figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
