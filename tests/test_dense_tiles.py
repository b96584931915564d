"""Dense maps prepared tile by tile: same numbers as the whole-frame reference, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import random_deadnet_gap

from phototox.maps.dense import (
    CONV1_KERNEL,
    FusedTrunk,
    TileInputs,
    conv1_statistics,
    dense_logits,
    dense_sick_grid,
    frame_moments,
)
from phototox.maps.inference import Predictor
from phototox.maps.normalise import box_normalise
from phototox.maps.windows import upsample_grid, upsample_map
from phototox.synth.fields import render_field

CPU = torch.device("cpu")
REGIONS = [(0, 220, 0, 220), (16, 268, 32, 300), (80, 316, 100, 316), (0, 316, 0, 316)]


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return render_field(220 + 16 * 6, 220 + 16 * 6, 0.6, seed=3).image.astype(np.float32) * 30.0 + 700.0


@pytest.fixture(scope="module")
def module() -> torch.nn.Module:
    """A random deadnet-gap with non-trivial BatchNorm statistics (so folding them matters)."""
    model = random_deadnet_gap(2, affine=True)
    with torch.no_grad():
        model.fc.weight.mul_(200.0)  # spread P(sick) over the field
    return model


@pytest.mark.parametrize("region", REGIONS)
def test_tile_statistics_equal_whole_frame_statistics(field, region):
    inputs = TileInputs(field, "local", CPU)
    shift, scale = frame_moments(field)
    mean, std = conv1_statistics(torch.from_numpy((field - shift) / scale), "local")
    y0, y1, x0, x1 = region
    tile, tile_mean, tile_std = inputs.region(y0, y1, x0, x1)
    out = (slice(y0, y1 - CONV1_KERNEL + 1), slice(x0, x1 - CONV1_KERNEL + 1))
    assert float(mean.std()) > 0.01, "statistics must vary, or the test cannot fail"
    assert torch.allclose(tile, torch.from_numpy((field[y0:y1, x0:x1] - shift) / scale), atol=1e-5)
    assert (tile_mean - mean[out]).abs().max() < 1e-5
    assert (tile_std - std[out]).abs().max() < 1e-5


@pytest.mark.parametrize("region", REGIONS)
def test_box_bands_equal_the_whole_normalised_frame(field, region):
    inputs = TileInputs(field, "box", CPU, box_size=221, column_chunk=37)
    whole = box_normalise(field, 221)
    y0, y1, x0, x1 = region
    tile, mean, std = inputs.region(y0, y1, x0, x1)
    assert mean is None and std is None
    assert np.abs(tile.numpy() - whole[y0:y1, x0:x1]).max() < 1e-5


@pytest.mark.parametrize("with_statistics", [False, True])
def test_folded_trunk_computes_the_same_logits(module, field, with_statistics):
    frame = torch.from_numpy(box_normalise(field, 221))
    stats = (
        TileInputs(field, "local", CPU).region(0, field.shape[0], 0, field.shape[1])[1:]
        if with_statistics
        else (None, None)
    )
    with torch.no_grad():
        reference = dense_logits(module, frame, *stats)
        folded = dense_logits(module, frame, *stats, trunk=FusedTrunk(module.features))
    assert float(reference.std()) > 0.01
    assert (folded - reference).abs().max() < 1e-4 * max(1.0, float(reference.abs().max()))


@pytest.mark.parametrize("normalisation", ["local", "global"])
def test_tiled_per_crop_dense_map_equals_the_whole_frame_reference(module, field, normalisation):
    """The pre-tiling computation: statistics of the whole frame, one pass, BatchNorm unfolded."""
    shift, scale = frame_moments(field)
    conditioned = torch.from_numpy((field - shift) / scale)
    with torch.no_grad():
        logits = dense_logits(module, conditioned, *conv1_statistics(conditioned, normalisation))
    reference = torch.softmax(logits, dim=0)[1].numpy()
    tiled = dense_sick_grid(module, field, 16, normalisation, tile_windows=2)
    assert tiled.shape == reference.shape
    assert reference.max() - reference.min() > 0.05, "the fixture map must vary"
    assert np.abs(tiled - reference).max() < 1e-4


def test_box_dense_from_raw_frame_equals_dense_from_normalised_frame(module, field):
    normalised = dense_sick_grid(module, torch.from_numpy(box_normalise(field, 221)), 16, "box", fuse=False)
    raw = dense_sick_grid(module, field, 16, "box", tile_windows=3, box_size=221)
    assert np.abs(raw - normalised).max() < 1e-4


def test_banded_upsampling_equals_the_reference():
    grid = np.random.default_rng(0).random((5, 7)).astype(np.float32) * 1.2 - 0.1
    shape = (220 + 32 * 4 + 5, 220 + 32 * 6 + 3)
    expected = np.clip(upsample_grid(grid, shape, 220, 32), 0.0, 1.0)
    got = upsample_map(grid, shape, 220, 32, band_rows=7)
    assert got.dtype == np.float32 and got.shape == shape
    assert np.abs(got - expected).max() < 1e-6


PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    torch.set_num_threads(1)
    def peak():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    size = int(sys.argv[1])
    predictor = Predictor.from_spec("shipped:deadnet-gap-synthetic-v2", "cpu")
    predictor.tile_windows = 16
    frame = np.random.default_rng(0).random((size, size), dtype=np.float32) * 100 + 1000
    before = peak()
    result = predictor.analyse_frame(frame, MapSettings(stride=32, mode="dense"))
    print(json.dumps({"extra": peak() - before, "map": result.sick_map.nbytes}))
""")


@pytest.mark.slow
def test_dense_analysis_memory_grows_like_the_output_map_only():
    """A 2500 x 2500 frame: beyond the fixed tile working set, only the output map (4 B/px) grows.

    Before tiling the preparation (float64 statistics / normalised frame, full-size upsampling
    temporaries) took about 37 B/px beside the map: about 230 MiB more here than the bound allows.
    """
    out = subprocess.run([sys.executable, "-c", PROBE, "2500"], capture_output=True, text=True, check=True)
    numbers = json.loads(out.stdout.strip().splitlines()[-1])
    assert numbers["extra"] < 2 * numbers["map"] + 100 * 2**20, numbers


def test_predictor_dense_grid_uses_the_tiled_path(field):
    predictor = Predictor.from_spec("shipped:deadnet-gap-synthetic-v2", "cpu")
    whole = predictor.dense_grid(field, 16)
    predictor.tile_windows = 2
    assert np.abs(predictor.dense_grid(field, 16) - whole).max() < 1e-5


@pytest.mark.parametrize("normalisation", ["local", "box"])
def test_integer_frames_are_cast_tile_by_tile(module, field, normalisation):
    """A uint16 frame is never copied whole to float32: each tile is cast, with the same map."""
    frame = np.round(field).astype(np.uint16)
    box = 221 if normalisation == "box" else None
    as_float = dense_sick_grid(module, frame.astype(np.float32), 32, normalisation, tile_windows=3, box_size=box)
    assert (
        np.abs(dense_sick_grid(module, frame, 32, normalisation, tile_windows=3, box_size=box) - as_float).max() < 1e-6
    )
