"""The bioimage.io package: built from the shipped model, `bioimageio test` passes offline for every
weight format, phototox loads it (zip, folder, URL, zoo id) and refuses corrupt or tampered ones."""

from __future__ import annotations

import functools
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from phototox.errors import ModelLoadError
from phototox.maps.inference import Predictor
from phototox.models.loader import load_model

pytest.importorskip("bioimageio.core", reason="bioimage.io packages not installed (pip install -e '.[bioimageio]')")
from phototox_zoo.build import as_packaged


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from phototox_zoo.build import build

    return build("default", tmp_path_factory.mktemp("dist"))


@pytest.mark.slow
def test_bioimageio_test_passes_for_every_weight_format(built):
    assert set(built.statuses) == {
        "pytorch_state_dict",
        "torchscript",
        "onnx",
        "map pytorch_state_dict",
        "map torchscript",
        "map onnx",
    }
    assert built.passed, built.details


@pytest.mark.slow
def test_description_has_what_the_zoo_needs(built):
    with zipfile.ZipFile(built.package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        names = set(archive.namelist())
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    assert {c["doi"] for c in rdf["cite"]} == {"10.48550/arXiv.1701.06109", "10.1371/journal.pone.0253666"}
    assert {"phase-contrast", "phototoxicity", "cell-health", "classification", "pytorch"} <= set(rdf["tags"])
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["healthy", "sick"]
    assert rdf["inputs"][0]["preprocessing"][0]["id"] == "zero_mean_unit_variance"
    assert rdf["config"]["deepimagej"]["allow_tiling"] is False
    assert "github_user" not in str(rdf)
    # the expected pixel size: the shipped model's training scale on both space axes, and said in the README
    space = [a for a in rdf["inputs"][0]["axes"] if a["type"] == "space"]
    assert [(a["unit"], a["scale"]) for a in space] == [("micrometer", 0.434)] * 2
    with zipfile.ZipFile(built.package) as archive:
        assert "Expected pixel size: 0.434 um per pixel" in archive.read("README.md").decode()
    if built.map_package:
        with zipfile.ZipFile(built.map_package) as archive:
            map_rdf = yaml.safe_load(archive.read("rdf.yaml"))
        for tensor in (*map_rdf["inputs"], *map_rdf["outputs"]):
            assert {a.get("scale") for a in tensor["axes"] if a["type"] == "space"} == {0.434}
    assert {
        "rdf.yaml",
        "README.md",
        "cover.png",
        "weights.pt",
        "weights.onnx",
        "weights.torchscript.pt",
        "deadnet.py",
        "test_input.npy",
        "test_output.npy",
    } <= names


def _tensors(package: Path):
    with zipfile.ZipFile(package) as archive:
        return (
            np.load(io.BytesIO(archive.read("test_input.npy"))),
            np.load(io.BytesIO(archive.read("test_output.npy"))),
        )


@pytest.mark.slow
def test_phototox_loads_the_zip_with_the_same_probabilities(built, tmp_path):
    x, expected = _tensors(built.package)
    shipped = load_model("default")
    packaged = Predictor.create(load_model(str(built.package)), "cpu").classify_windows(x[:, 0])
    # the package normalises each lone window to zero mean, unit variance (all bioimage.io can say):
    # the shipped model under that rule must give the package's numbers
    as_declared = Predictor.create(as_packaged(shipped), "cpu").classify_windows(x[:, 0])
    assert np.allclose(packaged, as_declared, atol=1e-6)
    assert np.allclose(packaged, expected[:, 1], atol=1e-5)
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(built.package).extractall(folder)
    unzipped = Predictor.create(load_model(str(folder)), "cpu").classify_windows(x[:, 0])
    assert np.allclose(unzipped, as_declared, atol=1e-6)
    if shipped.meta.get("normalisation", {}).get("kind") == "box":
        # phototox's own lone-window rule (mirrored box) differs; the package README says so
        native = Predictor.create(shipped, "cpu").classify_windows(x[:, 0])
        assert np.abs(native - packaged).max() < 0.2
        assert "an approximation" in zipfile.ZipFile(built.package).read("README.md").decode()


@pytest.mark.slow
def test_onnx_only_package_runs_in_exact_mode(built, tmp_path):
    folder = tmp_path / "onnx"
    zipfile.ZipFile(built.package).extractall(folder)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    del rdf["weights"]["pytorch_state_dict"], rdf["weights"]["torchscript"]
    rdf["weights"]["onnx"].pop("parent")
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    x, expected = _tensors(built.package)
    model = load_model(str(folder))
    assert model.arch == "onnx"
    assert np.allclose(Predictor.create(model, "cpu").classify_windows(x[:, 0]), expected[:, 1], atol=1e-4)


def _rewrite(package: Path, target: Path, change) -> Path:
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info.filename))
            if data is not None:
                dst.writestr(info, data)
    return target


