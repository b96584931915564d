"""Add pixel size, domain statistics and a focus reference to a shipped model, post hoc.

    python scripts/add_trust_meta.py --name deadnet-gap-celldeath-v2 --pixel-size 0.434 \
        --manifest ../shared/data/celldeath_u2os/manifest.csv

Statistics come from the model's TRAINING images only (``meta["train_groups"]``, the groups
train.py's seeded split gave it); its validation images stay untouched to test the threshold.
The updated file is re-registered through :func:`phototox.models.registry.ship`, keeping the
entry's card fields. Models trained now record these statistics themselves (``phototox train``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from phototox.io.manifest import read_manifest
from phototox.models.registry import CARD_FIELDS, load_registered, read_registry, ship
from phototox.models.weights import save_weights
from phototox.trust.assess import training_trust_meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--pixel-size", type=float, help="um/px the model was trained at (omit when unknown)")
    args = parser.parse_args()

    registry = read_registry()
    entry = registry.entry(args.name)
    model = load_registered(args.name)
    train_groups = set(model.meta.get("train_groups") or [])
    if not train_groups:
        raise SystemExit(f"{args.name}: the model records no training groups")
    samples = [s for s in read_manifest(args.manifest) if s.group in train_groups]
    print(f"{len(samples)} training images of {args.manifest}")
    meta = dict(model.meta)
    meta.update(training_trust_meta(model, samples, args.pixel_size, args.pixel_size))
    meta["domain"]["fitted_on"] += f" ({Path(args.manifest).name}, train_groups)"
    card = {k: getattr(entry, k) for k in CARD_FIELDS if getattr(entry, k, None) not in (None, "", [], {})}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.pt"
        save_weights(out, model.module, model.arch, model.arch_kwargs, meta)
        ship(out, args.name, default=registry.default == args.name, **card)
    print(f"domain threshold {meta['domain']['threshold']}; focus reference {meta['quality']['focus_reference']}")


if __name__ == "__main__":
    main()
