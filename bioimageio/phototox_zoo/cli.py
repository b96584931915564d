"""``phototox zoo build`` / ``python -m phototox_zoo build``: build and test the zoo package."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("build",), help="build: write the package zip and test it")
    p.add_argument("--model", default="default", help="model to package (default: the shipped model)")
    p.add_argument("--out", default="dist", help="output folder (default dist/)")
    p.add_argument("--name", help="package name")
    p.add_argument(
        "--test-image",
        help="image searched for an intermediate test window (default: redistributable real data, else synthetic)",
    )
    p.add_argument("--cover-image", help="image shown with its sickness map on the cover (default synthetic)")
    p.add_argument(
        "--maintainer",
        metavar="GITHUB_USER",
        help="maintainer's GitHub user (the zoo needs one; default $PHOTOTOX_ZOO_MAINTAINER)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic test and cover images")
    p.add_argument("--no-test", action="store_true", help="skip 'bioimageio test'")
    p.add_argument("--no-map", action="store_true", help="build only the window classifier, not the map package")
    p.set_defaults(func=run)


def register(sub) -> None:
    add_arguments(sub.add_parser("zoo", help="build the bioimage.io model package and test it offline"))


def run(args) -> int:
    from phototox.extras import require_extra

    require_extra("bioimageio", "phototox zoo build")
    from .build import build

    result = build(
        args.model,
        args.out,
        args.seed,
        args.test_image,
        args.cover_image,
        not args.no_test,
        args.name,
        args.maintainer,
        not args.no_map,
    )
    print(f"package: {result.package}")
    if result.map_package:
        print(f"map package: {result.map_package}")
    for weight_format, status in result.statuses.items():
        print(f"  bioimageio test [{weight_format}]: {status}")
    for weight_format, detail in result.details.items():
        print(f"--- {weight_format} ---\n{detail}", file=sys.stderr)
    return 0 if args.no_test or result.passed else 1


def main(argv: list[str] | None = None) -> int:
    from phototox.errors import PhototoxError

    parser = argparse.ArgumentParser(prog="python -m phototox_zoo", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PhototoxError as exc:
        print(f"phototox zoo: error: {exc}", file=sys.stderr)
        return 1
