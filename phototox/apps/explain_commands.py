"""The ``explain`` (Grad-CAM) and ``class-model`` commands: what a model looks at."""

from __future__ import annotations

from pathlib import Path

from phototox.apps.options import (
    add_model_options,
    add_out,
    add_pixel_size_option,
    add_quiet,
    check_inputs_exist,
    predictor_from_args,
)
from phototox.io.planned import check_outputs, model_inputs
from phototox.results.provenance import provenance


def cmd_explain(args) -> int:
    """Grad-CAM heat map (class-averaged weights) as TIFF and overlay PNG."""
    from phototox.io.manifest import read_manifest
    from phototox.training.explain import explain_image

    path, out = Path(args.image), Path(args.out)
    check_inputs_exist([path])
    reference = read_manifest(args.reference_manifest) if args.reference_manifest else []
    check_outputs(
        [out / f"{path.stem}_gradcam.tif", out / f"{path.stem}_gradcam.png"],
        [path, args.reference_manifest, *(s.path for s in reference), *model_inputs(args.model)],
    )
    predictor = predictor_from_args(args)
    written = explain_image(
        predictor,
        path,
        out,
        args.target,
        args.reference_manifest,
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


def register(sub) -> None:
    """Add the command(s) of this module to the ``phototox`` parser."""
    p = sub.add_parser("explain", help="Grad-CAM heat map at conv4_2")
    p.add_argument("image", help="image file (the first frame of a stack is explained)")
    add_model_options(p)
    add_out(p, "folder for the Grad-CAM TIFF and overlay PNG", required=True)
    p.add_argument("--target", choices=("sick", "healthy"), default="sick", help="class to explain (default sick)")
    p.add_argument(
        "--reference-manifest",
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
    add_quiet(p, "no progress bar")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("class-model", help="class-model visualisation (gradient ascent)")
    add_model_options(p)
    add_out(p, "folder for the class-model image", required=True)
    p.add_argument("--target", choices=("sick", "healthy"), default="sick", help="class to visualise (default sick)")
    p.add_argument("--init-image", help="start from this image (e.g. one of the other class) instead of zeros")
    p.add_argument("--iterations", type=int, default=500, help="gradient-ascent steps (default 500)")
    p.add_argument("--l2", type=float, default=1e-3, help="weight of the L2 penalty on the image (default 1e-3)")
    p.add_argument("--smoothness", type=float, default=1e-2, help="weight of the smoothness penalty (default 1e-2)")
    p.add_argument("--lr", type=float, default=0.05, help="step size of the gradient ascent (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the starting noise")
    add_quiet(p)
    p.set_defaults(func=cmd_class_model)
