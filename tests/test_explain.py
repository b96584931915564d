"""Grad-CAM finds a planted discriminative blob; class-model visualisation raises the class score."""

import numpy as np
import pytest
import torch
from torch import nn

from phototox.maps.normalise import normalise_crops
from phototox.training.explain import class_model_for, gradcam_frame, gradcam_weights

WINDOW = 64


class Toy(nn.Module):
    """A small fully convolutional classifier: blob present -> class 1."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.features(x).amax(dim=(2, 3)))


def _sample(rng, blob: bool):
    img = rng.normal(0, 1, (WINDOW, WINDOW)).astype(np.float32)
    if blob:
        y, x = rng.integers(8, WINDOW - 8, 2)
        yy, xx = np.mgrid[:WINDOW, :WINDOW]
        img += 6 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    return img


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Toy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        labels = rng.integers(0, 2, 32)
        x = normalise_crops(torch.from_numpy(np.stack([_sample(rng, bool(b)) for b in labels])))[:, None]
        loss = nn.functional.cross_entropy(model(x), torch.from_numpy(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@pytest.mark.slow
def test_toy_model_learned_the_blob(toy):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 64)
    x = normalise_crops(torch.from_numpy(np.stack([_sample(rng, bool(b)) for b in labels])))[:, None]
    with torch.no_grad():
        accuracy = (toy(x).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9


@pytest.mark.slow
def test_gradcam_highlights_the_planted_blob(toy):
    rng = np.random.default_rng(5)
    frame = rng.normal(0, 1, (128, 160)).astype(np.float32)
    yy, xx = np.mgrid[:128, :160]
    frame += 6 * np.exp(-((yy - 90) ** 2 + (xx - 40) ** 2) / 8.0)
    heat = gradcam_frame(toy, toy.features[3], frame, class_index=1, window=WINDOW, stride=16)
    assert heat.shape == frame.shape and heat.min() >= 0
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(peak[0] - 90) <= 8 and abs(peak[1] - 40) <= 8
    inside = heat[80:100, 30:50].mean()
    assert inside > 3 * heat.mean()


@pytest.mark.slow
def test_class_averaged_weights_are_used_when_given(toy):
    rng = np.random.default_rng(2)
    crops = normalise_crops(torch.from_numpy(np.stack([_sample(rng, True) for _ in range(16)])))[:, None]
    weights = gradcam_weights(toy, toy.features[3], crops, 1).mean(0).numpy()
    frame = _sample(rng, True)
    a = gradcam_frame(toy, toy.features[3], frame, 1, WINDOW, weights=weights, stride=32)
    b = gradcam_frame(toy, toy.features[3], frame, 1, WINDOW, weights=-weights, stride=32)
    assert a.max() > 0 and not np.allclose(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("init", ["zeros", "opposite"])
def test_class_model_raises_the_class_score(toy, init):
    start = None if init == "zeros" else _sample(np.random.default_rng(3), False)
    result = class_model_for(toy, WINDOW, class_index=1, init=start, iterations=60, lr=0.1)
    assert result.image.shape == (WINDOW, WINDOW)
    assert result.scores[-1] > result.scores[0] + 1.0
    assert result.probabilities[-1] > result.probabilities[0]


@pytest.mark.slow
def test_explain_and_class_model_commands(tmp_path, tiny_model_path, synth_dataset):
    import tifffile

    from phototox.apps.cli import main
    from phototox.synth.fields import render_field

    image = tmp_path / "field.tif"
    tifffile.imwrite(image, render_field(260, 330, 0.8, seed=2).image)
    out = tmp_path / "why"
    assert (
        main(
            [
                "explain",
                str(image),
                "--model",
                str(tiny_model_path),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--reference",
                str(synth_dataset),
                "--max-reference-crops",
                "8",
            ]
        )
        == 0
    )
    heat = tifffile.imread(out / "field_gradcam.tif")
    assert heat.shape == (260, 330) and heat.dtype == np.float32 and heat.min() >= 0
    assert (out / "field_gradcam.png").is_file()
    assert (
        main(
            [
                "class-model",
                "--model",
                str(tiny_model_path),
                "--out",
                str(out),
                "--iterations",
                "5",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "class_model_sick.png").stat().st_size > 1000
