"""Options and helpers every ``phototox`` command shares: model, map settings, pixel size."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from phototox.errors import ImageInputError
from phototox.maps.settings import ENGINES, MapSettings

if TYPE_CHECKING:  # the parser must not import torch
    from phototox.maps.inference import Predictor
    from phototox.trust.assess import Assessor


def add_model_options(
    p: argparse.ArgumentParser, default: str = "default", default_is: str = "the shipped model"
) -> None:
    """``--model``, ``--device``, ``--batch-size`` and ``--engine`` (any registry name, weight file, package, zoo id or URL)."""
    p.add_argument(
        "--model",
        default=default,
        help="a shipped model's name (see `phototox models`), a .pt weight file, a bioimage.io "
        f"package (.zip or folder), a zoo id or a package URL (default: {default_is})",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="windows per batch in exact mode (default 8 on CPU, 64 on a GPU)"
    )
    p.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="runtime of dense maps: torch, onnx (ONNX Runtime, CPU), auto = onnx on a CPU, else torch: "
        "the same numbers to 1e-4; bf16 = PyTorch in bfloat16, opt-in and approximate (P(sick) within "
        "about 0.02 of exact). Every result names the one used (default: auto)",
    )


def add_map_options(p: argparse.ArgumentParser) -> None:
    """The map options, generated from :class:`phototox.maps.settings.MapSettings` (defaults, choices, help)."""

    MapSettings.add_arguments(p)
    p.add_argument(
        "--checks",
        default="all",
        choices=("all", "none"),
        help="trust checks: all = domain (from the map's own dense pass where the model allows) and quality "
        "flags; none = the bare map, every result marked checks=none (default: all)",
    )


def predictor_from_args(args: argparse.Namespace) -> Predictor:
    """The predictor that ``--model``, ``--device`` and ``--batch-size`` name (the one way from a spec)."""
    from phototox.maps.inference import Predictor

    return Predictor.from_spec(args.model, args.device, args.batch_size, getattr(args, "engine", "auto"))


def add_pixel_size_option(p: argparse.ArgumentParser) -> None:
    """``--pixel-size UM``: the images' pixel size (else the file's metadata, else the model's, assumed)."""
    p.add_argument(
        "--pixel-size",
        type=float,
        metavar="UM",
        help="the images' pixel size in um/px (default: from the file's metadata, else the model's "
        "is ASSUMED and every result says so); images are resampled to the model's pixel size",
    )


def assessor_from_args(args: argparse.Namespace, controls: bool = False) -> Assessor:
    """The predictor wrapped with pixel size, domain, quality and control handling (phototox.trust.assess)."""
    from phototox.trust.assess import Assessor
    from phototox.trust.controls import ControlReference, control_reference

    assessor = Assessor(predictor_from_args(args), checks=getattr(args, "checks", "all"))
    if getattr(args, "reference", None):  # 'unlike your controls' (phototox reference)
        from phototox.trust.novelty import NoveltyReference

        check_inputs_exist([Path(args.reference)])
        assessor.novelty = NoveltyReference.load(args.reference)
        assessor.novelty.check_model(assessor.predictor.model)
    if controls and getattr(args, "controls", None):
        check_inputs_exist([Path(c) for c in args.controls])
        assessor.controls = control_reference(
            [Path(c) for c in args.controls], assessor, MapSettings.from_args(args), args.pixel_size
        )
    elif controls:
        assessor.controls = ControlReference.from_meta(assessor.predictor.model.meta)
    return assessor


def check_inputs_exist(paths: list[Path]) -> None:
    """Fail fast, before loading a model, when an input file is missing."""

    for path in paths:
        if not path.is_file():
            raise ImageInputError(f"{path}: no such file")


def add_out(p: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    """``--out``: where a command writes (``what``: a folder or file, and what goes in it)."""
    p.add_argument("--out", required=required, help=what)


def add_quiet(p: argparse.ArgumentParser, what: str = "no progress bars or messages") -> None:
    """``--quiet``: no progress bars (and no messages unless ``what`` says otherwise)."""
    p.add_argument("--quiet", action="store_true", help=what)


def add_labelling_options(p: argparse.ArgumentParser, group_help: str = "manifest column that groups images") -> None:
    """``--dose-threshold`` (mass labelling by dose) and ``--group-column`` (the split unit)."""
    p.add_argument("--dose-threshold", type=float, help="label images by dose >= threshold (mass labelling)")
    p.add_argument("--group-column", help=f"{group_help} (default: group/field)")
