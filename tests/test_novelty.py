"""'Unlike your controls' (phototox.trust.novelty) and the Grad-CAM scale (issue 26, parts 1 and 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from phototox.errors import PhototoxError
from phototox.trust.novelty import fit_reference, frame_window_features, wilson


@pytest.fixture(scope="module")
def healthy_field_features(varying_predictor):
    """Window features of 20 synthetic dose-0 fields (384 px: 36 windows each), one dense pass each."""
    from phototox.synth.fields import render_field

    return [
        frame_window_features(varying_predictor, render_field(384, 384, 0.0, seed=500 + s).image.astype(np.float32))
        for s in range(20)
    ]


@pytest.mark.slow
def test_leave_one_field_out_line_holds_its_false_alarm_rate_on_healthy_fields(healthy_field_features):
    """Fit on k = 9 random fields, test the other 11; the flagged rate lies in the stated rate's interval.

    Conformal exchangeability makes the expected rate exactly 1 - rank/(k+1) = 0.2 at alpha 0.2.
    Scoring the controls with themselves inside the fit (no held-out fields) or a line far above
    them leaves that interval.
    """
    rng = np.random.default_rng(0)
    fields = healthy_field_features
    flagged, trials, stated = 0, 0, set()
    for _ in range(30):
        order = rng.permutation(len(fields))
        reference = fit_reference([fields[i] for i in order[:9]], alpha=0.2)
        stated.add(reference.rate)
        for i in order[9:]:
            flagged += bool(reference.window_scores(fields[i]).max() > reference.threshold)
            trials += 1
    assert stated == {0.2}
    rate = flagged / trials
    low, high = wilson(0.2, len(fields))  # the units are fields: splits of the same 20 are not independent
    assert low <= rate <= high, f"held-out false-alarm rate {rate:.3f} outside [{low:.3f}, {high:.3f}] of 0.2"


def test_fewer_than_three_fields_are_refused(healthy_field_features):
    with pytest.raises(PhototoxError, match="at least 3 control fields.*got 2"):
        fit_reference(healthy_field_features[:2])
    assert fit_reference(healthy_field_features[:3]).field_scores.size == 3


def test_frames_of_one_file_are_one_field(tmp_path, capsys):
    """A 3-frame stack is one field: the reference command refuses it (one line, non-zero exit)."""
    from phototox.apps.cli import main
    from phototox.synth.fields import render_field

    stack = np.stack([render_field(256, 256, 0.0, seed=s).image for s in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    second = tmp_path / "other.tif"
    tifffile.imwrite(second, render_field(256, 256, 0.0, seed=9).image)
    code = main(["reference", str(tmp_path / "stack.tif"), str(second), "--out", str(tmp_path / "ref.npz")])
    err = capsys.readouterr().err
    assert code != 0 and "at least 3 control fields" in err and "got 2" in err
    assert not (tmp_path / "ref.npz").exists()


@pytest.mark.slow
def test_map_with_reference_writes_the_unlike_map_and_columns(tmp_path, capsys):
    """End to end on synthetic files: reference from 3 controls, map of a damaged field with it."""
    from phototox.apps.cli import main
    from phototox.synth.fields import render_field

    controls = []
    for s in range(3):
        path = tmp_path / f"control{s}.tif"
        tifffile.imwrite(path, render_field(300, 300, 0.0, seed=70 + s).image)
        controls.append(str(path))
    damaged = tmp_path / "damaged.tif"
    tifffile.imwrite(damaged, render_field(300, 300, 1.0, seed=80).image)
    ref = tmp_path / "ref.npz"
    model = ["--model", "deadnet-gap-synthetic-v2", "--device", "cpu"]
    assert main(["reference", *controls, "--out", str(ref), *model]) == 0
    assert main(["map", str(damaged), "--out", str(tmp_path / "maps"), "--reference", str(ref), *model]) == 0
    capsys.readouterr()
    unlike = tmp_path / "maps" / "damaged_unlike_controls.tif"
    assert unlike.exists() and (tmp_path / "maps" / "damaged_unlike_controls.png").exists()
    with tifffile.TiffFile(unlike) as handle:
        info = json.loads(handle.imagej_metadata["Info"])
    assert "not P(sick)" in info["content"]
    import csv

    with (tmp_path / "maps" / "summary.csv").open() as handle:
        row = next(csv.DictReader(handle))
    fraction, low, high = (
        float(row[k]) for k in ("unlike_controls_fraction", "unlike_controls_low", "unlike_controls_high")
    )
    assert low <= fraction <= high
    assert float(row["unlike_controls_rate"]) == pytest.approx(0.25)  # 3 fields reach 1/4 at best


def _biased_model(bias: float):
    """A random deadnet-gap whose head bias fixes P(sick) near 0 (negative) or 1 (positive)."""
    import torch

    from phototox.models.backends.torch import TorchBackend
    from phototox.models.base import LoadedModel
    from tests.conftest import random_deadnet_gap

    module = random_deadnet_gap(3)
    with torch.no_grad():
        module.fc.weight.mul_(0.01)
        module.fc.bias.copy_(torch.tensor([-bias, bias]))
    return LoadedModel(TorchBackend(module), "deadnet-gap", module.config(), meta={})


@pytest.mark.parametrize("bias", [-8.0, 8.0])
def test_gradcam_of_an_image_called_healthy_stays_dark(tmp_path, bias):
    """Shown heat = P(sick) x evidence/scale: at P(sick) ~ 3e-7 nothing shows, at ~1 the evidence does."""
    from phototox.maps.inference import Predictor
    from phototox.synth.fields import render_field
    from phototox.training.explain import explain_image

    image = tmp_path / "field.tif"
    tifffile.imwrite(image, render_field(300, 300, 0.5, seed=4).image)
    predictor = Predictor.create(_biased_model(bias), "cpu")
    tif, _ = explain_image(predictor, image, tmp_path / "out", quiet=True, stride=80)
    with tifffile.TiffFile(tif) as handle:
        shown = handle.asarray()
        info = json.loads(json.loads(handle.pages[0].description)["Info"])
    assert info["reference_used"] is False and info["scale"] > 0 and "P(target)" in info["scale_rule"]
    if bias < 0:
        assert info["p_sick"] < 1e-3
        assert shown.max() <= info["p_sick"] + 1e-6  # dark on the fixed 0-1 scale
    else:
        assert info["p_sick"] > 0.999
        assert shown.max() > 0.9  # the same evidence, shown when the model calls the image sick


def test_a_reference_refuses_another_models_features(healthy_field_features, tmp_path):
    """Saved and loaded, the reference keeps its line; used with another model's features it refuses."""
    from types import SimpleNamespace

    from phototox.trust.novelty import NoveltyReference

    reference = fit_reference(healthy_field_features[:4], info={"model": "a", "model_sha256": "1" * 64})
    reference.save(tmp_path / "ref.npz")
    loaded = NoveltyReference.load(tmp_path / "ref.npz")
    assert loaded.threshold == reference.threshold and loaded.rate == pytest.approx(0.2)
    loaded.check_model(SimpleNamespace(sha256="1" * 64, source="a"))
    with pytest.raises(PhototoxError, match="make the reference with this model"):
        loaded.check_model(SimpleNamespace(sha256="2" * 64, source="b"))


