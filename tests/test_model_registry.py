"""The shipped-model registry: every listed name is a --model, one checksum source, cards with the model."""

from __future__ import annotations

import json
import shutil

import pytest
import tifffile

from phototox.apps.cli import main
from phototox.errors import ModelLoadError
from phototox.maps.inference import Predictor
from phototox.models import registry


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "field.tif"
    from phototox.synth.fields import render_field

    tifffile.imwrite(path, render_field(256, 256, 0.8, seed=5).image)
    return path


def _listed_names(capsys) -> list[str]:
    capsys.readouterr()
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [line[2:].split()[0] for line in lines if line[:2] in ("* ", "  ")]


def test_every_listed_model_loads_via_model_name(image, capsys):
    names = _listed_names(capsys)
    assert set(names) == set(registry.read_registry().entries) and len(names) >= 2
    means = {}
    for name in names:
        for spec in (name, f"shipped:{name}"):
            assert main(["predict", str(image), "--model", spec, "--device", "cpu", "--json"]) == 0, spec
            row = json.loads(capsys.readouterr().out)[0]
            sha = registry.read_registry().entry(name).sha256
            assert row["model"] == f"{name} sha256:{sha}"  # never "the shipped default model"
            means[spec] = row["mean_sick_probability"]
    assert len({round(v, 6) for v in means.values()}) == len(names)  # different models, different answers


def test_default_alias_names_the_default_entry(image, capsys):
    capsys.readouterr()
    assert main(["predict", str(image), "--device", "cpu", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["model"].startswith(registry.default_name() + " sha256:")


def test_a_user_file_is_named_by_path_and_checksum(image, tiny_model_path, capsys):
    capsys.readouterr()
    assert main(["predict", str(image), "--model", str(tiny_model_path), "--device", "cpu", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    from phototox.models.weights import sha256_of

    assert row["model"] == f"{tiny_model_path} sha256:{sha256_of(tiny_model_path)}"


def test_unknown_name_lists_the_shipped_models(capsys):
    with pytest.raises(ModelLoadError) as exc:
        Predictor.from_spec("deadnet-gap-nonexistent-v9", "cpu")
    message = str(exc.value)
    assert "\n" not in message and all(name in message for name in registry.read_registry().entries)


def test_shipped_models_have_one_checksum_source_and_carry_their_card():
    reg = registry.read_registry()
    assert not list(reg.folder.glob("*.sha256"))  # the registry is the only checksum of a shipped file
    for name in reg.entries:
        assert registry.verify(name) == reg.entry(name).sha256
    assert reg.default == "deadnet-gap-celldeath-v3"
    celldeath = Predictor.from_spec("deadnet-gap-celldeath-v3", "cpu").model
    assert celldeath.pixel_size_um == pytest.approx(0.434)
    assert celldeath.meta["normalisation"]["kind"] == "box" and celldeath.meta["domain"]["n_images"] == 24
    assert any(c.get("doi") == "10.1371/journal.pone.0253666" for c in celldeath.card["citations"])
    assert celldeath.card["card_path"].endswith("MODEL_CARD.md")
    for name in ("deadnet-gap-synthetic-v2", "deadnet-gap-synthetic-v3"):
        synthetic = Predictor.from_spec(name, "cpu").model
        assert synthetic.pixel_size_um is None and "phototox.synth.fields" in synthetic.card["pixel_size_note"]
    assert "domain" in Predictor.from_spec("deadnet-gap-synthetic-v3", "cpu").model.meta


def test_zoo_builder_takes_training_data_and_citations_from_the_model():
    pytest.importorskip("bioimageio.core")
    from phototox_zoo.build import _training_data

    celldeath = registry.read_registry().entry("deadnet-gap-celldeath-v3").card_dict()
    entry = _training_data(celldeath)["training_data"]
    assert entry["source"] == "https://github.com/miriukaLab/celldeath" and "0.434" in entry["description"]
    assert _training_data(registry.read_registry().entry("deadnet-gap-synthetic-v2").card_dict()) == {}


def test_ship_registers_verifies_and_detects_tampering(tmp_path, tiny_model_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    entry = registry.ship(tiny_model_path, "tiny-test-v1", folder=folder, summary="test", pixel_size_um=0.5)
    reg = registry.read_registry(folder)
    assert reg.default == "tiny-test-v1" and reg.entry("tiny-test-v1").pixel_size_um == 0.5
    assert (folder / entry.file).read_bytes() == tiny_model_path.read_bytes()
    assert not list(folder.glob("*.sha256"))
    with pytest.raises(ModelLoadError, match="lower-case words"):
        registry.ship(tiny_model_path, "Bad Name", folder=folder)
    with pytest.raises(ModelLoadError, match="unknown model card fields"):
        registry.ship(tiny_model_path, "tiny-test-v2", folder=folder, colour="blue")
    data = bytearray((folder / entry.file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / entry.file).write_bytes(bytes(data))
    from phototox.models.weights import load_weights

    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        load_weights(folder / entry.file, reg.entry("tiny-test-v1").sha256)


@pytest.mark.slow
def test_ship_script_is_a_thin_call(tmp_path, tiny_model_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "scripts" / "ship_model.py").read_text()
    assert "registry.json" not in text.split('"""', 2)[2] and "from phototox.models.registry import ship" in text
    shutil.copyfile(tiny_model_path, tmp_path / "m.pt")
    proc = subprocess.run(
        [sys.executable, str(repo / "scripts" / "ship_model.py"), str(tmp_path / "m.pt"), "--name", "Bad Name"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0 and "lower-case words" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_onnx_backend_is_not_a_torch_module():
    from torch import nn

    from phototox.models.backends import WEIGHT_PRIORITY, OnnxBackend

    assert not issubclass(OnnxBackend, nn.Module)
    assert WEIGHT_PRIORITY[0] == "pytorch_state_dict"
