"""Plates: plate/well/field/time layout, per-well and per-plate summaries, plate heat maps.

A layout comes from a CSV (columns ``path``, ``well`` and optionally ``plate``, ``field``,
``time``, ``condition`` (or ``dose``); also ``row``/``column`` instead of ``well``) or from file names (MetaXpress-style
``..._B03_s2...`` or Operetta/Harmony-style ``r02c03f01...``, optional ``_t12``), with the plate
taken from the first folder below the given root. Numbers per well are the mean over its fields
(and frames) with their SD and count; per plate, the mean and SD over wells. With conditions,
each condition's wells are compared with the control condition's wells per time point through
:mod:`phototox.stats.compare_table` (wells are the units, plates the replicates when every condition
spans two or more plates): ``per_condition.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.errors import ManifestError
from phototox.io.images import atomic_path
from phototox.io.planned import check_outputs, file_identity, resolved, unique_names
from phototox.io.tables import read_csv

PLATE_FORMATS = {6: (2, 3), 12: (3, 4), 24: (4, 6), 48: (6, 8), 96: (8, 12), 384: (16, 24), 1536: (32, 48)}
WELL_RE = re.compile(r"^([A-Za-z]{1,2})[-_ ]?0*(\d{1,2})$")
NAME_PATTERNS = (
    re.compile(
        r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})(?:_s(?P<field>\d+))?(?:_w\d+)?(?:_t(?P<time>\d+))?(?=[_.\-\s]|$)"
    ),
    re.compile(r"r(?P<row>\d{2})c(?P<column>\d{2})f(?P<field>\d{2})(?:p\d{2})?(?:-?ch\d+)?(?:sk(?P<time>\d+))?"),
)
IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class Placement:
    """Where one image sits on a plate."""

    path: str
    plate: str
    well: str  # canonical, e.g. B03
    row: int  # 0-based
    column: int  # 0-based
    field: str = ""
    time: str = ""
    line: int = dataclasses.field(default=0, compare=False)  # of the layout CSV; 0 from file names
    condition: str = ""
    """light dose or treatment of the well (layout column ``condition`` or ``dose``); "" when not given"""


def row_name(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (1536-well plates)."""
    return chr(65 + index) if index < 26 else "A" + chr(65 + index - 26)


def parse_well(text: str, where: str) -> tuple[int, int]:
    """``B03``, ``b3``, ``AF48`` -> 0-based (row, column)."""
    m = WELL_RE.match(text.strip())
    if not m:
        raise ManifestError(f"{where}: well {text!r} is not like B03")
    letters, number = m.group(1).upper(), int(m.group(2))
    row = ord(letters[0]) - 65 if len(letters) == 1 else 26 + ord(letters[1]) - 65
    if number < 1 or (len(letters) == 2 and letters[0] != "A"):
        raise ManifestError(f"{where}: well {text!r} is not like B03")
    return row, number - 1


def well_name(row: int, column: int) -> str:
    return f"{row_name(row)}{column + 1:02d}"


def read_layout(path: str | Path, check_files: bool = True) -> list[Placement]:
    """A layout CSV (see module docstring); paths relative to the CSV's folder.

    Checked completely before any image is read (:func:`check_layout`): wells, missing files, an
    image listed twice; every problem names the layout file and its line(s).
    """

    path = Path(path)
    header, rows = read_csv(path, "layout")
    fields = {f.lower().strip(): f for f in header}
    if "path" not in fields or not ("well" in fields or {"row", "column"} <= fields.keys()):
        raise ManifestError(f"{path}: a plate layout needs columns path and well (or row and column)")
    out = []
    for n, raw in enumerate(rows, start=2):
        rec = {k: (raw.get(v) or "").strip() for k, v in fields.items()}
        where = f"{path}, line {n}"
        r, c = _layout_position(rec, where)
        if not rec["path"]:
            raise ManifestError(f"{where}: empty path")
        image = Path(rec["path"])
        image = image if image.is_absolute() else path.parent / image
        if check_files and not image.is_file():
            raise ManifestError(f"{where}: image {image}: no such file")
        plate = rec.get("plate") or "plate"
        condition = rec.get("condition") or rec.get("dose") or ""
        out.append(
            Placement(str(image), plate, well_name(r, c), r, c, rec.get("field", ""), rec.get("time", ""), n, condition)
        )
    if not out:
        raise ManifestError(f"{path}: the layout lists no images")
    check_layout(out, str(path))
    return out


