"""The ``train``, ``evaluate``, ``audit`` and ``crossval`` commands: making and checking a model."""

from __future__ import annotations

from pathlib import Path

from phototox.apps.options import (
    add_labelling_options,
    add_model_options,
    add_out,
    add_quiet,
    predictor_from_args,
)
from phototox.errors import PhototoxError
from phototox.io.planned import check_outputs, model_inputs


def cmd_train(args) -> int:
    """Train or fine-tune on a manifest, resumable from the output folder."""
    if getattr(args, "from_annotations", None):  # a new head on guided annotations (issue 26)
        from phototox.apps.annotate.adapt_commands import train_from_annotations

        return train_from_annotations(args)
    if not args.manifest:
        raise PhototoxError("train: give a manifest CSV or --from-annotations DB")
    from phototox.io.manifest import read_manifest
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
        normalisation="crop" if args.paper_recipe else args.preprocessing,
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


def register(sub) -> None:
    """Add the command(s) of this module to the ``phototox`` parser."""
    p = sub.add_parser("train", help="train or fine-tune on a manifest CSV")
    p.add_argument("manifest", nargs="?", help="CSV with path and label (or dose) columns, one row per image")
    p.add_argument(
        "--from-annotations",
        metavar="DB",
        help="instead of a manifest: a guided annotation database (annotate serve --suggest); fits a new "
        "last layer on the frozen trunk of --init (default: the model that guided the votes)",
    )
    add_out(p, "run folder: checkpoint, log, curves, config, model.pt", required=True)
    add_arch(p)
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
    add_labelling_options(p)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    add_quiet(p)
    for name in ("tps", "dihedral", "blur", "random-crop", "time-window", "noise"):
        p.add_argument(f"--no-{name}", action="store_true", help=f"switch off the {name} augmentation")
    p.add_argument(
        "--preprocessing",
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
    add_out(p, "folder for metrics.json, per_image.csv, roc.png, image_scores.png")
    p.add_argument("--held-out", action="store_true", help="only images whose group did not train the model")
    p.add_argument("--threshold", type=float, default=0.5, help="sick probability threshold (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap intervals")
    add_labelling_options(p)
    p.add_argument(
        "--split-by", metavar="COLUMN", help="metrics per value of this column (e.g. replicate), with intervals"
    )
    add_quiet(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("audit", help="can this manifest separate biology from batch? (crosstabs, nuisance baseline)")
    p.add_argument("manifest", help="CSV with path, label (or dose) and batch columns")
    add_out(p, "folder for audit.md, audit.json and audit.png")
    add_labelling_options(p, "manifest column of the split unit")
    p.add_argument("--seed", type=int, default=0, help="random seed of the nuisance baseline's splits")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("crossval", help="leave-one-group-out: train without each replicate (etc.), test on it")
    p.add_argument("manifest", help="CSV with path, label (or dose) and the --split-by column")
    p.add_argument("--split-by", required=True, metavar="COLUMN", help="column to leave out value by value")
    add_out(p, "folder for one run per fold and crossval.json", required=True)
    add_arch(p)
    p.add_argument("--iterations", type=int, default=1000, help="training iterations per fold")
    p.add_argument("--batch-size", type=int, default=20, help="crops per training batch (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed of split, sampling and initialisation")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    add_labelling_options(p)
    add_quiet(p)
    p.set_defaults(func=cmd_crossval)


def add_arch(p) -> None:
    """``--arch``: the network trained (train and crossval share it)."""
    p.add_argument(
        "--arch",
        default="deadnet-gap",
        choices=("deadnet-gap", "deadnet"),
        help="deadnet-gap: compact, dense maps (default); deadnet: the paper's fc head",
    )
