"""Command-line glue for the scale features: ``plate`` and the cluster/chunked options of ``predict``/``map``.

Importing this module imports neither Dask nor zarr: they are loaded only when ``--scheduler``,
``--cluster``, ``--chunked`` or an OME-Zarr input asks for them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phototox.apps.options import add_map_options, add_model_options, add_out, add_quiet
from phototox.errors import ImageInputError, ManifestError, PhototoxError
from phototox.io.planned import check_outputs, model_inputs


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """``--scheduler`` and ``--cluster`` (predict, map, plate)."""
    g = p.add_argument_group("cluster (needs the scale extra: pip install 'phototox[scale]')")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a running Dask cluster, e.g. tcp://10.0.0.5:8786 (workers need phototox and "
        "the inputs/outputs on a shared filesystem)",
    )
    g.add_argument("--cluster", metavar="local:N", help="start N Dask worker processes on this machine")


def add_map_scale_options(p: argparse.ArgumentParser) -> None:
    """Cluster options plus chunked maps of huge frames (map)."""
    add_cluster_options(p)
    g = p.add_argument_group("large frames")
    g.add_argument(
        "--chunked",
        action="store_true",
        help="map chunk by chunk into <stem>_map.ome.zarr (automatic for OME-Zarr inputs): "
        "for frames too large for memory",
    )
    g.add_argument("--chunk", type=int, default=2048, help="chunk side in pixels for --chunked (default 2048)")


def wants_scale(args) -> bool:
    """Whether the run needs this subpackage (a cluster, chunked maps or an OME-Zarr input)."""
    return bool(
        getattr(args, "scheduler", None)
        or getattr(args, "cluster", None)
        or getattr(args, "chunked", False)
        or any(str(p).rstrip("/").lower().endswith(".zarr") for p in getattr(args, "images", []))
    )


def _check_inputs(paths: list[Path]) -> None:
    for path in paths:
        if str(path).rstrip("/").lower().endswith(".zarr"):
            if not path.is_dir():
                raise ImageInputError(f"{path}: no such OME-Zarr folder")
        elif not path.is_file():
            raise ImageInputError(f"{path}: no such file")


def _check_chunk(args) -> None:
    if getattr(args, "chunk", 2048) < 256:
        raise PhototoxError(f"--chunk must be at least 256 pixels, got {args.chunk}")
    if args.scheduler and args.cluster:
        raise PhototoxError("give either --scheduler or --cluster, not both")


def _run(
    kind: str,
    args,
    inputs: list[Path],
    ledger_path: Path | None,
    out_dir: Path | None = None,
    stems: dict | None = None,
) -> list[dict]:
    """Through the cluster when asked, else in this process (chunked maps of OME-Zarr/--chunked)."""
    from phototox.screens.jobs import RunSettings
    from phototox.screens.run import run_paths

    return run_paths(
        kind,
        [str(p) for p in inputs],
        RunSettings.from_args(args),
        ledger_path=ledger_path,
        out_dir=out_dir,
        stems={str(k): v for k, v in (stems or {}).items()},
        overlay=not getattr(args, "no_overlay", False),
        chunked=getattr(args, "chunked", False),
        scheduler=args.scheduler,
        cluster=args.cluster,
        progress=not args.quiet,
    )


def predict_scaled(args) -> int:
    """``phototox predict`` on a cluster: same table/CSV as in one process, resumable with --out."""
    from phototox.io.images import guard_outputs
    from phototox.results.outputs import format_rows, write_summary

    _check_chunk(args)
    inputs = [Path(p) for p in args.images]
    _check_inputs(inputs)
    out = Path(args.out) if args.out else None
    ledger = out.with_name(f".{out.name}.ledger.jsonl") if out else None
    if out and ledger:
        guard_outputs([out, ledger], inputs)
    rows = _run("predict", args, inputs, ledger)
    if out and ledger:
        write_summary(out, rows)
        ledger.unlink(missing_ok=True)
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    return 0


def map_scaled(args) -> int:
    """``phototox map`` on a cluster and/or chunk by chunk into OME-Zarr; resumable on a cluster."""
    from phototox.io.images import guard_outputs
    from phototox.results.outputs import format_rows, output_stems, write_summary

    _check_chunk(args)
    inputs = [Path(p) for p in args.images]
    _check_inputs(inputs)
    out = Path(args.out)
    stems = output_stems(inputs)
    guard_outputs(
        [out / f"{s}_map.tif" for s in stems.values()]
        + [out / f"{s}_map.ome.zarr" for s in stems.values()]
        + [out / "summary.csv", out / ".phototox-map.ledger.jsonl"],
        inputs,
    )
    ledger = out / ".phototox-map.ledger.jsonl"
    rows = _run("map", args, inputs, ledger, out, stems)
    write_summary(out / "summary.csv", rows)
    ledger.unlink(missing_ok=True)
    print(format_rows(rows))
    print(f"maps and summary.csv written to {out}/")
    return 0


def plate_command(args) -> int:
    """``phototox plate``: predict every image of a plate layout; per-well/plate CSVs and heat maps."""
    from phototox.screens.plates import (
        layout_from_folder,
        plate_report_paths,
        plate_shape,
        read_layout,
        write_plate_report,
    )

    _check_chunk(args)
    source = Path(args.layout)
    placements = layout_from_folder(source) if source.is_dir() else read_layout(source)
    inputs = [Path(p.path) for p in placements]
    _check_inputs(inputs)
    for plate in sorted({p.plate for p in placements}):  # every well fits its plate, before any image is read
        try:
            plate_shape([p for p in placements if p.plate == plate], args.plate_format)
        except ManifestError as exc:
            raise ManifestError(f"{source}: plate {plate}: {exc}") from None
    out = Path(args.out)
    ledger = out / ".phototox-plate.ledger.jsonl"
    check_outputs(
        [*plate_report_paths(placements, out), ledger],
        [*inputs, None if source.is_dir() else source, *model_inputs(args.model)],
        root=out,
    )
    rows = _run("predict", args, inputs, ledger)
    written = write_plate_report(placements, rows, out, args.plate_format, control=args.control_condition)
    ledger.unlink(missing_ok=True)
    print(
        f"{len(rows)} image rows over {len({(p.plate, p.well) for p in placements})} wells; wrote "
        + ", ".join(str(p) for p in written)
    )
    return 0


def register(sub) -> None:
    """The ``plate`` command."""

    p = sub.add_parser("plate", help="a plate (or screen): per-well and per-plate summaries and heat maps")
    p.add_argument(
        "layout",
        help="layout CSV (path, well[, plate, field, time, condition]) or a folder whose file names "
        "carry the well (B03_s1 / r02c03f01)",
    )
    add_model_options(p)
    add_map_options(p)
    add_out(p, "folder for per_image/per_well/per_plate.csv and heat maps", required=True)
    p.add_argument(
        "--plate-format",
        type=int,
        choices=sorted(PLATE_SIZES),
        help="wells per plate (default: the smallest standard plate holding every well)",
    )
    p.add_argument(
        "--control-condition",
        help="the layout's condition of the zero-light control wells (default: 0 or control); each other "
        "condition's wells are compared with them in per_condition.csv",
    )
    add_quiet(p)
    add_cluster_options(p)
    p.set_defaults(func=plate_command)


PLATE_SIZES = (6, 12, 24, 48, 96, 384, 1536)
