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

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # pytest -n: the cores shared out, no oversubscribed thread pools
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_threads))


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
    from phototox.synth.fields import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synth"), [0.0, 0.2, 0.8, 1.0], images_per_dose=2, size=256, seed=3)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, synth_dataset) -> Path:
    """A deadnet-gap model trained for a handful of iterations on the synthetic set (CPU, seconds)."""
    from phototox.io.manifest import read_manifest
    from phototox.training.augment import AugmentConfig
    from phototox.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tinyrun")
    cfg = TrainConfig(
        iterations=6,
        batch_size=4,
        eval_every=3,
        checkpoint_every=3,
        val_fraction=0.25,
        device="cpu",
        base_lr=1e-3,
        augment=AugmentConfig(tps_warp=False),
    )
    return train(read_manifest(synth_dataset), out, cfg, progress=False)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


VARYING_MODEL = "shipped:deadnet-gap-synthetic-v2"
"""A model whose outputs vary strongly with the image (P(sick) 0.01-0.9 over a synthetic dose series)."""


@pytest.fixture(scope="session")
def varying_predictor():
    """The shipped synthetic-data model on the CPU: tests on it can fail when a map is wrong.

    The few-iteration ``tiny_model_path`` answers 0.50-0.52 for everything, so a constant map
    passes any comparison made with it; use this one wherever a value is compared.
    """
    return predictor_for(VARYING_MODEL, batch_size=16)


def predictor_for(spec: str, batch_size: int | None = None):
    """A CPU predictor for a model argument (``Predictor.from_spec`` where the model subpackage has it)."""
    from phototox.maps.inference import Predictor

    if hasattr(Predictor, "from_spec"):
        return Predictor.from_spec(spec, "cpu", batch_size)
    return Predictor.from_spec(spec, "cpu", batch_size)


def periodic_field(height: int = 252, width: int = 284) -> np.ndarray:
    """A field that repeats every 220 px: healthy (dose 0) left half, damaged (dose 1) right half.

    Every 220 px window of it holds the same pixels (cyclically shifted), so every window has the
    same mean and standard deviation: local (dense) and per-crop (exact) normalisation coincide
    and dense and exact maps must agree to float precision, while the window values still vary
    (0.01-0.29 with the synthetic model, by where the damaged half sits in the window).
    """
    from phototox.synth.fields import render_field

    tile = render_field(220, 220, 0.0, seed=5).image.astype(np.float32)
    tile[:, 110:] = render_field(220, 220, 1.0, seed=6).image[:, 110:]
    return np.tile(tile, (-(-height // 220), -(-width // 220)))[:height, :width]


def random_deadnet_gap(seed: int, affine: bool = False):
    """An eval-mode random deadnet-gap whose BatchNorms have non-trivial running statistics
    (and, with ``affine``, non-trivial scales and shifts), so folding them into convolutions matters."""
    import torch

    from phototox.models.architectures import build_model

    torch.manual_seed(seed)
    model = build_model("deadnet-gap").eval()
    with torch.no_grad():
        for layer in model.features:
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
                if affine:
                    layer.weight.uniform_(0.5, 1.5)
                    layer.bias.uniform_(-0.2, 0.2)
    return model


def brute_force_box(frame: np.ndarray, size: int) -> np.ndarray:
    """Each pixel by the mean/std of the box centred on it, edges mirrored (edge pixel repeated)."""
    r = size // 2
    padded = np.pad(frame.astype(np.float64), r, mode="symmetric")
    out = np.empty(frame.shape)
    for i in range(frame.shape[0]):
        for j in range(frame.shape[1]):
            box = padded[i : i + size, j : j + size]
            out[i, j] = (frame[i, j] - box.mean()) / box.std()
    return out
