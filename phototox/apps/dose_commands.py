"""The ``dose-response`` and ``calibrate`` commands: sickness against dose, a model refitted on controls."""

from __future__ import annotations

from pathlib import Path

from phototox.apps.design import print_design_gaps
from phototox.apps.options import (
    add_map_options,
    add_model_options,
    add_out,
    add_pixel_size_option,
    add_quiet,
    assessor_from_args,
)
from phototox.io.planned import check_outputs, model_inputs
from phototox.maps.settings import MapSettings
from phototox.results.provenance import provenance


def cmd_dose_response(args) -> int:
    """Sickness against light dose: the fitted curve, and which doses are shown harmless (non-inferiority)."""
    import numpy as np

    from phototox.experiment.doses import (
        compare_with_controls,
        dose_report_paths,
        fit_dose_response,
        format_curve,
        score_samples,
        write_dose_report,
    )
    from phototox.io.manifest import read_manifest
    from phototox.stats.dose_tests import format_dose_tests, judge_doses

    samples = read_manifest(args.manifest, require_labels=False)
    if any(s.dose is not None for s in samples):
        print_design_gaps(args.manifest)
    controls = [Path(p) for p in args.controls or []]
    check_outputs(
        dose_report_paths(args.out),
        [args.manifest, *(s.path for s in samples), *controls, *model_inputs(args.model)],
    )
    assessor = assessor_from_args(args, controls=bool(args.controls))
    predictor = assessor.predictor
    from phototox.trust.assess import control_lines
    from phototox.trust.controls import ControlReference

    rows = score_samples(
        predictor,
        samples,
        progress=not args.quiet,
        settings=MapSettings.from_args(args),
        assessor=assessor,
        pixel_size_um=args.pixel_size,
    )
    fit = fit_dose_response(
        np.asarray([r["dose"] for r in rows], dtype=float),
        np.asarray([r["mean_sick_probability"] for r in rows], dtype=float),
        seed=args.seed,
    )
    print(format_curve(fit, args.unit))
    tests = None
    if any(r["dose"] == 0 for r in rows):
        tests = judge_doses(rows, args.margin, seed=args.seed)
        print("\n".join(format_dose_tests(tests, args.unit)))
    else:
        print("no zero-light controls (dose 0) in the manifest: no dose can be tested, none is called harmless")
    reference = compare_with_controls(rows, assessor.controls if args.controls else None)
    recorded = ControlReference.from_meta(predictor.model.meta)
    if reference is None and recorded is not None:  # no dose-0 images: the calibrated model's controls
        reference = compare_with_controls(rows, recorded)
    if reference is not None:
        print(f"each image against your controls ({reference.source}, mean P(sick) {reference.mean:.3f}):")
        print("\n".join(control_lines(rows)))
    written = write_dose_report(rows, fit, args.out, args.unit, provenance(predictor.model), tests)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_calibrate(args) -> int:
    """Refit the domain check on the user's control fields; record their P(sick) in a new model file."""
    from phototox.trust.calibrate import calibrate_model

    record = calibrate_model(
        args.model, args.controls, args.out, args.pixel_size, args.device, engine=args.engine, alpha=args.alpha
    )
    print(
        f"wrote {args.out}: domain threshold {record['previous_domain_threshold']} -> {record['domain_threshold']}, "
        f"fine-detail limit {record['previous_fine_detail_limit']} -> {record['fine_detail_limit']} "
        f"(refitted on {record['n_fields']} control fields); control P(sick) "
        + ", ".join(f"{v:.3f}" for v in record["control_p_sick"])
        + f"\ndomain threshold: {record['domain_threshold_rule']}"
        + f"\nfalse-alarm rate reachable with {record['n_fields']} fields: {record['false_alarm_rate']:.3f} "
        "(a new field like these controls is called out of domain at most this often)"
    )
    return 0


def register(sub) -> None:
    """Add the command(s) of this module to the ``phototox`` parser."""
    p = sub.add_parser(
        "dose-response", help="sickness against light dose: which doses are shown harmless (non-inferiority)"
    )
    p.add_argument("manifest", help="CSV with path and dose columns (dose 0 = unexposed controls)")
    add_model_options(p)
    add_out(p, "folder for dose_response.png and .json", required=True)
    p.add_argument(
        "--margin",
        type=float,
        default=0.2,
        help="non-inferiority margin: the largest harm accepted, as a fraction of the zero-light controls' "
        "mean P(sick) (default 0.2 = 20%%)",
    )
    p.add_argument("--unit", default="", help="dose unit for the report, e.g. J/cm2")
    p.add_argument(
        "--controls",
        nargs="+",
        metavar="FILE",
        help="your control fields: report each image against them (default: the manifest's dose-0 images, "
        "else the controls recorded by 'phototox calibrate' in the model)",
    )
    add_pixel_size_option(p)
    add_map_options(p)
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap intervals")
    add_quiet(p)
    p.set_defaults(func=cmd_dose_response)

    p = sub.add_parser("calibrate", help="refit the domain check on your control fields (new model file)")
    p.add_argument(
        "controls",
        nargs="+",
        metavar="CONTROL",
        help="control (unexposed) field images, 3 or more distinct fields (the frames of one file are one field)",
    )
    add_model_options(p)
    add_pixel_size_option(p)
    add_out(p, "the calibrated model file to write (.pt)", required=True)
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="false-alarm rate of the domain check on fields like the controls (default 0.05; k fields reach "
        "no less than 1/(k+1))",
    )
    p.set_defaults(func=cmd_calibrate)
