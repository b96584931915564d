"""Writing map results: float32 map TIFF (stack for time-lapses), overlay PNG, summary tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from phototox.errors import OutputError
from phototox.io.images import atomic_path, write_text_atomic, write_tiff_atomic
from phototox.io.planned import check_distinct_inputs
from phototox.maps.inference import FrameResult
from phototox.results.map_tiff import map_tiff_tags
from phototox.results.plots import plot_map_overlay
from phototox.schema import columns

SUMMARY_FIELDS = columns()
"""Columns of every summary row, from the one result schema (:mod:`phototox.schema`); provenance follows."""


def output_stems(paths: list[Path]) -> dict[Path, str]:
    """Unique output name stems for input files.

    The same file given twice is refused; inputs whose names clash (``a/x.tif`` and ``b/x.tif``,
    or ``x.tif`` and ``x.png``) are disambiguated with their folder name and, if that is not
    enough, their suffix; a clash that remains is refused naming both inputs.
    """

    check_distinct_inputs(paths)
    candidates = (
        lambda p: p.stem,
        lambda p: f"{p.parent.name}_{p.stem}",
        lambda p: f"{p.parent.name}_{p.stem}_{p.suffix.lstrip('.').lower()}",
    )
    stems = {p: candidates[0](p) for p in paths}
    for rule in candidates[1:]:
        values = list(stems.values())
        clashing = {s for s in values if values.count(s) > 1}
        if not clashing:
            break
        stems.update({p: rule(p) for p in paths if stems[p] in clashing})
    owner: dict[str, Path] = {}
    for p, stem in stems.items():
        if stem in owner:
            raise OutputError(
                f"{p}: its outputs would have the same names as those of {owner[stem]} "
                f"({stem}_map.tif); rename one of them"
            )
        owner[stem] = p
    return stems


def map_output_paths(out_dir: Path, stem: str, overlay: bool = True, novelty: bool = False) -> list[Path]:
    """The files :func:`write_map_outputs` writes for one input (``novelty``: with a reference)."""
    paths = [out_dir / f"{stem}_map.tif"] + ([out_dir / f"{stem}_overlay.png"] if overlay else [])
    if novelty:
        paths += [out_dir / f"{stem}_unlike_controls.tif"] + (
            [out_dir / f"{stem}_unlike_controls.png"] if overlay else []
        )
    return paths


def write_map_outputs(
    out_dir: Path,
    stem: str,
    frames: np.ndarray,
    results: list[FrameResult],
    overlay: bool = True,
    provenance: dict | None = None,
    mask_background: bool = False,
) -> list[Path]:
    """``<stem>_map.tif`` (float32, image size, one page per frame) and ``<stem>_overlay.png``.

    The TIFF is calibrated when the pixel size is known (:func:`map_tiff_tags`); ``provenance``
    (:func:`phototox.results.provenance.provenance`) goes into its ImageJ ``Info``.
    With ``mask_background`` the overlay leaves places without cells uncoloured (a texture
    estimate, :func:`phototox.results.overlay.foreground_mask`) and its title gives the sick fraction
    both of the whole field and of the cell-covered area.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = np.stack([r.sick_map for r in results]).astype(np.float32)
    map_path = map_output_paths(out_dir, stem, overlay)[0]
    trust = results[0].trust
    write_tiff_atomic(
        map_path,
        maps if len(maps) > 1 else maps[0],
        **map_tiff_tags(
            len(maps) > 1,
            trust.pixel_size_um,
            trust.pixel_size_source,
            {**(provenance or {}), "engine": results[0].engine, "checks": trust.checks},
        ),
    )
    written = [map_path]
    if overlay:
        index = len(results) - 1  # the last frame: for a time-lapse, the one with the most light
        r = results[index]
        title = (
            f"{stem}{f' frame {index}' if len(results) > 1 else ''}: mean P(sick) {r.mean_sick_probability:.2f} "
            f"-> {r.label}\n{100 * r.sick_area_fraction:.0f}% of the field has P(sick) >= {r.threshold:g}"
            + trust_caption(r)
            + ("\ntrust checks: none (--checks none): domain and quality NOT CHECKED" if trust.checks == "none" else "")
            + (f"\nmodel {provenance['model_name']}" if provenance and provenance.get("model_name") else "")
        )
        mask = None
        if mask_background:
            from phototox.results.batch import cell_fractions
            from phototox.results.overlay import foreground_mask

            mask = foreground_mask(frames[index])
            covered, sick_of_cells = cell_fractions(r, mask)
            title += (
                f"; cells cover {100 * covered:.0f}% of the field, "
                f"{100 * sick_of_cells:.0f}% of the cell-covered area is sick"
            )
        png = map_output_paths(out_dir, stem)[1]
        source = r.trust.pixel_size_source or ""
        plot_map_overlay(
            frames[index],
            r.sick_map,
            png,
            title,
            threshold=r.threshold,
            stride=r.stride,
            mask=mask,
            pixel_size_um=r.trust.pixel_size_um,
            scale_note=" (pixel size assumed)" if source.startswith("assumed") else "",
        )
        written.append(png)
    if results[0].novelty_map is not None:
        from phototox.results.novelty_outputs import write_novelty_outputs

        written += write_novelty_outputs(out_dir, stem, frames, results, overlay, provenance)
    return written


