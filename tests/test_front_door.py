"""One front door: every front end analyses through Assessor; chunked rows carry the same trust verdicts."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phototox.errors import PhototoxError
from phototox.maps.settings import MapSettings

ROOT = Path(__file__).resolve().parents[1]
ENGINE_MODULES = {"inference.py", "assess.py", "dense.py", "domain.py", "explain.py", "novelty.py", "scale/chunked.py"}
"""Where the Predictor's own map methods may be called: the inference path itself and the front door."""
FRONT_ENDS = [
    *(ROOT / "phototox").rglob("*.py"),
    *(ROOT / "plugins").rglob("*.py"),
    *(ROOT / "bioimageio" / "phototox_zoo").rglob("*.py"),
]


def _calls(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
    ]


def test_no_front_end_maps_around_the_front_door():
    bypass = []
    for path in FRONT_ENDS:
        rel = path.relative_to(ROOT / "phototox").as_posix() if path.is_relative_to(ROOT / "phototox") else ""
        if rel in ENGINE_MODULES or path.name == "test_data.py":  # the zoo's test tensor is the raw window grid
            continue
        if "phototox_zoo" in path.parts and path.name == "build.py":
            continue  # builds and checks the packaged network itself, below any front end
        bypass += _calls(path, {"analyse_frame", "dense_grid", "exact_grid", "check_settings"})
    assert not bypass, "front ends must call Assessor.analyse:\n" + "\n".join(bypass)


def test_settings_are_validated_once_when_made():
    with pytest.raises(PhototoxError, match="stride"):
        MapSettings(stride=20, mode="dense")
    with pytest.raises(PhototoxError, match="threshold"):
        MapSettings(threshold=1.0)
    settings = MapSettings(stride=16)
    assert settings.validate() is settings


@pytest.mark.slow
def test_chunked_rows_carry_the_in_memory_trust_verdicts(tmp_path):
    """A TIFF mapped chunk by chunk gives the same numbers, domain and quality verdicts as in memory."""
    pytest.importorskip("zarr", reason="chunked maps need the scale extra")
    from phototox.maps.inference import Predictor
    from phototox.screens.jobs import RunSettings, chunked_row, predict_image
    from phototox.synth.fields import render_field
    from phototox.trust.assess import Assessor

    frame = render_field(420, 460, 0.6, seed=5).image.astype(np.float32)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, frame, resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    predictor = Predictor.from_spec("default", "cpu")
    settings = RunSettings(stride=32, chunk=256)
    chunked = chunked_row(predictor, str(path), None, settings)
    whole = predict_image(predictor, str(path), settings)[0]
    trust = Assessor(predictor).analyse(frame, settings.map_settings, Assessor(predictor).pixel_size(None, path))[0]
    assert chunked["pixel_size_um"] == whole["pixel_size_um"] == pytest.approx(0.5)
    for key in ("domain_score", "fine_detail", "focus", "foreground_fraction", "clipped_fraction"):
        assert chunked[key] is not None, key
        assert chunked[key] == pytest.approx(whole[key], abs=2e-3), key
    for key in ("out_of_domain", "out_of_focus", "saturated", "nearly_empty"):
        assert chunked[key] == whole[key] == getattr(trust.trust, key), key
    assert chunked["mean_sick_probability"] == pytest.approx(whole["mean_sick_probability"], abs=1e-4)
    assert chunked["engine"] == whole["engine"]
