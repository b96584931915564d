"""Copy a trained run's weights into models/ and register them (checksum included).

    python scripts/ship_model.py runs/gap/model.pt --name deadnet-gap-celldeath-v1 --default \
        --summary "DeadNet-GAP trained on celldeath U2OS (La Greca et al. 2021)"
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from phototox.weights import load_weights, sha256_of

MODELS = Path(__file__).resolve().parents[1] / "models"
LIMIT_BYTES = 30 * 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--summary", default="")
    parser.add_argument("--default", action="store_true")
    args = parser.parse_args()

    loaded = load_weights(args.weights)  # validates format and sidecar checksum
    if args.weights.stat().st_size > LIMIT_BYTES:
        raise SystemExit(f"{args.weights} is over 30 MB; save it in half precision or ship the compact model")
    target = MODELS / f"{args.name}.pt"
    shutil.copyfile(args.weights, target)
    checksum = sha256_of(target)
    (MODELS / f"{args.name}.pt.sha256").write_text(f"{checksum}  {target.name}\n")
    registry_path = MODELS / "registry.json"
    registry = json.loads(registry_path.read_text()) if registry_path.is_file() else {"default": args.name, "models": {}}
    registry["models"][args.name] = {"file": target.name, "sha256": checksum, "arch": loaded.arch,
                                     "bytes": target.stat().st_size, "summary": args.summary}
    if args.default or len(registry["models"]) == 1:
        registry["default"] = args.name
    registry_path.write_text(json.dumps(registry, indent=2) + "\n")
    print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB, sha256 {checksum[:16]}...)")


if __name__ == "__main__":
    main()
