"""Add pixel size, domain statistics and a focus reference to a shipped model, post hoc.

    python scripts/add_trust_meta.py --name deadnet-gap-celldeath-v2 --pixel-size 0.434 \
        --manifest ../shared/data/celldeath_u2os/manifest.csv

Statistics come from the model's TRAINING images only (``meta["train_groups"]``, the groups
train.py's seeded split gave it); its validation images stay untouched to test the threshold.
The updated file is written beside the old one and registered through scripts/ship_model.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from phototox.assess import training_trust_meta
from phototox.manifest import read_manifest
from phototox.weights import (
    load_weights,
    save_weights,
    shipped_model_path,
    shipped_registry,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--pixel-size", type=float, required=True, help="um/px the model was trained at")
    args = parser.parse_args()

    path, checksum = shipped_model_path(args.name)
    model = load_weights(path, checksum)
    train_groups = set(model.meta.get("train_groups") or [])
    if not train_groups:
        raise SystemExit(f"{path}: the model records no training groups")
    samples = [s for s in read_manifest(args.manifest) if s.group in train_groups]
    print(f"{len(samples)} training images of {args.manifest}")
    meta = dict(model.meta)
    meta.update(training_trust_meta(model, samples, args.pixel_size, args.pixel_size))
    meta["domain"]["fitted_on"] += f" ({Path(args.manifest).name}, train_groups)"
    summary = shipped_registry()["models"][args.name].get("summary", "")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.pt"
        save_weights(out, model.module, model.arch, model.arch_kwargs, meta)
        ship = Path(__file__).with_name("ship_model.py")
        subprocess.run([sys.executable, str(ship), str(out), "--name", args.name, "--summary", summary], check=True)
    print(f"domain threshold {meta['domain']['threshold']}; focus reference {meta['quality']['focus_reference']}")


if __name__ == "__main__":
    main()
