"""CellProfiler's own scale-out: the example pipeline run headless in image ranges (-f/-l, as a cluster
or Distributed-CellProfiler runs it) gives, merged, the same measurements as one run; a missing model
stops a headless run before any image."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
import tifffile
from cellprofiler_support import run_cellprofiler
from conftest import REPO

pytest.importorskip("cellprofiler_core", reason="CellProfiler is not installed (pip install -e '.[cellprofiler]')")
pytestmark = pytest.mark.slow

PIPELINE = REPO / "example_pipelines" / "measure_phototoxicity.cppipe"
FEATURE = "Phototoxicity_MeanSickProbability_Phase"


def _cli(pipeline: Path, images: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cellprofiler(pipeline, images, out, *extra)


def _pipeline_with_model(tmp_path: Path, model: str) -> Path:
    text = PIPELINE.read_text()
    text = text.replace("Model:Shipped default model", "Model:Weights file, bioimage.io package or zoo id", 1)
    text = text.replace("Model file, package or zoo id:\n", f"Model file, package or zoo id:{model}\n", 1)
    path = tmp_path / "pipeline.cppipe"
    path.write_text(text)
    return path


def _rows(out: Path) -> dict[str, float]:
    with open(out / "Image.csv") as handle:
        return {row["FileName_Phase"]: float(row[FEATURE]) for row in csv.DictReader(handle)}


def test_split_runs_merge_to_one_run(tmp_path, tiny_model_path):
    from phototox.synth.fields import render_field

    images = tmp_path / "in"
    images.mkdir()
    for i, dose in enumerate((0.0, 0.2, 0.4, 0.6, 0.8, 1.0)):
        tifffile.imwrite(images / f"field{i}.tif", render_field(240, 260, dose, seed=40 + i).image)
    pipeline = _pipeline_with_model(tmp_path, str(tiny_model_path))
    whole = _cli(pipeline, images, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    parts = [
        _cli(pipeline, images, tmp_path / f"part{k}", "-f", first, "-l", last)
        for k, (first, last) in enumerate((("1", "3"), ("4", "6")))
    ]
    for part in parts:
        assert part.returncode == 0, part.stderr[-3000:]
    one, first, second = _rows(tmp_path / "whole"), _rows(tmp_path / "part0"), _rows(tmp_path / "part1")
    assert len(one) == 6 and len(first) == len(second) == 3 and not set(first) & set(second)
    merged = {**first, **second}
    assert merged.keys() == one.keys()
    assert all(merged[name] == pytest.approx(one[name], abs=1e-6) for name in one)
    assert len({round(v, 4) for v in one.values()}) > 1  # the values vary: equality is not trivial


def test_missing_model_fails_headless_before_the_first_image(tmp_path):
    from phototox.synth.fields import render_field

    images = tmp_path / "in"
    images.mkdir()
    tifffile.imwrite(images / "field.tif", render_field(240, 260, 0.5, seed=1).image)
    run = _cli(_pipeline_with_model(tmp_path, str(tmp_path / "gone.pt")), images, tmp_path / "out")
    assert run.returncode != 0
    assert "gone.pt: no such file or folder" in run.stdout + run.stderr
    assert not list((tmp_path / "out").glob("*_sickmap.tiff"))  # no image was analysed
