"""Shared fixtures: small synthetic images, a tiny trained model, the optional shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", REPO.parent / "shared" / "data"))
CELLDEATH = SHARED_DATA / "celldeath_u2os"
USIIGACI = SHARED_DATA / "usiigaci_t98g_phase"


def need_celldeath() -> Path:
    if not (CELLDEATH / "manifest.csv").is_file():
        pytest.skip(f"real data not found at {CELLDEATH} (set PHOTOTOX_SHARED_DATA); see ../shared/data/README.md")
    return CELLDEATH


def need_usiigaci() -> Path:
    if not (USIIGACI / "frames").is_dir():
        pytest.skip(f"real data not found at {USIIGACI} (set PHOTOTOX_SHARED_DATA)")
    return USIIGACI


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """Eight 256x256 synthetic fields, four doses x two, with a manifest (labels by dose)."""
    from phototox.synth import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synth"), [0.0, 0.2, 0.8, 1.0], images_per_dose=2, size=256, seed=3)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, synth_dataset) -> Path:
    """A deadnet-gap model trained for a handful of iterations on the synthetic set (CPU, seconds)."""
    from phototox.augment import AugmentConfig
    from phototox.manifest import read_manifest
    from phototox.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tinyrun")
    cfg = TrainConfig(iterations=6, batch_size=4, eval_every=3, checkpoint_every=3, val_fraction=0.25,
                      device="cpu", base_lr=1e-3, augment=AugmentConfig(tps_warp=False))
    return train(read_manifest(synth_dataset), out, cfg, progress=False)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
