"""The ``timecourse``, ``synth`` and ``models`` commands: time-lapses, synthetic data, the shipped models."""

from __future__ import annotations

from pathlib import Path

from phototox.apps.design import print_design_gaps
from phototox.apps.options import add_out
from phototox.io.planned import check_outputs


def cmd_timecourse(args) -> int:
    """Time-lapse phototoxicity: per-frame measures, onsets against controls, table, plots, report."""
    from phototox.apps.timecourse_options import settings_from_args
    from phototox.timecourse import TimecourseSettings, run_timecourse

    settings: TimecourseSettings = settings_from_args(args)
    if settings.doses:
        print_design_gaps(settings.doses)
    doc = run_timecourse(args.inputs, args.out, settings, progress=not args.quiet)
    print(Path(doc["written"][-1]).read_text(encoding="utf-8"))
    print("wrote " + ", ".join(doc["written"]))
    return 0


def cmd_synth(args) -> int:
    """Write a synthetic data set (TIFFs + manifest with doses and labels)."""
    from phototox.synth.fields import dataset_output_paths, write_dataset

    if args.timelapse:
        from phototox.synth.timelapse import dose_series_paths, write_dose_series

        check_outputs(dose_series_paths(args.out), [])
        print(f"wrote {write_dose_series(args.out, seed=args.seed)} and one time-lapse TIFF per field")
        return 0
    check_outputs(dataset_output_paths(args.out, list(args.doses), args.per_dose), [])
    manifest = write_dataset(args.out, list(args.doses), args.per_dose, args.size, args.seed, args.dose_threshold)
    print(f"wrote {manifest}")
    return 0


def cmd_models(args) -> int:
    """List the shipped models (each name is a valid --model) with checksum and pixel size."""
    from phototox.models.registry import format_models

    print(format_models(check=args.verify))
    return 0


def register(sub) -> None:
    """Add the command(s) of this module to the ``phototox`` parser."""
    p = sub.add_parser("synth", help="write a synthetic data set (TIFF fields + manifest)")
    add_out(p, "output folder for the TIFF fields and manifest.csv", required=True)
    p.add_argument(
        "--doses",
        type=float,
        nargs="+",
        default=[0.0, 0.25, 0.75, 1.0],
        help="light doses, 0 (unexposed) to 1 (lethal) (default 0 0.25 0.75 1)",
    )
    p.add_argument("--per-dose", type=int, default=2, help="fields per dose (default 2)")
    p.add_argument("--size", type=int, default=320, help="side of each square field in pixels (default 320)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--dose-threshold",
        type=float,
        default=0.5,
        help="fields at this dose or above are labelled sick in the manifest (default 0.5)",
    )
    p.add_argument(
        "--timelapse",
        action="store_true",
        help="write a time-lapse dose series (9 fields, 36 frames of 10 min, doses.csv) for 'phototox timecourse'",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("timecourse", help="time-lapse: when and from which light dose the cells change")
    from phototox.apps.timecourse_options import add_arguments as add_timecourse_arguments

    add_timecourse_arguments(p)
    p.set_defaults(func=cmd_timecourse)

    p = sub.add_parser("models", help="list the shipped models (each name is a valid --model)")
    p.add_argument("--verify", action="store_true", help="check every shipped file against its registered sha256")
    p.set_defaults(func=cmd_models)
