"""The ``phototox`` command line. Thin: every command calls the library.

Errors caused by input (missing or corrupt files, bad settings) print one line naming the file
and the problem and exit with status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from phototox.apps import (
    compare_command,
    data_commands,
    demo_command,
    design,
    dose_commands,
    explain_commands,
    live_command,
    predict_commands,
    reference_command,
    scale_commands,
    serve,
    train_commands,
)
from phototox.apps.annotate import cli as annotate_cli
from phototox.errors import PhototoxError, describe_os_error
from phototox.extras import missing_extra_message

COMMANDS = (
    demo_command.register,
    predict_commands.register,
    train_commands.register,
    explain_commands.register,
    dose_commands.register,
    data_commands.register,
    serve.register,
    scale_commands.register,
    annotate_cli.register,
    design.register,
    compare_command.register,
    reference_command.register,
    live_command.register,
)
"""Every built-in command's ``register(sub)``, in the order ``phototox --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The parser: one ``register(sub)`` per command module, then the plugins' entry points."""
    parser = argparse.ArgumentParser(
        prog="phototox",
        description=(
            "Detect light-induced damage (phototoxicity) in label-free phase-contrast images. "
            "Reimplements DeadNet (Richmond et al., 2017, arXiv:1701.06109)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)

    for ep in entry_points(group="phototox.commands"):
        try:
            ep.load()(sub)
        except ImportError as exc:  # an optional front end whose dependencies are missing
            q = sub.add_parser(ep.name, help=f"(unavailable: {exc})")
            q.set_defaults(func=lambda args, exc=exc: _unavailable(exc))
    return parser


def _unavailable(exc: ImportError) -> int:

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
