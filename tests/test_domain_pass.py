"""One pass for the map and the domain check: the dense tiles give the same features as a window-by-window pass."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, need_celldeath, random_deadnet_gap

from phototox.io.images import read_frames
from phototox.io.manifest import read_manifest
from phototox.maps.inference import Predictor
from phototox.maps.normalise import Contract
from phototox.maps.settings import MapSettings
from phototox.models.architectures import NETWORK_STRIDE, WINDOW
from phototox.models.backends.torch import TorchBackend
from phototox.models.base import LoadedModel
from phototox.models.weights import load_weights
from phototox.synth.fields import render_field
from phototox.trust.assess import Assessor
from phototox.trust.domain import DomainStats
from phototox.trust.domain_pass import FEATURE, DomainTaps, grid_indices, model_border, window_features
from phototox.trust.pixelsize import PixelSize

ENGINES = [
    "torch",
    pytest.param(
        "onnx",
        marks=pytest.mark.skipif(
            __import__("importlib").util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"
        ),
    ),
]


def _box_predictor(engine: str, tile_windows: int = 48) -> Predictor:
    """A random box-contract deadnet-gap with non-trivial BatchNorm statistics (folding matters)."""
    module = random_deadnet_gap(3, affine=True)
    loaded = LoadedModel(
        TorchBackend(module), "deadnet-gap", {}, meta={"normalisation": Contract("box", 221).to_meta()}
    )
    predictor = Predictor.create(loaded, "cpu", engine=engine)
    predictor.tile_windows = tile_windows
    return predictor


@pytest.mark.parametrize("engine", ENGINES)
def test_dense_tiles_give_the_window_by_window_features(engine):
    """Features taken from the dense tiles (several tiles, windows on tile seams) equal a separate pass."""
    field = render_field(220 + 16 * 30, 220 + 16 * 21, 0.6, seed=4).image.astype(np.float32) * 30.0 + 700.0
    predictor = _box_predictor(engine, tile_windows=7)
    taps = DomainTaps(field.shape, model_border(predictor))
    predictor.analyse_frame(field, MapSettings(stride=16), taps=taps)
    one, two = taps.features(), window_features(predictor, field)
    assert one.trunk.shape == two.trunk.shape == (len(grid_indices(field.shape)), 256)
    assert np.abs(one.trunk - two.trunk).max() <= 1e-4 * max(1.0, np.abs(two.trunk).max())
    assert np.abs(one.fine_detail - two.fine_detail).max() <= 1e-5
    assert np.ptp(two.trunk, axis=0).max() > 1e-3  # windows differ: the comparison can fail


def test_grid_is_on_the_network_grid_and_inside():
    for shape in [(220, 220), (960, 1280), (1023, 1500), (5000, 300)]:
        indices = grid_indices(shape)
        assert 0 < len(indices) <= 48 and len(set(indices)) == len(indices)
        for i, j in indices:
            assert NETWORK_STRIDE * i + WINDOW <= shape[0] and NETWORK_STRIDE * j + WINDOW <= shape[1]


REFIT_MODEL = REPO / "models" / "deadnet-gap-celldeath-v3.pt"


@pytest.fixture(scope="module")
def refit_model() -> LoadedModel:
    model = load_weights(REFIT_MODEL)
    if DomainStats.from_meta(model.meta) is None or not DomainStats.from_meta(model.meta).one_pass:
        pytest.skip(f"{REFIT_MODEL} has two-pass domain statistics (scripts/refit_domain.py refits them)")
    return model


@pytest.mark.slow
def test_one_pass_verdicts_on_real_images(refit_model):
    """Through the front door, held-out celldeath fields stay in domain and strange copies are flagged;
    each verdict equals the one from a separate window-by-window pass."""
    need_celldeath()
    from conftest import CELLDEATH

    train = set(refit_model.meta["train_groups"])
    held_out = [s.path for s in read_manifest(CELLDEATH / "manifest.csv") if s.group not in train][:3]
    predictor = Predictor.create(refit_model, "cpu")
    stats = DomainStats.from_meta(refit_model.meta)
    assert stats is not None and stats.feature == FEATURE
    assessor = Assessor(predictor, warn=lambda line: None)
    rng = np.random.default_rng(0)
    for path in held_out:
        field = read_frames(path)[0].astype(np.float32)
        for kind, frame, expected in [
            ("held-out", field, False),
            ("inverted", field.max() - field, True),
            ("noise", rng.normal(field.mean(), field.std(), field.shape).astype(np.float32), True),
        ]:
            (result,) = assessor.analyse(frame, MapSettings(), PixelSize(0.434, "user"), source=path.name)
            separate = stats.verdict(window_features(predictor, frame))
            assert result.trust.out_of_domain is expected, (path.name, kind, result.trust)
            assert abs(result.trust.domain_score - separate.score) < 2e-4, (path.name, kind)
            assert abs(result.trust.fine_detail - separate.fine_detail) < 2e-4, (path.name, kind)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_strides_below_16_map_with_the_one_pass_checks_and_a_reference(engine):
    """Shift-and-stitch (stride 8, 4) runs the shifted offsets on the tapping runner: logits only there.

    A frame wider than 220 + stride has shifted offsets; the map must equal the unchecked one and the
    domain and novelty features must equal those at stride 16 (taken at offset 0 either way)."""
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.synth.fields import render_field
    from phototox.trust.assess import Assessor
    from phototox.trust.novelty import fit_reference, frame_window_features

    predictor = Predictor.from_spec("default", "cpu", engine=engine)
    frame = render_field(260, 250, 0.5, seed=3).image.astype(np.float32)
    controls = [render_field(260, 250, 0.0, seed=40 + s).image.astype(np.float32) for s in range(3)]
    reference = fit_reference([frame_window_features(predictor, c) for c in controls], info={"model": "default"})
    checked = Assessor(predictor, warn=lambda line: None, novelty=reference)
    size = checked.pixel_size(0.434)
    at16 = checked.analyse(frame, MapSettings(stride=16), size)[0]
    for stride in (8, 4):
        result = checked.analyse(frame, MapSettings(stride=stride), size)[0]
        bare = Assessor(predictor, warn=lambda line: None, checks="none").analyse(
            frame, MapSettings(stride=stride), size
        )[0]
        assert np.abs(result.sick_map - bare.sick_map).max() < 1e-6
        assert result.trust.domain_score == pytest.approx(at16.trust.domain_score, abs=1e-6)
        assert np.abs(result.novelty_map - at16.novelty_map).max() < 1e-5