def trust_caption(result: FrameResult) -> str:
    """Second title line of an overlay: pixel size used, domain and quality flags (blank if unknown)."""
    t = result.trust
    if t.pixel_size_source is None:
        return ""
    size = "pixel size unknown" if t.pixel_size_um is None else f"{t.pixel_size_um:g} um/px ({t.pixel_size_source})"
    flags = [k.replace("_", " ").upper() for k in t.flags]
    return f"\n{size}" + (
        f"; {', '.join(flags)}" if flags else "; in the model's domain" if t.out_of_domain is not None else ""
    )


def summary_rows(path: str, results: list[FrameResult], model_name: str, provenance: dict | None = None) -> list[dict]:
    """One summary row per frame; ``provenance`` adds the phototox version and the model's name and checksum."""
    rows = []
    for i, r in enumerate(results):
        row = {"path": path, "frame": i, **r.summary(), "model": model_name}
        rows.append({**{k: row.get(k) for k in SUMMARY_FIELDS}, **(provenance or {})})
    return rows


def write_summary(path: Path, rows: list[dict]) -> None:
    """CSV or JSON (by suffix) of summary rows, written atomically."""
    if path.suffix.lower() == ".json":
        write_text_atomic(path, json.dumps(rows, indent=2))
        return
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in SUMMARY_FIELDS]
        writer = csv.DictWriter(handle, fieldnames=[*SUMMARY_FIELDS, *extra])
        writer.writeheader()
        writer.writerows(rows)


def format_rows(rows: list[dict]) -> str:
    """A fixed-width table of summary rows for the terminal."""
    header = f"{'image':40s} {'frame':>5s} {'P(sick)':>8s} {'sick area':>9s} {'class':>8s} {'conf':>6s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        name = Path(r["path"]).name
        name = name if len(name) <= 40 else "..." + name[-37:]
        notes = [
            k.replace("_", " ") for k in ("out_of_domain", "out_of_focus", "saturated", "nearly_empty") if r.get(k)
        ]
        if str(r.get("pixel_size_source") or "").startswith("assumed"):
            notes.append("pixel size assumed")
        lines.append(
            f"{name:40s} {r['frame']:5d} {r['mean_sick_probability']:8.3f} {r['sick_area_fraction']:9.3f} "
            f"{r['label']:>8s} {r['confidence']:6.3f}" + (f"  [{', '.join(notes)}]" if notes else "")
        )
    thresholds = sorted({f"{r['threshold']:g}" for r in rows if r.get("threshold") is not None})
    lines.append(
        "P(sick): mean over the field; sick area: fraction of the field with P(sick) >= "
        + (" or ".join(thresholds) or "the threshold")
        + "; conf: mean probability of the class given"
    )
    return "\n".join(lines)
