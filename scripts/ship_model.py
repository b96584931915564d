"""Copy a trained run's weights into models/ and register them (checksum and model card fields).

    python scripts/ship_model.py runs/gap/model.pt --name deadnet-gap-celldeath-v3 --default \
        --summary "DeadNet-GAP trained on celldeath U2OS (La Greca et al. 2021)" \
        --card-json card.json   # pixel_size_um, pixel_size_note, training_data, citations, card

The work is :func:`phototox.models.registry.ship`; this script only parses arguments.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phototox.errors import PhototoxError
from phototox.models.registry import ship


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--summary", default="")
    parser.add_argument("--pixel-size", type=float, default=None, help="um/px of the training images")
    parser.add_argument("--card-json", type=Path, help="JSON object of further model card fields")
    parser.add_argument("--default", action="store_true")
    args = parser.parse_args()
    card = json.loads(args.card_json.read_text()) if args.card_json else {}
    card.setdefault("summary", args.summary)
    if args.pixel_size is not None:
        card["pixel_size_um"] = args.pixel_size
    try:
        entry = ship(args.weights, args.name, default=args.default, **card)
    except PhototoxError as exc:
        raise SystemExit(f"ship_model: {exc}") from None
    print(f"shipped {entry.file} ({entry.bytes / 1e6:.1f} MB, sha256 {entry.sha256[:16]}...)")


if __name__ == "__main__":
    main()
