"""The map package's TorchScript and ONNX weights (for deepImageJ and other consumers without Python)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

pytest.importorskip("bioimageio.core", reason="bioimage.io packages not installed (pip install -e '.[bioimageio]')")
pytestmark = pytest.mark.slow


def _quiet():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the Loop's subgraph renaming notices are not errors
    return options


@pytest.fixture(scope="module")
def map_package(tmp_path_factory):
    from phototox_zoo.build import build

    return build("default", tmp_path_factory.mktemp("dist"), run_tests=False).map_package


@pytest.mark.parametrize("weight_format", ["torchscript", "onnx"])
def test_bioimageio_test_passes(map_package, weight_format):
    from bioimageio.core import test_model

    summary = test_model(str(map_package), weight_format=weight_format)
    assert summary.status == "passed", summary.format()


def test_traced_weights_equal_the_module_at_other_sizes_and_batches(map_package):
    import onnxruntime
    from phototox_zoo.map_package import map_network

    from phototox.models.loader import load_model

    with zipfile.ZipFile(map_package) as archive:
        scripted = torch.jit.load(io.BytesIO(archive.read("weights.torchscript.pt")))
        session = onnxruntime.InferenceSession(archive.read("weights.onnx"), _quiet())
    net = map_network(load_model("default"))
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 528, 496), (2, 1, 496, 560)]:  # not the 512 x 512 traced on
        x = torch.from_numpy(rng.normal(1000, 200, shape).astype(np.float32))
        with torch.no_grad():
            expected = net(x).numpy()
            np.testing.assert_allclose(scripted(x).numpy(), expected, rtol=0, atol=1e-5)
        (onnx_map,) = session.run(None, {"phase": x.numpy()})
        np.testing.assert_allclose(onnx_map, expected, rtol=0, atol=1e-5)
