"""Dense engines (PyTorch, ONNX Runtime) compute the same box-contract map; the choice is safe.
The bf16 opt-in is approximate and says so: it differs from float32, within its stated bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_deadnet_gap

from phototox.errors import PhototoxError
from phototox.maps import dense_engine
from phototox.maps.dense import dense_sick_grid
from phototox.models.architectures import build_model
from phototox.synth.fields import render_field


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return render_field(220 + 16 * 7, 220 + 16 * 5, 0.6, seed=4).image.astype(np.float32) * 30.0 + 700.0


@pytest.fixture(scope="module")
def module(field) -> torch.nn.Module:
    """A random deadnet-gap with non-trivial BatchNorm statistics, its head rescaled so that
    P(sick) spreads over about 0.1-0.9 on ``field`` (a random head gives 0.52-0.53 everywhere)."""
    model = random_deadnet_gap(5)
    with torch.no_grad():
        probs = dense_sick_grid(model, field, 32, "box", box_size=221, engine="torch").astype(np.float64)
        logits = np.log(probs / (1 - probs))
        gain = 2.0 / max(logits.std(), 1e-6)
        model.fc.weight.mul_(gain)
        model.fc.bias.mul_(gain)
        model.fc.bias[1] -= gain * float(np.median(logits))
    return model


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_onnxruntime_and_torch_give_the_same_box_map(module, field, stride):
    kwargs = {"normalisation": "box", "tile_windows": 3, "box_size": 221}
    torch_map = dense_sick_grid(module, field, stride, engine="torch", **kwargs)
    onnx_map = dense_sick_grid(module, field, stride, engine="onnxruntime", **kwargs)
    assert torch_map.shape == onnx_map.shape
    assert torch_map.std() > 0.05, "the map must vary, or the comparison proves nothing"
    assert np.abs(torch_map - onnx_map).max() < 1e-4


def test_sessions_follow_the_weights(module, field):
    """Changing a weight after a first run must change the ONNX result (no stale cached session)."""
    kwargs = {"normalisation": "box", "tile_windows": 4, "box_size": 221, "engine": "onnxruntime"}
    before = dense_sick_grid(module, field, 32, **kwargs)
    changed = build_model("deadnet-gap").eval()
    changed.load_state_dict(module.state_dict())
    with torch.no_grad():
        changed.fc.weight.mul_(-1.0)
    after = dense_sick_grid(changed, field, 32, **kwargs)
    reference = dense_sick_grid(changed, field, 32, **{**kwargs, "engine": "torch"})
    assert np.abs(after - reference).max() < 1e-4
    assert np.abs(after - before).max() > 0.1


def test_training_mode_modules_stay_in_training_mode_and_use_torch(module):
    trainee = build_model("deadnet-gap").train()
    runner = dense_engine.tile_runner(trainee.features, trainee, torch.device("cpu"), "auto")
    assert trainee.training and all(m.training for m in trainee.modules())
    assert runner.__name__ == "with_torch"


def test_unknown_engine_is_refused_naming_it(module):
    with pytest.raises(PhototoxError, match="dense engine 'gpu-magic'"):
        dense_engine.tile_runner(module.features, module, torch.device("cpu"), "gpu-magic")


def test_bf16_is_approximate_named_and_within_its_stated_bound(module, field, caplog):
    """bf16 must really run in bfloat16 (maps differ from float32) yet stay within the deviation it states."""
    kwargs = {"normalisation": "box", "tile_windows": 3, "box_size": 221}
    ran: list[str] = []
    dense_engine._BF16_TOLD.clear()
    with caplog.at_level("WARNING"):
        bf16_map = dense_sick_grid(module, field, 32, engine="bf16", on_engine=ran.append, **kwargs)
    exact = dense_sick_grid(module, field, 32, engine="torch", **kwargs)
    assert ran == ["torch-bf16"]
    assert "approximate" in caplog.text
    deviation = np.abs(bf16_map - exact).max()
    assert exact.std() > 0.05 and 1e-4 < deviation < 0.05, deviation