def test_served_results_carry_the_unlike_columns_for_the_references_model(tmp_path):
    """``phototox serve --reference``: the result line (Fiji's Results) carries unlike_controls_*."""
    from phototox.results.analysis_requests import PredictorPool, analyse_pixels
    from phototox.synth.fields import render_field
    from phototox.trust.calibrate import reference_from_controls

    controls = []
    for s in range(3):
        controls.append(tmp_path / f"c{s}.tif")
        tifffile.imwrite(controls[-1], render_field(260, 260, 0.0, seed=90 + s).image)
    model = "deadnet-gap-synthetic-v2"
    pool = PredictorPool(model, "cpu")
    pixels = render_field(260, 260, 1.0, seed=95).image.astype(np.float32)
    plain, _ = analyse_pixels(pool, pixels.ravel(), 260, 260, {})
    assert "unlike_controls_fraction=;" in plain
    pool.reference = reference_from_controls(model, controls, tmp_path / "ref.npz")
    line, _ = analyse_pixels(pool, pixels.ravel(), 260, 260, {})
    values = dict(part.split("=", 1) for part in line.split(";"))
    assert 0 <= float(values["unlike_controls_fraction"]) <= 1
    assert float(values["unlike_controls_p_value"]) in (0.25, 0.5, 0.75, 1.0)  # (1 + j) / (3 + 1)


def test_a_field_larger_than_the_controls_is_warned_about(healthy_field_features):
    """The line bounds fields the controls' size (36 windows here): 1.5x more windows is said."""
    reference = fit_reference(healthy_field_features[:3])
    assert reference.size_warning(36) is None and reference.size_warning(54) is None
    assert "larger field crosses it more often" in reference.size_warning(55)


def test_a_reference_run_takes_one_pass_with_the_same_numbers(monkeypatch):
    """Box-contract model, dense mode: P(sick), the domain features and the novelty features come from
    one dense pass (on the default engine), and equal those of the separate passes."""
    import phototox.trust.assess as assess_module
    import phototox.trust.domain as domain_module
    import phototox.trust.novelty as novelty_module
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.synth.fields import render_field
    from phototox.trust.assess import Assessor
    from phototox.trust.novelty import analyse_with_novelty

    predictor = Predictor.from_spec("default", "cpu")
    assert predictor.contract.kind == "box"
    controls = [render_field(300, 320, 0.0, seed=90 + s).image.astype(np.float32) for s in range(4)]
    reference = fit_reference([frame_window_features(predictor, c) for c in controls], info={"model": "default"})
    frame = render_field(300, 320, 0.8, seed=99).image.astype(np.float32)
    settings = MapSettings(stride=16)
    separate, columns = analyse_with_novelty(predictor, frame, settings, reference)
    alone = Assessor(predictor, warn=lambda line: None)
    size = alone.pixel_size(0.434)
    domain_alone = alone.analyse(frame, settings, size)[0].trust

    def no_second_pass(*_args, **_kwargs):
        raise AssertionError("a second pass was made")

    monkeypatch.setattr(assess_module, "dense_features", no_second_pass)
    monkeypatch.setattr(novelty_module, "dense_features", no_second_pass)
    monkeypatch.setattr(domain_module, "window_features", no_second_pass)
    together = Assessor(predictor, warn=lambda line: None, novelty=reference).analyse(frame, settings, size)[0]
    assert np.ptp(separate.sick_map) > 1e-3 and np.abs(together.sick_map - separate.sick_map).max() < 1e-5
    assert np.ptp(separate.novelty_map) > 0.1
    assert np.abs(together.novelty_map - separate.novelty_map).max() < 1e-3 * max(1.0, separate.novelty_map.max())
    trust = together.trust
    assert trust.domain_score == pytest.approx(domain_alone.domain_score, abs=1e-3)
    assert trust.out_of_domain == domain_alone.out_of_domain
    assert trust.unlike_controls_fraction == pytest.approx(columns["unlike_controls_fraction"])
