"""The one result schema: every column a result row carries, what it means, and each front end's name for it.

CSV and JSON tables (:mod:`phototox.results.outputs`), the server's result line (:mod:`phototox.results.analysis_requests`),
CellProfiler's image measurements and the Fiji Results table all take their columns from
:data:`COLUMNS` through :func:`columns`; ``tests/test_schema.py`` fails when a front end drifts.
The trust verdicts of one frame are the typed :class:`Trust`, never a free dict. Imports nothing
heavy (the CellProfiler plugin reads it when it loads).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Column:
    """One result column."""

    name: str
    kind: type
    group: str  # "image" (what it is), "map" (the answer), "trust", "controls"
    meaning: str
    cellprofiler: str = ""
    """CellProfiler image measurement (category Phototoxicity), "" when not measured there."""
    fiji: str = ""
    """Column of the Fiji Results table, "" when not shown there."""
    line: bool = False
    """Sent in the server's / ImageJ handler's ``key=value;...`` result line."""


COLUMNS: tuple[Column, ...] = (
    Column("path", str, "image", "the input file"),
    Column("frame", int, "image", "frame index in the file (0 = first)"),
    Column(
        "mean_sick_probability",
        float,
        "map",
        "mean P(sick) over the image (DeadNet classifier of 220 px windows)",
        "MeanSickProbability",
        "MeanSickProbability",
        True,
    ),
    Column(
        "sick_area_fraction",
        float,
        "map",
        "fraction of the image whose P(sick) is at or above the threshold",
        "SickAreaFraction",
        "SickAreaFraction",
        True,
    ),
    Column(
        "label", str, "map", "sick when the mean P(sick) reaches the threshold, else healthy", "Class", "Label", True
    ),
    Column("confidence", float, "map", "mean P(sick) of the class given", "Confidence", "Confidence", True),
    Column("threshold", float, "map", "P(sick) threshold", line=True),
    Column("stride", int, "map", "window step in pixels at the model's scale", line=True),
    Column("mode", str, "map", "dense (one convolutional pass) or exact (every window)", line=True),
    Column("windows", int, "map", "number of windows classified", line=True),
    Column(
        "engine",
        str,
        "map",
        "runtime that computed the map: torch or onnxruntime (same numbers), or torch-bf16 (approximate)",
        line=True,
    ),
    Column("model", str, "map", "the model's name", fiji="Model", line=True),
    Column("pixel_size_um", float, "trust", "pixel size used (um/px)", "PixelSizeUm", "PixelSize_um", True),
    Column(
        "pixel_size_source",
        str,
        "trust",
        "where the pixel size came from: user, file, assumed (model's), unknown",
        "PixelSizeAssumed",
        "PixelSizeSource",
        True,
    ),
    Column("model_pixel_size_um", float, "trust", "pixel size the model was trained at", "ModelPixelSizeUm", line=True),
    Column("domain_score", float, "trust", "distance of the image's features from training", "DomainScore", line=True),
    Column("domain_threshold", float, "trust", "largest in-domain score"),
    Column(
        "fine_detail", float, "trust", "fine-detail statistic (too fine = wrong pixel size)", "FineDetail", line=True
    ),
    Column("fine_detail_limit", float, "trust", "largest in-domain fine detail"),
    Column(
        "out_of_domain",
        bool,
        "trust",
        "either check says the image is unlike the training images: P(sick) not to be trusted",
        "OutOfDomain",
        "OutOfDomain",
        True,
    ),
    Column(
        "checks",
        str,
        "trust",
        "trust checks run: all (domain and quality) or none (--checks none: domain and quality columns blank, "
        "NOT CHECKED)",
    ),
    Column("out_of_focus", bool, "trust", "focus below a tenth of the model's reference", line=True),
    Column("saturated", bool, "trust", "more than 1% of pixels at the darkest or brightest value", line=True),
    Column("nearly_empty", bool, "trust", "under 5% of the image covered by cells", line=True),
    Column("focus", float, "trust", "normalised variance of the Laplacian of a Gaussian"),
    Column("clipped_fraction", float, "trust", "fraction of pixels at the extreme values"),
    Column("foreground_fraction", float, "trust", "fraction of the image covered by cells (texture)"),
    Column(
        "vs_controls",
        float,
        "controls",
        "the field's P(sick) (mean over the frames of this file) minus the mean of the control fields (files)",
    ),
    Column(
        "vs_controls_low",
        float,
        "controls",
        "lower end of that difference's 95% prediction interval for one new control field (t, k-1 df)",
    ),
    Column("vs_controls_high", float, "controls", "upper end of that prediction interval"),
    Column(
        "vs_controls_verdict",
        str,
        "controls",
        "'unlike your controls' (difference outside the prediction interval) or 'no difference shown'; "
        "one field cannot show 'sicker'",
    ),
    Column(
        "domain_p_value",
        float,
        "controls",
        "conformal p-value of the domain score against the calibrated model's held-out control fields: "
        "(1 + #fields scoring at least as high) / (k + 1); blank without calibration",
    ),
    Column(
        "unlike_controls_fraction",
        float,
        "controls",
        "fraction of the image's windows beyond the 'unlike your controls' line of a reference (phototox "
        "reference: trunk features of your control fields at the model's pixel size); not a sickness measure",
        "UnlikeControlsFraction",
        "UnlikeControlsFraction",
        True,
    ),
    Column(
        "unlike_controls_low",
        float,
        "controls",
        "lower end of that fraction's 95% Wilson interval (units: the image's area in whole 220 px windows)",
        "UnlikeControlsLow",
    ),
    Column("unlike_controls_high", float, "controls", "upper end of that interval", "UnlikeControlsHigh"),
    Column(
        "unlike_controls_p_value",
        float,
        "controls",
        "conformal p-value of the image's largest window novelty against the reference's held-out control "
        "fields: (1 + #fields at least as high) / (k + 1)",
        "UnlikeControlsPValue",
        "UnlikeControlsPValue",
        True,
    ),
    Column(
        "unlike_controls_rate",
        float,
        "controls",
        "the line's false-alarm rate: a field like the controls has any window beyond it at most this often",
        "UnlikeControlsRate",
    ),
)
"""Every column of a result row, in table order (provenance columns follow, see :mod:`phototox.results.provenance`)."""


def columns(
    group: str | None = None, *, cellprofiler: bool = False, fiji: bool = False, line: bool = False
) -> tuple[str, ...]:
    """Column names, optionally of one group or of those a front end shows."""
    return tuple(
        c.name
        for c in COLUMNS
        if (group is None or c.group == group)
        and (not cellprofiler or c.cellprofiler)
        and (not fiji or c.fiji)
        and (not line or c.line)
    )


def summary_of(result, windows: int) -> dict:
    """The scalar results of a map result (a frame's or a chunked map's) under their column names.

    ``result`` has an attribute for each ``map`` column it computes and a :class:`Trust`; the
    model's name is added by the caller that knows it.
    """
    answer = {name: getattr(result, name) for name in columns("map") if name not in ("windows", "model")}
    return {**answer, "windows": int(windows), **result.trust.as_dict()}


def column(name: str) -> Column:
    """The column called ``name`` (KeyError if there is none)."""
    for c in COLUMNS:
        if c.name == name:
            return c
    raise KeyError(name)


@dataclass
class Trust:
    """How far to trust one frame's answer: pixel sizes, domain, quality, and the control comparison.

    Its fields are exactly the ``trust`` and ``controls`` columns; None where not known (no domain
    statistics, no controls, checks switched off).
    """

    pixel_size_um: float | None = None
    pixel_size_source: str | None = None
    model_pixel_size_um: float | None = None
    domain_score: float | None = None
    domain_threshold: float | None = None
    fine_detail: float | None = None
    fine_detail_limit: float | None = None
    out_of_domain: bool | None = None
    checks: str | None = None
    out_of_focus: bool | None = None
    saturated: bool | None = None
    nearly_empty: bool | None = None
    focus: float | None = None
    clipped_fraction: float | None = None
    foreground_fraction: float | None = None
    vs_controls: float | None = None
    vs_controls_low: float | None = None
    vs_controls_high: float | None = None
    vs_controls_verdict: str | None = None
    domain_p_value: float | None = None
    unlike_controls_fraction: float | None = None
    unlike_controls_low: float | None = None
    unlike_controls_high: float | None = None
    unlike_controls_p_value: float | None = None
    unlike_controls_rate: float | None = None

    def set(self, values: dict) -> Trust:
        """Fill fields from a mapping of column names (a name that is no field is a programming error)."""
        names = {f.name for f in fields(self)}
        unknown = set(values) - names
        if unknown:
            raise KeyError(f"not trust columns: {', '.join(sorted(unknown))}")
        for key, value in values.items():
            setattr(self, key, value)
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def flags(self) -> list[str]:
        """The names of the warnings that are raised (out_of_domain, out_of_focus, saturated, nearly_empty)."""
        return [k for k in ("out_of_domain", "out_of_focus", "saturated", "nearly_empty") if getattr(self, k)]
