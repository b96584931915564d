"""The ``demo`` command: the main job on an embedded default (synthetic dose series, shipped model)."""

from __future__ import annotations

from pathlib import Path

from phototox.apps.live_command import demo_live
from phototox.apps.options import (
    add_model_options,
    predictor_from_args,
)
from phototox.defaults import DEFAULT_STRIDE, DEMO_MODEL
from phototox.io.planned import check_outputs, model_inputs


def cmd_demo(args) -> int:
    """Synthetic fields at five light doses in three dishes -> maps, overlays, a table, a curve and per-dose tests."""
    if args.live:  # phototox demo --live: the simulated microscope, watched (phototox.apps.live_command)
        return demo_live(args)
    from phototox.experiment.demo import DEMO_DISHES, DEMO_DOSES, default_model_scores, demo_output_paths, run_demo
    from phototox.experiment.doses import format_curve
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


def register(sub) -> None:
    """Add the command(s) of this module to the ``phototox`` parser."""
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