def _layout_position(rec: dict[str, str], where: str) -> tuple[int, int]:
    """0-based (row, column) of one layout row, from ``well`` or ``row``/``column``."""
    if rec.get("well"):
        r, c = parse_well(rec["well"], where)
    else:
        try:
            r, c = int(rec.get("row", "")) - 1, int(rec.get("column", "")) - 1
        except ValueError:
            raise ManifestError(f"{where}: no well, and row/column are not whole numbers from 1") from None
    rows, cols = PLATE_FORMATS[max(PLATE_FORMATS)]
    if not (0 <= r < rows and 0 <= c < cols):
        raise ManifestError(f"{where}: row {r + 1}, column {c + 1} lies outside a 1536-well plate")
    return r, c


def _where(p: Placement) -> str:
    return f"line {p.line}" if p.line else p.path


def check_layout(placements: list[Placement], source: str) -> None:
    """Refuse an image placed twice: in two wells, or the same place on two rows (counted twice).

    Images are compared as files (any spelling, symbolic or hard link). One line names ``source``
    (the layout file or folder) and both rows.
    """

    seen: dict[object, Placement] = {}
    for p in placements:
        key = file_identity(p.path) or resolved(p.path)[1]
        first = seen.setdefault(key, p)
        if first is p:
            continue
        here = f"{source}, {_where(first)} and {_where(p)}"
        if (first.plate, first.well) != (p.plate, p.well):
            raise ManifestError(
                f"{here}: the image {p.path} is placed in two wells ({first.plate} {first.well} and "
                f"{p.plate} {p.well}); each image belongs to one well"
            )
        raise ManifestError(f"{here}: the image {p.path} is listed twice; list each image once")


def layout_from_folder(root: str | Path) -> list[Placement]:
    """Placements parsed from file names under ``root`` (plate = first sub-folder, if any)."""
    root = Path(root)
    placements = []
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        for pattern in NAME_PATTERNS:
            m = pattern.search(image.name)
            if not m:
                continue
            g = m.groupdict()
            if g.get("well"):
                r, c = parse_well(g["well"], str(image))
            else:
                r, c = int(g["row"]) - 1, int(g["column"]) - 1
            rel = image.relative_to(root).parts
            plate = rel[0] if len(rel) > 1 else root.name
            placements.append(
                Placement(
                    str(image),
                    plate,
                    well_name(r, c),
                    r,
                    c,
                    (g.get("field") or "").lstrip("0") or (g.get("field") or ""),
                    (g.get("time") or ""),
                )
            )
            break
    if not placements:
        raise ManifestError(
            f"{root}: no image file names with a well (like B03_s1 or r02c03f01); give a layout CSV instead"
        )
    check_layout(placements, str(root))
    return placements


def plate_shape(placements: list[Placement], plate_format: int | None = None) -> tuple[int, int]:
    """Rows and columns of the plate: the given format, else the smallest standard one that fits."""
    rows = max(p.row for p in placements) + 1
    cols = max(p.column for p in placements) + 1
    if plate_format:
        if plate_format not in PLATE_FORMATS:
            raise ManifestError(f"plate format {plate_format} unknown; use one of {sorted(PLATE_FORMATS)}")
        shape = PLATE_FORMATS[plate_format]
        if rows > shape[0] or cols > shape[1]:
            raise ManifestError(f"well {well_name(rows - 1, cols - 1)} does not fit a {plate_format}-well plate")
        return shape
    for _, shape in sorted(PLATE_FORMATS.items()):
        if rows <= shape[0] and cols <= shape[1]:
            return shape
    raise ManifestError(f"well {well_name(rows - 1, cols - 1)} lies outside a 1536-well plate")


def _time_key(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if not math.isnan(v)], np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else float("nan")


def join_rows(placements: list[Placement], rows: list[dict]) -> list[dict]:
    """Per-image (per-frame) rows with their plate, well, field and time (frame index as time for
    stacks when the layout gives no time)."""
    by_path: dict[str, Placement] = {p.path: p for p in placements}
    stacks = {r["path"] for r in rows if int(r["frame"]) > 0}
    out = []
    for r in rows:
        p = by_path[r["path"]]
        time = p.time or (str(r["frame"]) if r["path"] in stacks else "")
        out.append({"plate": p.plate, "well": p.well, "field": p.field, "time": time, **r})
    return out


WELL_FIELDS = (
    "plate",
    "time",
    "well",
    "row",
    "column",
    "n_images",
    "mean_sick_probability",
    "sd_sick_probability",
    "min_sick_probability",
    "max_sick_probability",
    "mean_sick_area_fraction",
    "threshold",
    "model",
)
PLATE_FIELDS = (
    "plate",
    "time",
    "n_wells",
    "n_images",
    "mean_sick_probability",
    "sd_over_wells",
    "wells_at_or_above_threshold",
    "threshold",
    "model",
)


