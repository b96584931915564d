"""The ``phototox`` command line. Thin: every command calls the library.

Errors caused by input (missing or corrupt files, bad settings) print one line naming the file
and the problem and exit with status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

from phototox.apps.options import (
    add_map_options,
    add_model_options,
    add_pixel_size_option,
    assessor_from_args,
    check_inputs_exist,
    predictor_from_args,
)
from phototox.defaults import DEFAULT_STRIDE, DEMO_MODEL
from phototox.errors import PhototoxError, describe_os_error
from phototox.results.provenance import provenance

# --- commands ---------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    """Synthetic fields at five light doses in three dishes -> maps, overlays, a table, a curve and per-dose tests."""
    if args.live:  # phototox demo --live: the simulated microscope, watched (phototox.apps.live_command)
        from phototox.apps.live_command import demo_live

        return demo_live(args)
    from phototox.experiment.demo import DEMO_DISHES, DEMO_DOSES, default_model_scores, demo_output_paths, run_demo
    from phototox.experiment.doses import format_curve
    from phototox.io.planned import check_outputs, model_inputs
    from phototox.results.outputs import format_rows
    from phototox.stats.dose_tests import format_dose_tests

    out = Path(args.out)
    check_outputs(demo_output_paths(out), model_inputs(args.model))
    predictor = predictor_from_args(args)
    print(f"phototox demo: model {predictor.model.source} ({predictor.model.arch}) on {predictor.device}")
    print(
        "input: synthetic phase-contrast fields (phototox.synth.fields) at light doses "
        f"{', '.join(f'{d:g}' for d in DEMO_DOSES)}, {DEMO_DISHES} dishes per dose (one field each; the dishes "
        "differ in cell density) -- no download, no shared data"
    )
    result = run_demo(predictor, out, args.size, args.seed, args.stride, args.mode, args.threshold)
    print(format_rows(result.rows))
    if result.fit is not None:
        print(format_curve(result.fit, "(synthetic dose units)"))
        if result.tests is not None:
            print("\n".join(format_dose_tests(result.tests, "(synthetic dose units)")))
    else:
        print(f"no dose-response curve could be fitted: {result.fit_error}")
    print(
        f"\nwrote {out}/: inputs/*.tif, *_map.tif (float32 P(sick) maps), *_overlay.png, summary.csv, "
        f"dose_response.png, doses.csv (rerun the tests: phototox dose-response {out}/doses.csv --out report/)"
    )
    if predictor.model.source == DEMO_MODEL.removeprefix("shipped:"):
        scores = default_model_scores(result.images, str(predictor.device), args.stride, args.mode)
        print(
            "the default model (trained on real U2OS images, drug-induced death) on the same fields: "
            + ", ".join(f"{p:.2f}" for p in scores)
            + "\n  -> out of its domain; see models/MODEL_CARD.md. Use it (or your fine-tuned model) on real images:"
            "\n     phototox map your_image.tif --out maps/"
        )
    return 0


def cmd_predict(args) -> int:
    """Per-image sick probability for each input (each frame of a stack)."""
    from phototox.apps.scale_commands import predict_scaled, wants_scale

    if wants_scale(args):  # a Dask cluster or OME-Zarr inputs
        if getattr(args, "reference", None):
            raise PhototoxError("--reference: not available with a cluster, chunked maps or OME-Zarr inputs yet")
        return predict_scaled(args)
    from phototox.io.images import read_frames
    from phototox.io.planned import check_distinct_inputs, check_outputs, model_inputs
    from phototox.results.outputs import format_rows, summary_rows, write_summary

    inputs = [Path(p) for p in args.images]
    check_inputs_exist(inputs)
    check_distinct_inputs(inputs)
    check_outputs([Path(args.out)] if args.out else [], inputs + model_inputs(args.model))
    from phototox.maps.settings import MapSettings
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
    from phototox.apps.scale_commands import map_scaled, wants_scale

    if wants_scale(args):  # a Dask cluster, chunked maps or OME-Zarr inputs
        if getattr(args, "reference", None):
            raise PhototoxError("--reference: not available with a cluster, chunked maps or OME-Zarr inputs yet")
        return map_scaled(args)
    from phototox.io.images import read_frames
    from phototox.io.planned import check_outputs, model_inputs
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
    from phototox.maps.settings import MapSettings
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


def cmd_train(args) -> int:
    """Train or fine-tune on a manifest, resumable from the output folder."""
    if getattr(args, "from_annotations", None):  # a new head on guided annotations (issue 26)
        from phototox.apps.annotate.adapt_commands import train_from_annotations

        return train_from_annotations(args)
    if not args.manifest:
        raise PhototoxError("train: give a manifest CSV or --from-annotations DB")
    from phototox.io.manifest import read_manifest
    from phototox.io.planned import check_outputs, model_inputs
    from phototox.training.augment import AugmentConfig
    from phototox.training.train import TrainConfig, run_output_paths, train

    augment = AugmentConfig(
        tps_warp=not args.no_tps,
        dihedral=not args.no_dihedral,
        blur=not args.no_blur,
        random_crop=not args.no_random_crop,
        time_window=not args.no_time_window,
        noise=not args.no_noise,
        norm_jitter=args.norm_jitter,
        acquisition=not (args.no_acquisition or args.paper_recipe),
    )
    config = TrainConfig(
        arch=args.arch,
        iterations=args.iterations,
        batch_size=args.batch_size,
        base_lr=args.lr,
        weight_decay=args.weight_decay,
        val_fraction=args.val_fraction,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        workers=args.workers,
        init=args.init or "",
        normalisation="crop" if args.paper_recipe else args.normalisation,
        box_size=args.box_size,
        augment=augment,
        pixel_size_um=args.pixel_size,
        model_pixel_size_um=args.model_pixel_size,
    ).validate()
    samples = read_manifest(args.manifest, dose_threshold=args.dose_threshold, group_column=args.group_column)
    check_outputs(run_output_paths(args.out), [args.manifest, *(s.path for s in samples), *model_inputs(args.init)])
    path = train(
        samples,
        args.out,
        config,
        resume=not args.restart,
        manifest=str(args.manifest),
        progress=not args.quiet,
        allow_confounded=args.allow_confounded,
        unit_column=args.group_column,
    )
    print(f"model written to {path} (curves: {Path(args.out) / 'curves.png'}, card: {path.parent / 'model_card.md'})")
    return 0


def cmd_evaluate(args) -> int:
    """Accuracy, AUC, confusion, per replicate, with BCa bootstrap intervals."""
    if getattr(args, "from_annotations", None):  # test fields, learning curve, agreement (issue 26)
        from phototox.apps.annotate.adapt_commands import evaluate_from_annotations

        return evaluate_from_annotations(args)
    if not args.manifest:
        raise PhototoxError("evaluate: give a manifest CSV or --from-annotations DB")
    from phototox.io.manifest import read_manifest
    from phototox.io.planned import check_outputs, model_inputs
    from phototox.training.evaluate import evaluation_output_paths
    from phototox.training.evaluate_report import evaluate_manifest, held_out_indices

    samples = read_manifest(args.manifest, dose_threshold=args.dose_threshold, group_column=args.group_column)
    check_outputs(
        evaluation_output_paths(args.out) if args.out else [],
        [args.manifest, *(s.path for s in samples), *model_inputs(args.model)],
    )
    predictor = predictor_from_args(args)
    indices = None
    if args.held_out:
        indices = held_out_indices(predictor.model.meta, samples, args.model)
        print(f"held-out evaluation: {len(indices)} of {len(samples)} images (the rest trained the model)")
    report = evaluate_manifest(
        predictor,
        samples,
        indices,
        str(args.manifest),
        args.threshold,
        args.seed,
        args.split_by,
        args.group_column,
        progress=not args.quiet,
    )
    print(report.text())
    if args.out:
        print("wrote " + ", ".join(str(p) for p in report.write(args.out)))
    return 0


def cmd_audit(args) -> int:
    """Can this manifest separate biology from batch? Cross-tabulations and a nuisance baseline."""
    from phototox.training.audit import audit_manifest, format_audit

    result = audit_manifest(args.manifest, args.out, args.group_column, args.dose_threshold, args.seed)
    print(format_audit(result))
    if args.out:
        print(f"wrote {Path(args.out) / 'audit.md'}, audit.json, audit.png")
    return 0


def cmd_crossval(args) -> int:
    """Leave-one-group-out: train without each value of a column, evaluate on it."""
    from phototox.io.manifest import read_manifest
    from phototox.training.crossval import crossvalidate, format_crossval
    from phototox.training.train import TrainConfig

    samples = read_manifest(args.manifest, dose_threshold=args.dose_threshold, group_column=args.group_column)
    config = TrainConfig(
        arch=args.arch,
        iterations=args.iterations,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    summary = crossvalidate(samples, args.split_by, args.out, config, str(args.manifest), progress=not args.quiet)
    print(format_crossval(summary))
    print(f"wrote {Path(args.out) / 'crossval.json'}")
    return 0


def cmd_explain(args) -> int:
    """Grad-CAM heat map (class-averaged weights) as TIFF and overlay PNG."""
    from phototox.io.manifest import read_manifest
    from phototox.io.planned import check_outputs, model_inputs
    from phototox.training.explain import explain_image

    path, out = Path(args.image), Path(args.out)
    check_inputs_exist([path])
    reference = read_manifest(args.reference) if args.reference else []
    check_outputs(
        [out / f"{path.stem}_gradcam.tif", out / f"{path.stem}_gradcam.png"],
        [path, args.reference, *(s.path for s in reference), *model_inputs(args.model)],
    )
    predictor = predictor_from_args(args)
    written = explain_image(
        predictor,
        path,
        out,
        args.target,
        args.reference,
        args.max_reference_crops,
        args.stride,
        args.colour,
        args.quiet,
        provenance=provenance(predictor.model),
        pixel_size_um=args.pixel_size,
    )
    print(f"wrote {' and '.join(str(p) for p in written)}")
    return 0


def cmd_class_model(args) -> int:
    """Class-model visualisation by gradient ascent; writes PNGs."""
    from phototox.io.images import read_frames
    from phototox.io.planned import check_outputs, model_inputs
    from phototox.results.plots import plot_class_model
    from phototox.training.explain import class_model

    if args.init_image:
        check_inputs_exist([Path(args.init_image)])
    check_outputs([Path(args.out) / f"class_model_{args.target}.png"], [args.init_image, *model_inputs(args.model)])
    predictor = predictor_from_args(args)
    class_index = 1 if args.target == "sick" else 0
    init = None
    if args.init_image:
        frame = read_frames(args.init_image, min_size=predictor.window)[0]
        init = frame[: predictor.window, : predictor.window]
    result = class_model(
        predictor,
        class_index,
        init,
        iterations=args.iterations,
        l2=args.l2,
        smoothness=args.smoothness,
        lr=args.lr,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = Path(args.out)
    plot_class_model(result, out / f"class_model_{args.target}.png", args.target)
    print(
        f"class score {result.scores[0]:.3f} -> {result.scores[-1]:.3f}; wrote {out / f'class_model_{args.target}.png'}"
    )
    return 0


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
    from phototox.io.planned import check_outputs, model_inputs
    from phototox.stats.dose_tests import format_dose_tests, judge_doses

    samples = read_manifest(args.manifest, require_labels=False)
    if any(s.dose is not None for s in samples):
        _print_design(args.manifest)
    controls = [Path(p) for p in args.controls or []]
    check_outputs(
        dose_report_paths(args.out),
        [args.manifest, *(s.path for s in samples), *controls, *model_inputs(args.model)],
    )
    assessor = assessor_from_args(args, controls=bool(args.controls))
    predictor = assessor.predictor
    from phototox.maps.settings import MapSettings
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
    from phototox.trust.controls import calibrate_model

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


def _print_design(table: str) -> None:
    """The missing items of the experiment's design (``phototox design``), before any measurement."""
    from phototox.experiment.design import design_lines

    lines = design_lines(table, missing_only=True)
    if lines:
        print("design checks (phototox design):\n  " + "\n  ".join(lines))


