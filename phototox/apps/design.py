"""The ``design`` command: checks of an experiment's design before any image is taken."""

from __future__ import annotations


def design_command(args) -> int:
    """Print one line per design check of a doses table or manifest."""
    from phototox.experiment.design import design_lines

    print("\n".join(design_lines(args.table)))
    return 0


def register(sub) -> None:
    """The ``design`` command."""
    p = sub.add_parser(
        "design", help="check an experiment's design (controls, doses, replicates, positive control, ...)"
    )
    p.add_argument("table", help="time-course doses.csv or dose-response manifest (path, dose[, replicate])")
    p.set_defaults(func=design_command)