@pytest.mark.slow
def test_corrupt_and_tampered_packages_are_refused(built, tmp_path):
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(built.package.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="not a valid zip"):
        load_model(str(truncated))

    def flip(name, data):
        if name == "weights.pt":
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
        return bytes(data)

    with pytest.raises(ModelLoadError, match="does not match its sha256"):
        load_model(str(_rewrite(built.package, tmp_path / "tampered.zip", flip)))
    with pytest.raises(ModelLoadError, match="no rdf.yaml"):
        load_model(str(_rewrite(built.package, tmp_path / "nordf.zip", lambda n, d: None if n == "rdf.yaml" else d)))

    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nweights: {}\n")
        archive.writestr("../../escape.txt", "x")
    with pytest.raises(ModelLoadError, match="escapes the package folder"):
        load_model(str(slip))

    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("weights.pt")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ModelLoadError, match="symbolic link"):
        load_model(str(link))

    def evil_source(name, data):
        if name == "rdf.yaml":
            rdf = yaml.safe_load(data)
            rdf["weights"]["pytorch_state_dict"]["source"] = "../../../etc/passwd"
            return yaml.safe_dump(rdf).encode()
        return data

    with pytest.raises(ModelLoadError, match="outside the package"):
        load_model(str(_rewrite(built.package, tmp_path / "evil.zip", evil_source)))


@pytest.fixture()
def web(built, tmp_path):
    """Serve an unzipped package and the zip itself over loopback HTTP."""
    root = tmp_path / "site"
    zipfile.ZipFile(built.package).extractall(root / "artifacts" / "gentle-dolphin" / "files")
    (root / "pkg.zip").write_bytes(built.package.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_zoo_id_and_url_are_fetched_once_then_cached(web, tmp_path, monkeypatch):
    base, server = web
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PHOTOTOX_ZOO_URL", base + "/artifacts/{id}/files/rdf.yaml")
    by_id = load_model("gentle-dolphin")
    by_url = load_model(base + "/pkg.zip")
    assert by_id.arch == by_url.arch == "deadnet-gap"
    server.shutdown()  # offline from now on
    server.server_close()
    assert load_model("gentle-dolphin").arch == "deadnet-gap"
    assert load_model(base + "/pkg.zip").arch == "deadnet-gap"


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PHOTOTOX_ZOO_URL", f"http://127.0.0.1:{port}/" + "{id}/rdf.yaml")
    with pytest.raises(ModelLoadError, match="cannot download .* needs the network the first time"):
        load_model("affable-shark")


@pytest.mark.slow
def test_front_ends_take_the_package_as_their_model(built):
    """The HTTP server / Fiji handler pool and the CellProfiler module accept the zip as a model."""
    import importlib.util

    from conftest import REPO

    from phototox.results.analysis_requests import PredictorPool, analyse_pixels

    x, expected = _tensors(built.package)
    pixels = x[0, 0]
    line, sick_map = analyse_pixels(
        PredictorPool(str(built.package), "cpu"), pixels.ravel(), 220, 220, {"stride": "16"}
    )
    values = dict(part.split("=", 1) for part in line.split(";"))
    assert float(values["mean_sick_probability"]) == pytest.approx(expected[0, 1], abs=1e-4)
    assert sick_map.shape == (220, 220)

    pytest.importorskip("cellprofiler_core")
    from cellprofiler_core.preferences import set_headless

    set_headless()
    spec = importlib.util.spec_from_file_location(
        "measurephototoxicity", REPO / "plugins" / "cellprofiler" / "measurephototoxicity.py"
    )
    plugin = importlib.util.module_from_spec(spec)
    import sys

    sys.modules.setdefault(spec.name, plugin)
    spec.loader.exec_module(plugin)
    module = plugin.MeasurePhototoxicity()
    module.model_choice.value = plugin.MODEL_CUSTOM
    module.model_location.value = str(built.package)
    module.device.value = plugin.DEVICE_CPU
    probability = module.get_predictor().classify_windows(x[:, 0])
    assert probability[0] == pytest.approx(expected[0, 1], abs=1e-5)