def cmd_timecourse(args) -> int:
    """Time-lapse phototoxicity: per-frame measures, onsets against controls, table, plots, report."""
    from phototox.apps.timecourse_options import settings_from_args
    from phototox.timecourse import TimecourseSettings, run_timecourse

    settings: TimecourseSettings = settings_from_args(args)
    if settings.doses:
        _print_design(settings.doses)
    doc = run_timecourse(args.inputs, args.out, settings, progress=not args.quiet)
    print(Path(doc["written"][-1]).read_text(encoding="utf-8"))
    print("wrote " + ", ".join(doc["written"]))
    return 0


def cmd_synth(args) -> int:
    """Write a synthetic data set (TIFFs + manifest with doses and labels)."""
    from phototox.io.planned import check_outputs
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


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from phototox.apps.reference_command import add_reference_option
    from phototox.apps.scale_commands import add_cluster_options, add_map_scale_options
    from phototox.apps.scale_commands import register as register_scale

    parser = argparse.ArgumentParser(
        prog="phototox",
        description=(
            "Detect light-induced damage (phototoxicity) in label-free phase-contrast images. "
            "Reimplements DeadNet (Richmond et al., 2017, arXiv:1701.06109)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="maps and per-dose tests of synthetic fields at five light doses in three dishes (no download, no data)",
    )
    add_model_options(p, DEMO_MODEL, "the model trained on phototox.synth.fields fields")
    p.add_argument("--out", default="phototox-demo", help="output folder (default phototox-demo)")
    p.add_argument("--size", type=int, default=512, help="field height in pixels")
    p.add_argument("--seed", type=int, default=100, help="random seed of the synthetic fields (default 100)")
    p.add_argument(
        "--stride", type=int, default=DEFAULT_STRIDE, help=f"window step in pixels (default {DEFAULT_STRIDE})"
    )
    p.add_argument(
        "--mode",
        choices=("exact", "dense"),
        default="dense",
        help="exact: classify every window; dense: one fully convolutional pass (default dense)",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="sick probability threshold (default 0.5)")
    p.add_argument("--live", action="store_true", help="a simulated live acquisition watched by phototox (live extra)")
    p.set_defaults(func=cmd_demo)

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
    p.add_argument("--out", help="write results to this .csv or .json file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    add_cluster_options(p)
    add_reference_option(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("map", help="full-resolution sickness maps (TIFF + overlay PNG + summary)")
    p.add_argument("images", nargs="+", help="image files (TIFF stacks: one map per frame)")
    add_model_options(p)
    add_map_options(p)
    add_pixel_size_option(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-overlay", action="store_true", help="skip the PNG overlays")
    p.add_argument(
        "--mask-background",
        action="store_true",
        help="leave places without cells uncoloured in the overlay (texture estimate) and report the "
        "sick fraction of the cell-covered area beside that of the field",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    add_map_scale_options(p)
    add_reference_option(p)
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("train", help="train or fine-tune on a manifest CSV")
    p.add_argument("manifest", nargs="?", help="CSV with path and label (or dose) columns, one row per image")
    p.add_argument(
        "--from-annotations",
        metavar="DB",
        help="instead of a manifest: a guided annotation database (annotate serve --suggest); fits a new "
        "last layer on the frozen trunk of --init (default: the model that guided the votes)",
    )
    p.add_argument("--out", required=True, help="run folder: checkpoint, log, curves, config, model.pt")
    p.add_argument(
        "--arch",
        default="deadnet-gap",
        choices=("deadnet-gap", "deadnet"),
        help="deadnet-gap: compact, dense maps (default); deadnet: the paper's fc head",
    )
    p.add_argument("--init", help="start from weights: 'shipped' (fine-tuning) or a .pt file")
    p.add_argument("--iterations", type=int, default=3000, help="training iterations (default %(default)g)")
    p.add_argument("--batch-size", type=int, default=20, help="crops per training batch (default %(default)g)")
    p.add_argument("--lr", type=float, default=3e-4, help="base learning rate of the inv policy (default %(default)g)")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=1e-4,
        help="weight decay: 1e-4 high-dose data, 1e-5 low-dose (default %(default)g)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.3,
        help="fraction of groups held out for validation (default %(default)g)",
    )
    p.add_argument("--eval-every", type=int, default=100, help="validate every N iterations (default %(default)g)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        help="write a resumable checkpoint every N iterations (default %(default)g)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed of split, sampling and initialisation (default %(default)g)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads, 0: PyTorch's choice (default %(default)g)")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default %(default)g)")
    p.add_argument("--dose-threshold", type=float, help="label images by dose >= threshold (mass labelling)")
    p.add_argument("--group-column", help="manifest column that groups images (default: group/field)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    for name in ("tps", "dihedral", "blur", "random-crop", "time-window", "noise"):
        p.add_argument(f"--no-{name}", action="store_true", help=f"switch off the {name} augmentation")
    p.add_argument(
        "--normalisation",
        choices=("box", "crop"),
        default="box",
        help="preprocessing contract saved with the model: 'box' (default; each pixel by the box "
        "centred on it, dense maps equal exact ones) or 'crop' (the paper's per-crop normalisation)",
    )
    p.add_argument(
        "--box-size", type=int, default=221, help="side of the normalisation box, odd, px (default %(default)g)"
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        metavar="UM",
        help="the images' pixel size in um/px (a manifest pixel_size_um column overrides it per row)",
    )
    p.add_argument(
        "--model-pixel-size",
        type=float,
        metavar="UM",
        help="the scale the model learns at; images are resampled to it (default: the --init model's, "
        "else --pixel-size)",
    )
    p.add_argument(
        "--norm-jitter",
        action="store_true",
        help="train on smooth gain/offset ramps over normalised windows, as dense maps see them "
        "(measured effect: benchmarks/README.md)",
    )
    p.add_argument(
        "--no-acquisition",
        action="store_true",
        help="switch off acquisition augmentation (contrast/gamma, blur/sharpen, illumination, noise, scale jitter)",
    )
    p.add_argument(
        "--paper-recipe",
        action="store_true",
        help="the paper's recipe: DeadNet's augmentations and per-crop normalisation only (reproduces the paper)",
    )
    p.add_argument(
        "--allow-confounded",
        action="store_true",
        help="train even if a batch column (replicate, plate, ...) fully explains the label",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics with BCa bootstrap intervals on a labelled manifest")
    p.add_argument("manifest", nargs="?", help="CSV with path and label (or dose) columns, one row per image")
    p.add_argument(
        "--from-annotations",
        metavar="DB",
        help="instead of a manifest: a guided annotation database; test-field accuracy, leave-one-field-out, "
        "learning curve, annotators' agreement and the audit of the votes",
    )
    add_model_options(p)
    p.add_argument("--out", help="folder for metrics.json, per_image.csv, roc.png, image_scores.png")
    p.add_argument("--held-out", action="store_true", help="only images whose group did not train the model")
    p.add_argument("--threshold", type=float, default=0.5, help="sick probability threshold (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap intervals")
    p.add_argument("--dose-threshold", type=float, help="label images by dose >= threshold (mass labelling)")
    p.add_argument("--group-column", help="manifest column that groups images (default: group/field)")
    p.add_argument(
        "--split-by", metavar="COLUMN", help="metrics per value of this column (e.g. replicate), with intervals"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("audit", help="can this manifest separate biology from batch? (crosstabs, nuisance baseline)")
    p.add_argument("manifest", help="CSV with path, label (or dose) and batch columns")
    p.add_argument("--out", help="folder for audit.md, audit.json and audit.png")
    p.add_argument("--group-column", help="manifest column of the split unit (default: group/field)")
    p.add_argument("--dose-threshold", type=float, help="label images by dose >= threshold (mass labelling)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the nuisance baseline's splits")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("crossval", help="leave-one-group-out: train without each replicate (etc.), test on it")
    p.add_argument("manifest", help="CSV with path, label (or dose) and the --split-by column")
    p.add_argument("--split-by", required=True, metavar="COLUMN", help="column to leave out value by value")
    p.add_argument("--out", required=True, help="folder for one run per fold and crossval.json")
    p.add_argument(
        "--arch",
        default="deadnet-gap",
        choices=("deadnet-gap", "deadnet"),
        help="deadnet-gap: compact, dense maps (default); deadnet: the paper's fc head",
    )
    p.add_argument("--iterations", type=int, default=1000, help="training iterations per fold")
    p.add_argument("--batch-size", type=int, default=20, help="crops per training batch (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed of split, sampling and initialisation")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--dose-threshold", type=float, help="label images by dose >= threshold (mass labelling)")
    p.add_argument("--group-column", help="manifest column that groups images (default: group/field)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_crossval)

    p = sub.add_parser("explain", help="Grad-CAM heat map at conv4_2")
    p.add_argument("image", help="image file (the first frame of a stack is explained)")
    add_model_options(p)
    p.add_argument("--out", required=True, help="folder for the Grad-CAM TIFF and overlay PNG")
    p.add_argument("--target", choices=("sick", "healthy"), default="sick", help="class to explain (default sick)")
    p.add_argument(
        "--reference",
        help="manifest of training images: average the Grad-CAM weights over "
        "their crops of the target class (the paper's fix)",
    )
    p.add_argument("--max-reference-crops", type=int, default=64, help="at most this many reference crops (default 64)")
    add_pixel_size_option(p)
    p.add_argument(
        "--stride",
        type=int,
        default=110,
        help="step between the 220 px windows whose heat maps are averaged (default 110, half a "
        "window: one backward pass per window, so not the map default)",
    )
    p.add_argument(
        "--colour",
        choices=("refuse", "luminance"),
        default="refuse",
        help="what to do with colour images whose channels differ (default: refuse)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("class-model", help="class-model visualisation (gradient ascent)")
    add_model_options(p)
    p.add_argument("--out", required=True, help="folder for the class-model image")
    p.add_argument("--target", choices=("sick", "healthy"), default="sick", help="class to visualise (default sick)")
    p.add_argument("--init-image", help="start from this image (e.g. one of the other class) instead of zeros")
    p.add_argument("--iterations", type=int, default=500, help="gradient-ascent steps (default 500)")
    p.add_argument("--l2", type=float, default=1e-3, help="weight of the L2 penalty on the image (default 1e-3)")
    p.add_argument("--smoothness", type=float, default=1e-2, help="weight of the smoothness penalty (default 1e-2)")
    p.add_argument("--lr", type=float, default=0.05, help="step size of the gradient ascent (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the starting noise")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_class_model)

    p = sub.add_parser(
        "dose-response", help="sickness against light dose: which doses are shown harmless (non-inferiority)"
    )
    p.add_argument("manifest", help="CSV with path and dose columns (dose 0 = unexposed controls)")
    add_model_options(p)
    p.add_argument("--out", required=True, help="folder for dose_response.png and .json")
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
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
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
    p.add_argument("--out", required=True, help="the calibrated model file to write (.pt)")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="false-alarm rate of the domain check on fields like the controls (default 0.05; k fields reach "
        "no less than 1/(k+1))",
    )
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("synth", help="write a synthetic data set (TIFF fields + manifest)")
    p.add_argument("--out", required=True, help="output folder for the TIFF fields and manifest.csv")
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

    from phototox.apps.annotate.cli import register as register_annotate
    from phototox.apps.compare_command import register as register_compare
    from phototox.apps.design import register as register_design
    from phototox.apps.reference_command import register as register_reference
    from phototox.apps.serve import register as register_serve

    register_serve(sub)
    register_scale(sub)
    register_annotate(sub)
    register_design(sub)
    register_compare(sub)
    register_reference(sub)
    from phototox.apps.live_command import register as register_live

    register_live(sub)

    for ep in entry_points(group="phototox.commands"):
        try:
            ep.load()(sub)
        except ImportError as exc:  # an optional front end whose dependencies are missing
            q = sub.add_parser(ep.name, help=f"(unavailable: {exc})")
            q.set_defaults(func=lambda args, exc=exc: _unavailable(exc))
    return parser


def _unavailable(exc: ImportError) -> int:
    from phototox.extras import missing_extra_message

    raise PhototoxError(
        missing_extra_message(exc, "this command") or f"this command needs an optional dependency: {exc}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PhototoxError as exc:
        print(f"phototox: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:  # permission, disk full, not a folder, ... met while writing or reading
        print(f"phototox: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        from phototox.extras import missing_extra_message

        message = missing_extra_message(exc, f"phototox {args.command}")
        if message is None:
            raise
        print(f"phototox: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("phototox: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
