"""MeasurePhototoxicity at scale: validation never loads or downloads a model, torch threads per
worker, old pipelines upgrade step by step, per-object values are named for what they are."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import REPO

pytest.importorskip("cellprofiler_core", reason="CellProfiler is not installed (pip install -e '.[cellprofiler]')")


@pytest.fixture(scope="module")
def plugin():
    from cellprofiler_core.preferences import set_headless

    set_headless()
    spec = importlib.util.spec_from_file_location(
        "measurephototoxicity", REPO / "plugins" / "cellprofiler" / "measurephototoxicity.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_validation_loads_nothing_and_creates_no_cache_folder(plugin, tmp_path, monkeypatch):
    import phototox.models.loader

    def refuse(*args, **kwargs):
        raise AssertionError("validation must not load a model")

    monkeypatch.setattr(phototox.models.loader, "load_model", refuse)
    monkeypatch.setenv("PHOTOTOX_CACHE", str(tmp_path / "cache"))
    module = plugin.MeasurePhototoxicity()
    module.validate_module(None)  # shipped model
    module.model_choice.value = plugin.MODEL_CUSTOM
    for typed in ("a", "affable", "affable-sh", "affable-shark"):  # a zoo id typed key by key
        module.model_location.value = typed
        try:
            module.validate_module(None)
        except Exception as exc:
            assert "no such file" in str(exc)
    assert not (tmp_path / "cache").exists()


def test_every_registry_name_and_alias_is_accepted(plugin):
    """The module asks the model loader: every shipped name (e.g. deadnet-gap-celldeath-v2) is a model."""
    from phototox.models.registry import list_models

    module = plugin.MeasurePhototoxicity()
    module.model_choice.value = plugin.MODEL_CUSTOM
    names = [e.name for e in list_models()]
    assert "deadnet-gap-celldeath-v2" in names
    for name in [*names, *(f"shipped:{n}" for n in names), "default", "affable-shark", "https://example.org/m.zip"]:
        module.model_location.value = name
        assert module.model_problem() == "", name
    module.model_location.value = "deadnet-gap-nonexistent-v9.pt"
    assert "no such file" in module.model_problem()


def test_stride_default_is_the_shared_one(plugin):
    from phototox.defaults import DEFAULT_STRIDE

    assert plugin.MeasurePhototoxicity().stride.value == DEFAULT_STRIDE


def test_threads_per_worker_setting_limits_torch(plugin, tiny_model_path):
    import torch

    before = torch.get_num_threads()
    try:
        module = plugin.MeasurePhototoxicity()
        module.model_choice.value = plugin.MODEL_CUSTOM
        module.model_location.value = str(tiny_model_path)
        module.device.value = plugin.DEVICE_CPU
        assert module.threads.value == 1
        module.get_predictor()
        assert torch.get_num_threads() == 1
        module.post_run(None)
        module.threads.value = 2
        module.get_predictor()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_revision_1_settings_upgrade_step_by_step(plugin):
    module = plugin.MeasurePhototoxicity()
    old = [
        "Phase",
        "SicknessMap",
        plugin.MODEL_SHIPPED,
        "",
        "32",
        plugin.MODE_DENSE,
        "0.5",
        plugin.DEVICE_CPU,
        "No",
        "None",
    ]
    values, revision = module.upgrade_settings(old, 1, "MeasurePhototoxicity")
    assert revision == module.variable_revision_number == 5
    assert len(values) == len(module.settings()) and values[10] == "1" and values[12] == "model.pt"
    assert values[13] == "0.0"  # revision 4: pixel size, 0 = the model's (assumed, and recorded so)
    assert values[14:] == ["No", values[11], "reference.npz", "UnlikeControlsMap"]  # revision 5: no reference
    with pytest.raises(ValueError, match="newer than this plugin"):
        module.upgrade_settings(values, 6, "MeasurePhototoxicity")


def test_missing_model_stops_the_run_before_the_first_image(plugin, tmp_path):
    module = plugin.MeasurePhototoxicity()
    module.model_choice.value = plugin.MODEL_CUSTOM
    module.model_location.value = str(tmp_path / "gone.pt")
    with pytest.raises(ValueError, match=r"gone\.pt: no such file or folder"):
        module.prepare_run(None)


def test_model_file_picker_is_portable_and_upgrades_from_revision_2(plugin, tmp_path):
    from cellprofiler_core.preferences import set_default_image_directory

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.pt").write_bytes(b"x")
    set_default_image_directory(str(tmp_path))
    module = plugin.MeasurePhototoxicity()
    module.model_choice.value = plugin.MODEL_FILE
    module.model_directory.join_parts("Default Input Folder sub-folder", "models")
    module.model_file.value = "mine.pt"
    assert module._model_spec() == str(tmp_path / "models" / "mine.pt")
    assert module.model_problem() == ""
    assert (
        module.model_directory in module.visible_settings() and module.model_location not in module.visible_settings()
    )
    module.model_file.value = "other.pt"
    with pytest.raises(ValueError, match=r"other\.pt: no such file or folder"):
        module.prepare_run(None)
    saved = [s.unicode_value for s in module.settings()]
    assert "Default Input Folder sub-folder|models" in saved  # stored relative: portable between machines
    values, revision = module.upgrade_settings(saved[:11], 2, "MeasurePhototoxicity")
    assert revision == 5 and len(values) == len(module.settings())
