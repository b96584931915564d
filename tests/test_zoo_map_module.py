"""The map package's model (fast checks, no bioimage.io run): it computes phototox's dense map, its
architecture source needs only torch, and the normalisation follows the model's contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def loaded(tiny_model_path):
    from phototox.models.weights import load_weights

    return load_weights(tiny_model_path)


def test_map_module_equals_phototox_dense_map(loaded):
    from phototox_zoo.map_package import map_network

    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.synth.fields import render_field

    for shape, dose in (((256, 272), 0.5), ((304, 288), 0.9)):
        frame = render_field(*shape, dose, seed=5).image.astype(np.float32)
        reference = Predictor.create(loaded, "cpu").analyse_frame(frame, MapSettings(stride=16, mode="dense")).sick_map
        with torch.no_grad():
            out = map_network(loaded)(torch.from_numpy(frame)[None, None])[0, 0].numpy()
        assert out.shape == frame.shape
        assert np.abs(out - reference).max() < 1e-5
        assert reference.std() > 0 or reference.mean() not in (0.0, 1.0)


def test_architecture_source_needs_only_torch(loaded):
    from phototox_zoo.map_package import architecture_source, normalisation_of

    source = architecture_source()
    assert "import phototox" not in source and "from phototox" not in source
    namespace: dict = {"__name__": "deadnet_map"}
    exec(compile(source, "deadnet_map.py", "exec"), namespace)
    net = namespace["DeadNetMap"](loaded.arch, normalisation_of(loaded.meta), **loaded.arch_kwargs)
    net.net.load_state_dict(loaded.module.state_dict())
    assert net.eval()(torch.rand(1, 1, 240, 256)).shape == (1, 1, 240, 256)


def test_normalisation_follows_the_model_contract(loaded):
    from phototox_zoo.map_module import DeadNetMap
    from phototox_zoo.map_package import normalisation_of

    assert normalisation_of({}) == {"kind": "local"}
    assert normalisation_of({"normalisation": {"kind": "box", "size": 221}}) == {"kind": "box", "size": 221}
    local = DeadNetMap(loaded.arch, {"kind": "local"}, **loaded.arch_kwargs)
    box = DeadNetMap(loaded.arch, {"kind": "box", "size": 221}, **loaded.arch_kwargs)
    box.load_state_dict(local.state_dict())
    from phototox.synth.fields import render_field

    frame = torch.from_numpy(render_field(256, 256, 0.5, seed=2).image.astype(np.float32))
    with torch.no_grad():  # a different normalisation inside the same network
        assert not torch.allclose(local.eval().logits(frame), box.eval().logits(frame))
        assert box(frame[None, None]).shape == (1, 1, 256, 256)
    with pytest.raises(ValueError, match="unknown normalisation"):
        DeadNetMap(loaded.arch, {"kind": "mystery"}, **loaded.arch_kwargs)