def summarise_wells(joined: list[dict]) -> list[dict]:
    """One row per plate, time and well: mean, SD, min, max of P(sick) over its fields/frames."""
    groups: dict[tuple, list[dict]] = {}
    for r in joined:
        groups.setdefault((r["plate"], r["time"], r["well"]), []).append(r)
    out = []
    for (plate, time, well), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0], _time_key(kv[0][1]), parse_well(kv[0][2], "")[::-1])
    ):
        probs = [float(m["mean_sick_probability"]) for m in members]
        mean, sd = _stats(probs)
        area, _ = _stats([float(m["sick_area_fraction"]) for m in members])
        row, column = parse_well(well, "")
        out.append(
            {
                "plate": plate,
                "time": time,
                "well": well,
                "row": row_name(row),
                "column": column + 1,
                "n_images": len(members),
                "mean_sick_probability": mean,
                "sd_sick_probability": sd,
                "min_sick_probability": float(np.nanmin(probs)) if not all(map(math.isnan, probs)) else math.nan,
                "max_sick_probability": float(np.nanmax(probs)) if not all(map(math.isnan, probs)) else math.nan,
                "mean_sick_area_fraction": area,
                "threshold": members[0]["threshold"],
                "model": members[0]["model"],
            }
        )
    return out


def summarise_plates(wells: list[dict]) -> list[dict]:
    """One row per plate and time: mean and SD over well means; wells at or above the threshold."""
    groups: dict[tuple, list[dict]] = {}
    for w in wells:
        groups.setdefault((w["plate"], w["time"]), []).append(w)
    out = []
    for (plate, time), members in sorted(groups.items(), key=lambda kv: (kv[0][0], _time_key(kv[0][1]))):
        means = [m["mean_sick_probability"] for m in members]
        mean, sd = _stats(means)
        threshold = float(members[0]["threshold"])
        out.append(
            {
                "plate": plate,
                "time": time,
                "n_wells": len(members),
                "n_images": sum(m["n_images"] for m in members),
                "mean_sick_probability": mean,
                "sd_over_wells": sd,
                "wells_at_or_above_threshold": sum(1 for v in means if v >= threshold),
                "threshold": threshold,
                "model": members[0]["model"],
            }
        )
    return out


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    """A CSV with a fixed header, written atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def well_matrix(wells: list[dict], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns) arrays of mean P(sick), SD and image count per well (NaN/0 where empty)."""
    mean = np.full(shape, np.nan)
    sd = np.full(shape, np.nan)
    count = np.zeros(shape, int)
    for w in wells:
        r, c = parse_well(w["well"], "")
        mean[r, c], sd[r, c], count[r, c] = w["mean_sick_probability"], w["sd_sick_probability"], w["n_images"]
    return mean, sd, count


