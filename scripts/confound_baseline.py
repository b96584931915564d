"""Superseded by ``phototox audit MANIFEST --out DIR`` (library: ``phototox.training.audit``, ``phototox.training.nuisance``).

Kept as a thin call so old notes keep working: audits the manifest of a training run's config
(cross-tabulations of label against replicate etc., and a grouped-CV classifier on acquisition
statistics alone, with a bootstrap interval).

    python scripts/confound_baseline.py runs/gap/config.json [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from phototox.training.audit import audit_manifest, format_audit


def main(config_path: str, out_dir: str | None = None) -> None:
    manifest = json.loads(Path(config_path).read_text())["manifest"]
    print(format_audit(audit_manifest(manifest, out_dir)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/gap/config.json", sys.argv[2] if len(sys.argv) > 2 else None)
