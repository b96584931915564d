"""The ``reference`` command: an 'unlike your controls' reference from the user's control fields.

A separate command rather than ``calibrate``: ``calibrate`` writes a new model file (domain
statistics inside the weights), while a reference is a small .npz used beside any copy of the same
model (checked by its checksum) and refitted whenever the controls change, without a new model
to ship to CellProfiler or Fiji. See :mod:`phototox.trust.novelty`.
"""

from __future__ import annotations

from pathlib import Path

from phototox.apps.options import add_model_options, add_out, add_pixel_size_option


def reference_command(args) -> int:
    """Fit the reference, write it, and say what its line means."""
    from phototox.trust.calibrate import reference_from_controls

    reference = reference_from_controls(
        args.model, args.controls, args.out, args.pixel_size, args.device, args.alpha, args.kind
    )
    c = reference.conformal
    print(
        f"wrote {args.out}: 'unlike your controls' reference ({reference.kind}, {c['n_fields']} control fields, "
        f"model {reference.info.get('model')})"
    )
    print(
        f"line {reference.threshold:.4g} (window novelty): {c['note']}; held-out field scores "
        + ", ".join(f"{s:.3g}" for s in sorted(reference.field_scores))
    )
    print(f"use it: phototox map IMAGES --out maps/ --reference {Path(args.out)} (novelty, never 'sick')")
    return 0


def register(sub) -> None:
    """The ``reference`` command."""

    p = sub.add_parser(
        "reference",
        help="fit 'unlike your controls' (window novelty in the model's feature space) on your control fields",
    )
    p.add_argument("controls", nargs="+", help="control field files (zero light; the frames of one file are one field)")
    add_out(p, "the reference to write (.npz)", required=True)
    add_model_options(p)
    add_pixel_size_option(p)
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="false-alarm rate: a field like the controls has any window beyond the line at most this often "
        "(default 0.05; k fields reach 1/(k+1) at best: 19 fields for 0.05)",
    )
    p.add_argument(
        "--kind",
        choices=("knn", "gaussian"),
        default="knn",
        help="knn: mean distance to the 5 nearest control windows (default); gaussian: Mahalanobis distance "
        "(benchmarks/README.md compares them)",
    )
    p.set_defaults(func=reference_command)


def add_reference_option(p) -> None:
    """``--reference REF.npz`` on map and predict: add the 'unlike your controls' map and columns."""
    p.add_argument(
        "--reference",
        metavar="REF.npz",
        help="an 'unlike your controls' reference (phototox reference): adds each image's fraction of windows "
        "beyond its line (with an interval and p-value) and, in map, an unlike-your-controls map beside P(sick)",
    )
