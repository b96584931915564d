"""How far does a trivial image statistic get on the same split? (a check for the batch confound)

The celldeath images confound label with replicate (all sick images are replicate N3, all healthy
ones N1). If a one-number texture statistic of the *normalised* crops separates the held-out
images as well as the network does, the network's accuracy says little about biology.

    python scripts/confound_baseline.py runs/gap/config.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from phototox.dataset import CropDataset
from phototox.evaluate import roc_auc
from phototox.manifest import read_manifest


def crop_features(dataset: CropDataset) -> np.ndarray:
    """Sharpness (variance of the Laplacian) and granularity of each normalised crop."""
    out = []
    for i in range(len(dataset)):
        crop = dataset[i][0][0].numpy().astype(np.float64)
        lap = ndimage.laplace(crop).var()
        fine = (crop - ndimage.gaussian_filter(crop, 2)).std()
        out.append((np.log(lap), fine))
    return np.array(out)


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    samples = read_manifest(config["manifest"])
    train_groups, val_groups = set(config["train_groups"]), set(config["val_groups"])
    train = CropDataset(samples, [i for i, s in enumerate(samples) if s.group in train_groups])
    val = CropDataset(samples, [i for i, s in enumerate(samples) if s.group in val_groups])
    xtr, ytr = crop_features(train), train.labels()
    xva, yva = crop_features(val), val.labels()
    for k, name in enumerate(("log Laplacian variance (sharpness)", "fine-texture std")):
        # one threshold, chosen on the training crops only
        candidates = np.unique(xtr[:, k])
        accs = [max(np.mean((xtr[:, k] >= t) == ytr), np.mean((xtr[:, k] < t) == ytr)) for t in candidates]
        best = candidates[int(np.argmax(accs))]
        sign = np.mean((xtr[:, k] >= best) == ytr) >= np.mean((xtr[:, k] < best) == ytr)
        predicted = (xva[:, k] >= best) if sign else (xva[:, k] < best)
        groups = np.array([samples[r.sample].group for r in val.refs])
        image_acc = np.mean([np.mean(predicted[groups == g]) >= 0.5 if samples[val.refs[np.flatnonzero(groups == g)[0]].sample].label
                             else np.mean(predicted[groups == g]) < 0.5 for g in sorted(set(groups))])
        print(f"{name:36s} held-out crop accuracy {np.mean(predicted == yva):.3f}, crop AUC "
              f"{roc_auc(xva[:, k] if sign else -xva[:, k], yva):.3f}, image accuracy {image_acc:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/gap/config.json")
