"""The ``predict`` and ``map`` commands: per-image sick probability and full-resolution maps."""

from __future__ import annotations

import json
from pathlib import Path

from phototox.apps.options import (
    add_map_options,
    add_model_options,
    add_out,
    add_pixel_size_option,
    add_quiet,
    assessor_from_args,
    check_inputs_exist,
)
from phototox.apps.reference_command import add_reference_option
from phototox.apps.scale_commands import (
    add_cluster_options,
    add_map_scale_options,
    map_scaled,
    predict_scaled,
    wants_scale,
)
from phototox.errors import PhototoxError
from phototox.io.planned import check_distinct_inputs, check_outputs, model_inputs
from phototox.maps.settings import MapSettings
from phototox.results.provenance import provenance


def cmd_predict(args) -> int:
    """Per-image sick probability for each input (each frame of a stack)."""

    if wants_scale(args):  # a Dask cluster or OME-Zarr inputs
        if getattr(args, "reference", None):
            raise PhototoxError("--reference: not available with a cluster, chunked maps or OME-Zarr inputs yet")
        return predict_scaled(args)
    from phototox.io.images import read_frames
    from phototox.results.outputs import format_rows, summary_rows, write_summary

    inputs = [Path(p) for p in args.images]
    check_inputs_exist(inputs)
    check_distinct_inputs(inputs)
    check_outputs([Path(args.out)] if args.out else [], inputs + model_inputs(args.model))
    from phototox.results.batch import analyse_paths
    from phototox.results.novelty_outputs import unlike_lines
    from phototox.trust.assess import control_lines

    assessor = assessor_from_args(args, controls=True)
    window = assessor.predictor.window
    rows: list[dict] = []

    def keep(path: Path, _frames, results) -> None:
        rows.extend(
            summary_rows(str(path), results, assessor.predictor.model.label, provenance(assessor.predictor.model))
        )

    analyse_paths(
        assessor,
        inputs,
        lambda p: read_frames(p, colour=args.colour, min_size=window),
        MapSettings.from_args(args),
        args.quiet,
        on_result=keep,
        pixel_size_um=args.pixel_size,
    )
    if args.out:
        write_summary(Path(args.out), rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join([format_rows(rows), *control_lines(rows), *unlike_lines(rows)]))
    return 0


def cmd_map(args) -> int:
    """Sickness maps at full resolution: float32 TIFF, overlay PNG, summary CSV."""

    if wants_scale(args):  # a Dask cluster, chunked maps or OME-Zarr inputs
        if getattr(args, "reference", None):
            raise PhototoxError("--reference: not available with a cluster, chunked maps or OME-Zarr inputs yet")
        return map_scaled(args)
    from phototox.io.images import read_frames
    from phototox.results.outputs import (
        format_rows,
        map_output_paths,
        output_stems,
        summary_rows,
        write_map_outputs,
        write_summary,
    )

    inputs = [Path(p) for p in args.images]
    check_inputs_exist(inputs)
    out = Path(args.out)
    stems = output_stems(inputs)
    check_outputs(
        [p for s in stems.values() for p in map_output_paths(out, s, not args.no_overlay, bool(args.reference))]
        + [out / "summary.csv"],
        inputs + model_inputs(args.model),
    )
    assessor = assessor_from_args(args)
    model = assessor.predictor.model
    from phototox.results.batch import analyse_paths

    rows: list[dict] = []

    def write(path: Path, frames, results) -> None:
        write_map_outputs(
            out, stems[path], frames, results, not args.no_overlay, provenance(model), args.mask_background
        )
        rows.extend(summary_rows(str(path), results, model.label, provenance(model)))

    analyse_paths(
        assessor,
        inputs,
        lambda p: read_frames(p, colour=args.colour, min_size=model.window),
        MapSettings.from_args(args),
        args.quiet,
        on_result=write,
        pixel_size_um=args.pixel_size,
    )
    write_summary(out / "summary.csv", rows)
    print(format_rows(rows))
    print(f"maps, overlays and summary.csv written to {out}/")
    return 0


def register(sub) -> None:
    """Add the command(s) of this module to the ``phototox`` parser."""
    p = sub.add_parser("predict", help="per-image sick probability")
    p.add_argument("images", nargs="+", help="image files (TIFF stacks: one row per frame)")
    add_model_options(p)
    add_map_options(p)
    add_pixel_size_option(p)
    p.add_argument(
        "--controls",
        nargs="+",
        metavar="FILE",
        help="your control fields: report each image against them (default: the controls recorded "
        "by 'phototox calibrate' in the model, if any)",
    )
    add_out(p, "write results to this .csv or .json file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_quiet(p)
    add_cluster_options(p)
    add_reference_option(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("map", help="full-resolution sickness maps (TIFF + overlay PNG + summary)")
    p.add_argument("images", nargs="+", help="image files (TIFF stacks: one map per frame)")
    add_model_options(p)
    add_map_options(p)
    add_pixel_size_option(p)
    add_out(p, "output folder", required=True)
    p.add_argument("--no-overlay", action="store_true", help="skip the PNG overlays")
    p.add_argument(
        "--mask-background",
        action="store_true",
        help="leave places without cells uncoloured in the overlay (texture estimate) and report the "
        "sick fraction of the cell-covered area beside that of the field",
    )
    add_quiet(p)
    add_map_scale_options(p)
    add_reference_option(p)
    p.set_defaults(func=cmd_map)
