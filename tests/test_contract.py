"""The preprocessing contract: one normalisation, under which dense maps equal exact ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import brute_force_box, need_celldeath, need_usiigaci

from phototox.io.manifest import Sample
from phototox.maps.inference import Predictor
from phototox.maps.normalise import box_normalise, normalise_region, reflect_index
from phototox.models.architectures import build_model
from phototox.models.backends.torch import TorchBackend
from phototox.models.base import LoadedModel
from phototox.models.contract import PER_CROP, Contract, contract_from_meta
from phototox.models.loader import load_model
from phototox.models.weights import save_weights
from phototox.synth.fields import render_field
from phototox.training.dataset import CropDataset

BOX = {"kind": "box", "size": 221, "edge": "reflect"}


@pytest.mark.parametrize(("shape", "size"), [((23, 31), 7), ((9, 12), 21)])
def test_box_normalisation_matches_brute_force(shape, size):
    frame = np.random.default_rng(size).normal(1000.0, 30.0, shape)
    frame[: shape[0] // 2] *= 3.0  # a contrast step, so mean and scale both vary across the frame
    assert np.abs(box_normalise(frame, size) - brute_force_box(frame, size)).max() < 1e-5


def test_mirroring_reaches_any_distance():
    assert reflect_index(np.arange(-5, 9), 3).tolist() == [1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2]


def test_tiles_with_a_halo_reproduce_the_whole_frame():
    frame = render_field(300, 340, 0.5, seed=4).image.astype(np.float32)
    whole = box_normalise(frame, 61)
    top = normalise_region(frame, 0, 170, 0, 340, 61)
    bottom = normalise_region(frame, 150, 300, 0, 340, 61)
    left = normalise_region(frame, 0, 300, 0, 200, 61)
    assert np.abs(top - whole[:170]).max() < 1e-5
    assert np.abs(bottom - whole[150:]).max() < 1e-5
    assert np.abs(left - whole[:, :200]).max() < 1e-5
    assert np.abs(box_normalise(frame, 61, band_rows=37) - whole).max() < 1e-5


def test_normalisation_removes_brightness_and_contrast():
    frame = render_field(260, 260, 0.3, seed=2).image.astype(np.float64)
    assert np.abs(box_normalise(frame * 7.5 + 300.0, 61) - box_normalise(frame, 61)).max() < 1e-4


def test_contract_in_metadata():
    assert contract_from_meta(None) == PER_CROP  # shipped v2 and older files: the paper's per-crop contract
    assert contract_from_meta(BOX) == Contract("box", 221)
    with pytest.raises(Exception, match="odd"):
        Contract("box", 220)


def varied_predictor(contract: dict, field: np.ndarray) -> Predictor:
    """A random deadnet-gap whose head is set so P(sick) spans roughly 0.02-0.98 over ``field``."""
    torch.manual_seed(5)
    module = build_model("deadnet-gap").eval()
    predictor = Predictor.create(
        LoadedModel(TorchBackend(module), "deadnet-gap", module.config(), meta={"normalisation": contract}),
        "cpu",
        batch_size=16,
    )
    frame = torch.from_numpy(predictor.normalised_frame(field))
    with torch.no_grad():
        feat = module.features(frame[None, None])[0]  # 128 channels on the 16 px grid
        direction = torch.randn(feat.shape[0])
        score = torch.einsum("c,cyx->yx", direction, feat)
        scale = 4.0 / float(score.std())
        module.fc.weight.zero_()
        module.fc.weight[1] = direction * scale
        module.fc.bias.copy_(torch.tensor([0.0, -float(score.median()) * scale]))
    return predictor


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return render_field(220 + 16 * 5, 220 + 16 * 6, 0.6, seed=11).image.astype(np.float32) * 40.0 + 900.0


@pytest.mark.parametrize("stride", [16, 32])
def test_dense_equals_exact_on_a_varied_model(field, stride):
    predictor = varied_predictor(BOX, field)
    exact = predictor.exact_grid(field, stride)
    assert exact.max() - exact.min() > 0.3, "fixture must vary, or the test cannot fail"
    assert np.abs(predictor.dense_grid(field, stride) - exact).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("stride", [8, 4])
def test_shift_and_stitch_equals_exact(field, stride):
    predictor = varied_predictor(BOX, field)
    part = field[: 220 + 16, : 220 + 32]
    exact = predictor.exact_grid(part, stride)
    assert np.abs(predictor.dense_grid(part, stride) - exact).max() < 1e-4


def test_evaluation_windows_are_windows_of_the_normalised_frame(tmp_path, field):
    import tifffile

    path = tmp_path / "field.tif"
    tifffile.imwrite(path, field)
    contract = Contract("box", 221)
    data = CropDataset([Sample(path=path, label=1, group="g")], augment=None, contract=contract)
    whole = box_normalise(field, 221)
    for index, ref in enumerate(data.refs[:3]):
        y, x = ref.y + 18, ref.x + 18  # centre 220 of the 256 crop
        assert np.abs(data[index][0][0].numpy() - whole[y : y + 220, x : x + 220]).max() < 1e-5


def test_trained_models_record_their_contract(tmp_path):
    module = build_model("deadnet-gap")
    path = tmp_path / "m.pt"
    save_weights(path, module, "deadnet-gap", module.config(), {"normalisation": BOX})
    assert Predictor.create(load_model(str(path)), "cpu").contract == Contract("box", 221)
    save_weights(path, module, "deadnet-gap", module.config(), {})
    assert Predictor.create(load_model(str(path)), "cpu").contract.kind == "crop"


def test_exact_mode_classifies_windows_of_the_normalised_frame(field):
    predictor = varied_predictor(BOX, field)
    exact = predictor.exact_grid(field, 32)
    from scipy.ndimage import uniform_filter

    x = field.astype(np.float64) - field.mean()  # an independent implementation: scipy's box filter
    mean = uniform_filter(x, 221, mode="reflect")
    std = np.sqrt(uniform_filter(x * x, 221, mode="reflect") - mean**2)
    normalised = torch.from_numpy(((x - mean) / std)[:, :220].astype(np.float32))
    for i in range(exact.shape[0]):
        window = normalised[32 * i : 32 * i + 220]
        with torch.no_grad():
            expected = torch.softmax(predictor.model.module(window[None, None]), dim=1)[0, 1]
        assert abs(float(expected) - float(exact[i, 0])) < 1e-4


def _real_region(frame: np.ndarray) -> np.ndarray:
    return frame[: 220 + 16 * 4, : 220 + 16 * 4].astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deadnet-gap-celldeath-v3", "deadnet-gap-synthetic-v3"])
@pytest.mark.parametrize("stride", [16, 32])
def test_shipped_model_dense_equals_exact_on_real_images(name, stride):
    """The shipped models as they are (box contract, trained with it): dense = exact on real images."""
    from phototox.io.images import read_frames

    images = [
        min((need_celldeath() / "images").glob("U2_CPT*")),
        min((need_celldeath() / "images").glob("U2_DMSO*")),
        min((need_usiigaci() / "frames").glob("*.tif")),
    ]
    model = load_model(f"shipped:{name}")
    assert model.meta["normalisation"]["kind"] == "box"
    predictor = Predictor.create(model, "cpu", batch_size=16)
    # the real images, and a synthetic field half healthy, half damaged (where the demo model's
    # outputs vary: on real cells it is nearly constant)
    damaged = np.concatenate(
        [render_field(284, 142, 0.0, seed=5).image, render_field(284, 142, 1.0, seed=6).image], axis=1
    ).astype(np.float32)
    frames = [_real_region(read_frames(path)[0]) for path in images] + [damaged]
    spread = []
    for path, frame in zip([*images, "synthetic field"], frames, strict=True):
        exact = predictor.exact_grid(frame, stride)
        spread.append(exact.max() - exact.min())
        assert np.abs(predictor.dense_grid(frame, stride) - exact).max() < 1e-4, str(path)
    assert max(spread) > 0.1
