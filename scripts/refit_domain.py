"""Refit a shipped model's domain statistics on the one-pass feature; the weights stay as they are.

    python scripts/refit_domain.py --name deadnet-gap-celldeath-v3 \
        --manifest ../shared/data/celldeath_u2os/manifest.csv --models-dir models

Only ``meta["domain"]`` changes: it is fitted again, on the model's TRAINING images
(``meta["train_groups"]``) as before, with the feature of :mod:`phototox.trust.domain_pass` (which the
dense pass gives at no extra network cost). The state dict, the focus reference and every other
meta entry are copied unchanged. The file is re-registered in ``--models-dir`` (its registry entry
keeps its card; its checksum changes because the meta did). ``--models-dir`` is explicit so that a
worktree never writes to another checkout's ``models/``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from phototox.io.images import read_frames
from phototox.io.manifest import read_manifest
from phototox.maps.inference import Predictor
from phototox.models.registry import CARD_FIELDS, read_registry, ship
from phototox.models.weights import load_weights, save_weights
from phototox.trust.domain import compute_domain_stats
from phototox.trust.pixelsize import manifest_pixel_size, training_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--models-dir", required=True, type=Path, help="the models/ folder to update")
    args = parser.parse_args()

    registry = read_registry(args.models_dir)
    entry = registry.entry(args.name)
    model = load_weights(registry.path(entry.name), entry.sha256, source=entry.name)
    train_groups = set(model.meta.get("train_groups") or [])
    if not train_groups:
        raise SystemExit(f"{args.name}: the model records no training groups")
    samples = [s for s in read_manifest(args.manifest) if s.group in train_groups]
    model_um = model.meta.get("pixel_size_um")
    fields = []
    for sample in samples:
        frames = read_frames(sample.path, min_size=model.window)
        if sample.frames is not None:
            frames = frames[sample.frames[0] : sample.frames[1] + 1]
        image_um = manifest_pixel_size(sample.extra, str(sample.path)) or model_um
        fields.append(list(training_frames(frames, image_um, model_um, model.window, str(sample.path))))
    old = model.meta.get("domain") or {}
    domain = compute_domain_stats(
        Predictor.create(model, "cpu"), fields, f"{len(fields)} training images", model_um, one_pass=True
    )
    domain["fitted_on"] += f" ({Path(args.manifest).name}, train_groups)"
    meta = {**model.meta, "domain": domain}
    card = {k: getattr(entry, k) for k in CARD_FIELDS if getattr(entry, k, None) not in (None, "", [], {})}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.pt"
        save_weights(out, model.module, model.arch, model.arch_kwargs, meta)
        ship(out, args.name, folder=args.models_dir, default=registry.default == args.name, **card)
    print(
        f"{args.name}: domain threshold {old.get('threshold')} -> {domain['threshold']}, fine-detail limit "
        f"{(old.get('fine_detail') or {}).get('limit')} -> {domain['fine_detail']['limit']} ({len(fields)} fields)"
    )


if __name__ == "__main__":
    main()
