"""The ``compare`` command: any results table (CellProfiler, Fiji, phototox, a spreadsheet) against its controls."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from phototox.apps.options import add_out
from phototox.errors import PhototoxError
from phototox.io.planned import check_outputs


def compare_command(args) -> int:
    """Print (and optionally write) each condition of a table against the control condition."""
    from phototox.io.images import atomic_path
    from phototox.stats.compare_table import TableSpec, compare_table, format_table_comparison

    out = Path(args.out) if args.out else None
    if out is not None:
        if out.suffix.lower() not in (".csv", ".json"):
            raise PhototoxError(f"--out {out}: give a .csv or .json file")
        check_outputs([out], [args.table])
    spec = TableSpec(
        value=args.value,
        condition=args.by,
        control=args.control_condition,
        replicate=args.replicate,
        field=args.field,
        frame=args.frame,
        higher_is_harm=not args.lower_is_harm,
        margin=args.margin,
        readout=args.readout,
    )
    result = compare_table(args.table, spec, seed=args.seed)
    print("\n".join(format_table_comparison(result)))
    if out is not None:
        rows = result.rows()
        with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
            if out.suffix.lower() == ".json":
                doc: dict[str, object] = {"table": str(args.table), "conditions": rows}
                if result.doses is not None:
                    doc["doses"] = result.doses.as_dict()
                json.dump(doc, handle, indent=2)
            else:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        print(f"wrote {out}")
    return 0


def register(sub) -> None:
    """The ``compare`` command."""
    p = sub.add_parser(
        "compare",
        help="any results table (CellProfiler, Fiji, predict, time course) against its controls, replicates as units",
    )
    p.add_argument("table", help="CSV with one row per image (or frame, or cell-level summary)")
    p.add_argument("--value", required=True, help="the readout's column, e.g. Phototoxicity_MeanSickProbability_DNA")
    p.add_argument("--by", required=True, help="the column naming the condition (a light dose or a treatment)")
    p.add_argument(
        "--control-condition", default="0", help="the condition value of the zero-light controls (default 0)"
    )
    p.add_argument("--replicate", help="column of the independent dish/day/passage (the unit of inference)")
    p.add_argument("--field", help="column of the stage position (rows of one field are one unit)")
    p.add_argument("--frame", help="column of the frame (frames of one field are never independent)")
    p.add_argument(
        "--lower-is-harm",
        action="store_true",
        help="the readout falls with harm (division rate, growth, motility); default: it rises (P(sick))",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=0.2,
        help="non-inferiority margin: the largest harm accepted, as a fraction of the control mean (default 0.2)",
    )
    p.add_argument("--readout", help="the readout's name in the output (default: the --value column)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (5 or more units per arm)")
    add_out(p, "write the result as .csv or .json")
    p.set_defaults(func=compare_command)