def plot_plate_heatmap(wells: list[dict], shape: tuple[int, int], path: Path, title: str) -> np.ndarray:
    """Heat map of mean P(sick) per well (empty wells hatched grey); returns the plotted matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, sd, count = well_matrix(wells, shape)
    rows, cols = shape
    fig, ax = plt.subplots(figsize=(max(5.0, cols * 0.42 + 2.2), max(3.2, rows * 0.42 + 1.6)), dpi=110)
    ax.set_facecolor("#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(mean), cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
    empty = np.argwhere(count == 0)
    for r, c in empty:
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#9a9a9a", lw=0))
    if cols <= 24:
        for r in range(rows):
            for c in range(cols):
                if count[r, c]:
                    text = f"{mean[r, c]:.2f}" + (f"\n±{sd[r, c]:.2f}" if cols <= 12 and not np.isnan(sd[r, c]) else "")
                    ax.text(
                        c,
                        r,
                        text,
                        ha="center",
                        va="center",
                        fontsize=7 if cols <= 12 else 5,
                        color="white" if mean[r, c] < 0.6 else "black",
                    )
    ax.set_xticks(range(cols), [str(c + 1) for c in range(cols)], fontsize=7)
    ax.set_yticks(range(rows), [row_name(r) for r in range(rows)], fontsize=7)
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="both", length=0)
    ax.xaxis.tick_top()
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("mean P(sick) over fields (±SD)" if cols <= 12 else "mean P(sick) over fields")
    ax.set_title(title, fontsize=8, pad=18)
    fig.tight_layout()
    with atomic_path(path.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return mean


TABLE_NAMES = ("per_image.csv", "per_well.csv", "per_plate.csv")


def heatmap_paths(keys: list[tuple[str, str]], out: Path) -> dict[tuple[str, str], Path]:
    """One heat map per (plate, time): ``plate_<plate>[_t<time>]_heatmap.png`` in ``out``.

    Plate and time names come from user data; :func:`phototox.io.planned.unique_names` makes them
    safe file-name parts and keeps distinct values apart (``../x`` stays inside ``out``).
    """

    plates = unique_names((p for p, _ in keys), "plate")
    times = unique_names((t for _, t in keys if t), "time")
    return {(p, t): out / f"plate_{plates[p]}{f'_t{times[t]}' if t else ''}_heatmap.png" for p, t in keys}


CONDITION_TABLE = "per_condition.csv"


def plate_report_paths(placements: list[Placement], out: Path, keys: list[tuple[str, str]] | None = None) -> list[Path]:
    """Every file :func:`write_plate_report` writes (heat maps of the layout's times unless ``keys``)."""
    keys = keys if keys is not None else sorted({(p.plate, p.time) for p in placements})
    conditions = [out / CONDITION_TABLE] if any(p.condition for p in placements) else []
    return [out / n for n in TABLE_NAMES] + conditions + list(heatmap_paths(keys, out).values())


def compare_conditions(joined: list[dict], placements: list[Placement], control: str | None) -> list[dict]:
    """Each condition's wells against the control condition's wells, per time point (the comparison engine).

    Wells are the units (their fields and frames averaged); plates are the replicates when every
    condition spans at least two plates. ``control`` defaults to ``0`` or ``control`` when present.
    """
    from phototox.stats.compare_table import TableSpec, compare_rows

    condition_of = {p.path: p.condition for p in placements}
    if any(not c for c in condition_of.values()):
        missing = next(p for p in placements if not p.condition)
        raise ManifestError(f"{_where(missing)}: no condition for {missing.path} (give every image one)")
    names = set(condition_of.values())
    if control is None:
        control = next((c for c in ("0", "control") if c in names), None)
        if control is None:
            raise ManifestError(
                f"no '0' or 'control' condition among {sorted(names)}: name it with --control-condition"
            )
    plates_per_condition = [len({p.plate for p in placements if p.condition == c}) for c in names]
    by_plate = min(plates_per_condition) >= 2
    out: list[dict] = []
    for time in sorted({r["time"] for r in joined}, key=_time_key):
        rows = [
            {
                "condition": condition_of[r["path"]],
                "value": float(r["mean_sick_probability"]),
                "out_of_domain": str(r.get("out_of_domain", "")).lower() in ("true", "1"),
                "line": r["path"],
                "field": (r["plate"], r["well"]),
                **({"replicate": r["plate"]} if by_plate else {}),
            }
            for r in joined
            if r["time"] == time and not math.isnan(float(r["mean_sick_probability"]))
        ]
        spec = TableSpec("mean_sick_probability", "condition", control, readout="P(sick)")
        result = compare_rows(rows, spec, f"plate layout, time {time or '-'}")
        out += [{"time": time, **row} for row in result.rows()]
    return out


def write_plate_report(
    placements: list[Placement],
    rows: list[dict],
    out: Path,
    plate_format: int | None = None,
    pixel_note: str = "",
    control: str | None = None,
) -> list[Path]:
    """per_image.csv, per_well.csv, per_plate.csv, per_condition.csv (with conditions) and one heat map
    per plate and time point.

    Every path is checked against the images and kept inside ``out`` before the first is written
    (times of stacks are known only now).
    """
    from phototox.results.outputs import SUMMARY_FIELDS

    joined = join_rows(placements, rows)
    wells = summarise_wells(joined)
    plates = summarise_plates(wells)
    keys = [(plate["plate"], plate["time"]) for plate in plates]
    check_outputs(plate_report_paths(placements, out, keys), [p.path for p in placements], root=out)
    maps = heatmap_paths(keys, out)
    written = [out / n for n in TABLE_NAMES]
    write_csv(written[0], joined, ("plate", "well", "field", "time", *tuple(SUMMARY_FIELDS)))
    write_csv(written[1], wells, WELL_FIELDS)
    write_csv(written[2], plates, PLATE_FIELDS)
    if any(p.condition for p in placements):
        comparisons = compare_conditions(joined, placements, control)
        written.append(out / CONDITION_TABLE)
        write_csv(written[-1], comparisons, tuple(comparisons[0]) if comparisons else ("time",))
    for plate in plates:
        members = [w for w in wells if w["plate"] == plate["plate"] and w["time"] == plate["time"]]
        shape = plate_shape([p for p in placements if p.plate == plate["plate"]], plate_format)
        png = maps[(plate["plate"], plate["time"])]
        when = f", time {plate['time']}" if plate["time"] else ""
        title = (
            f"{plate['plate']}{when}: "
            f"mean P(sick) per well ({plate['n_images']} images, {plate['n_wells']} wells; "
            f"{plate['wells_at_or_above_threshold']} at or above {plate['threshold']:g})\n"
            f"model: {plate['model']}{pixel_note}"
        )
        plot_plate_heatmap(members, shape, png, title)
        written.append(png)
    return written
