"""MeasurePhototoxicity in real CellProfiler pipelines: in-process (cellprofiler_core) and the CLI."""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cellprofiler_support import run_cellprofiler
from conftest import REPO, need_celldeath

pytest.importorskip("cellprofiler_core", reason="CellProfiler is not installed (pip install -e '.[cellprofiler]')")
# The example pipelines use SaveImages and the CLI tests run `cellprofiler`: both come with the
# cellprofiler package, which cellprofiler_core does not bring.
CELLPROFILER_CLI = shutil.which("cellprofiler") or str(Path(sys.executable).parent / "cellprofiler")
if not Path(CELLPROFILER_CLI).exists():
    pytest.skip(
        "the cellprofiler command is not installed (pip install --no-deps cellprofiler-nightly)",
        allow_module_level=True,
    )

PLUGINS = REPO / "plugins" / "cellprofiler"
PIPELINE = REPO / "example_pipelines" / "measure_phototoxicity.cppipe"
OBJECTS_PIPELINE = REPO / "example_pipelines" / "measure_phototoxicity_objects.cppipe"
FEATURES = (
    "MeanSickProbability",
    "SickAreaFraction",
    "Class",
    "Confidence",
    "PixelSizeUm",
    "PixelSizeAssumed",
    "ModelPixelSizeUm",
    "DomainScore",
    "FineDetail",
    "OutOfDomain",
)


@pytest.fixture(scope="module")
def cp():
    """CellProfiler headless, our plugin folder, image readers restricted to imageio."""
    from cellprofiler_core.preferences import set_headless, set_plugin_directory

    set_headless()
    set_plugin_directory(str(PLUGINS), globally=False)
    from cellprofiler_core.reader import fill_readers, filter_active_readers

    fill_readers(check_config=False)
    filter_active_readers(["imageio_reader"])
    import cellprofiler_core.modules  # noqa: F401  (loads the plugins)
    from cellprofiler_core.utilities.core.modules import get_module_names

    assert "MeasurePhototoxicity" in get_module_names()
    return True


def _images(folder: Path, doses=(0.0, 1.0), size=(260, 300)) -> list[Path]:
    from phototox.synth.fields import render_field

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, dose in enumerate(doses):
        f = render_field(*size, dose, seed=20 + i)
        path = folder / f"field{i}_phase.tif"
        tifffile.imwrite(path, f.image)
        tifffile.imwrite(folder / f"field{i}_cells.tif", f.labels.astype(np.uint16))
        paths.append(path)
    return paths


def _run(pipeline_path: Path, files: list[Path], out: Path, model: str | None = None, **settings):
    """Load a .cppipe, point the module at ``model``, run it; return (measurements, run errors)."""
    from cellprofiler_core.pipeline import Pipeline, RunException
    from cellprofiler_core.preferences import set_default_output_directory

    pipeline = Pipeline()
    pipeline.loadtxt(str(pipeline_path), raise_on_error=True)
    module = next(m for m in pipeline.modules() if m.module_name == "MeasurePhototoxicity")
    if model:
        module.model_choice.value = "Weights file, bioimage.io package or zoo id"
        module.model_location.value = model
    for name, value in settings.items():
        getattr(module, name).value = value
    errors = []
    pipeline.add_listener(lambda caller, event: errors.append(event) if isinstance(event, RunException) else None)
    pipeline.add_pathnames_to_file_list([str(p) for p in files])
    out.mkdir(parents=True, exist_ok=True)
    set_default_output_directory(str(out))
    return pipeline.run(), errors, module


def _image_values(measurements, feature):
    return [
        measurements.get_measurement("Image", f"Phototoxicity_{feature}_Phase", n)
        for n in measurements.get_image_numbers()
    ]


def test_pipeline_measures_and_saves_map(cp, tmp_path, tiny_model_path):
    images = _images(tmp_path / "in")
    m, errors, module = _run(PIPELINE, images, tmp_path / "out", str(tiny_model_path))
    assert not errors
    for feature in FEATURES:
        values = _image_values(m, feature)
        assert len(values) == 2 and all(v is not None for v in values)
    assert all(0 <= v <= 1 for v in _image_values(m, "MeanSickProbability"))
    assert set(_image_values(m, "Class")) <= {0, 1}
    maps = sorted((tmp_path / "out").glob("*_sickmap.tiff"))
    assert len(maps) == 2
    for path in maps:
        sick_map = tifffile.imread(path)
        assert sick_map.shape == (260, 300) and sick_map.dtype == np.float32
        assert sick_map.min() >= 0 and sick_map.max() <= 1
    columns = {c[1] for c in module.get_measurement_columns(None)}
    assert columns == {f"Phototoxicity_{f}_Phase" for f in FEATURES}
    with open(tmp_path / "out" / "Image.csv") as handle:
        header = next(csv.reader(handle))
    assert {f"Phototoxicity_{f}_Phase" for f in FEATURES} <= set(header)


def test_map_matches_the_python_api(cp, tmp_path, tiny_model_path):
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.models.weights import load_weights
    from phototox.trust.assess import Assessor

    images = _images(tmp_path / "in", doses=(0.5,))
    m, errors, _ = _run(PIPELINE, images, tmp_path / "out", str(tiny_model_path))
    assert not errors
    # CellProfiler scales 16-bit pixels to [0, 1]; crop normalisation makes that irrelevant
    assessor = Assessor(Predictor.create(load_weights(tiny_model_path), "cpu"), warn=lambda line: None)
    frame = tifffile.imread(images[0]).astype(np.float32)
    api = assessor.analyse(frame, MapSettings(), assessor.pixel_size(None))[0]
    assert _image_values(m, "MeanSickProbability")[0] == pytest.approx(api.mean_sick_probability, abs=1e-4)


@pytest.mark.slow
def test_pixel_size_setting_resamples_to_the_models_scale(cp, tmp_path):
    """The shipped model (0.434 um/px): an image at half that pixel size is analysed at the model's scale."""
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.trust.assess import Assessor
    from phototox.trust.pixelsize import PixelSize

    images = _images(tmp_path / "in", doses=(0.5,), size=(500, 520))
    assumed, errors, _ = _run(PIPELINE, images, tmp_path / "out0")
    assert not errors
    given, errors, _ = _run(PIPELINE, images, tmp_path / "out1", pixel_size=0.217)
    assert not errors
    assert _image_values(assumed, "PixelSizeAssumed") == [1] and _image_values(given, "PixelSizeAssumed") == [0]
    assert _image_values(given, "PixelSizeUm") == [pytest.approx(0.217)]
    assert _image_values(given, "ModelPixelSizeUm") == [pytest.approx(0.434)]
    assert _image_values(given, "OutOfDomain")[0] in (0, 1)
    frame = tifffile.imread(images[0]).astype(np.float32)
    api = Assessor(Predictor.from_spec("default", "cpu")).analyse(frame, MapSettings(), PixelSize(0.217, "user"))[0]
    assert _image_values(given, "MeanSickProbability")[0] == pytest.approx(api.mean_sick_probability, abs=1e-4)
    assert api.trust.model_pixel_size_um == pytest.approx(0.434)
    saved = tifffile.imread(tmp_path / "out1" / f"{images[0].stem}_sickmap.tiff")
    assert saved.shape == frame.shape  # the map comes back at the image's size


def test_per_object_measurements(cp, tmp_path, tiny_model_path):
    images = _images(tmp_path / "in")
    files = sorted((tmp_path / "in").iterdir())
    m, errors, module = _run(OBJECTS_PIPELINE, files, tmp_path / "out", str(tiny_model_path))
    assert not errors
    for n, path in zip(m.get_image_numbers(), images):
        labels = tifffile.imread(str(path).replace("_phase", "_cells"))
        count = int(labels.max())
        means = m.get_measurement("Cells", "Phototoxicity_NeighbourhoodSickProbability_Phase", n)
        assert len(means) == count
        assert np.all((means >= 0) & (means <= 1))
    columns = {c[:2] for c in module.get_measurement_columns(None)}
    assert ("Cells", "Phototoxicity_NeighbourhoodSickProbability_Phase") in columns
    assert not any(obj == "Cells" and "Class" in name for obj, name in columns)  # no per-cell verdict


def test_missing_model_file_is_a_validation_error(cp, tmp_path):
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.setting import ValidationError

    pipeline = Pipeline()
    pipeline.loadtxt(str(PIPELINE), raise_on_error=True)
    module = next(m for m in pipeline.modules() if m.module_name == "MeasurePhototoxicity")
    module.model_choice.value = "Weights file, bioimage.io package or zoo id"
    module.model_location.value = str(tmp_path / "missing.pt")
    with pytest.raises(ValidationError, match=r"missing\.pt: no such file or folder"):
        module.validate_module(pipeline)
    module.model_location.value = ""
    with pytest.raises(ValidationError, match="Enter a model"):
        module.validate_module(pipeline)


def test_colour_image_gives_a_clear_module_error(cp, tmp_path, tiny_model_path):
    colour = np.zeros((240, 240, 3), np.uint8)
    colour[..., 0] = np.random.default_rng(0).integers(0, 255, (240, 240))
    path = tmp_path / "in" / "colour.png"
    path.parent.mkdir()
    import imageio.v3 as iio

    iio.imwrite(path, colour)
    pipeline_text = PIPELINE.read_text().replace(
        "Select the image type:Grayscale image", "Select the image type:Color image", 1
    )
    colour_pipeline = tmp_path / "colour.cppipe"
    colour_pipeline.write_text(pipeline_text)
    _, errors, _ = _run(colour_pipeline, [path], tmp_path / "out", str(tiny_model_path))
    assert errors, "the module should report an error for a colour image"
    assert "colour image" in str(errors[0].error)
    assert "MeasurePhototoxicity" in str(errors[0].error)


def test_assumed_pixel_size_warning_names_the_modules_setting(cp, tmp_path, caplog):
    """A real pipeline run without a pixel size (shipped model): the warning names the module's setting."""
    images = _images(tmp_path / "in", doses=(0.5,))
    with caplog.at_level(logging.WARNING):
        _, errors, _ = _run(PIPELINE, images, tmp_path / "out")
    assert not errors
    warnings = [r.getMessage() for r in caplog.records if "ASSUMED" in r.getMessage()]
    assert warnings, caplog.text
    assert "set MeasurePhototoxicity's 'Pixel size' setting" in warnings[0] and "--pixel-size" not in warnings[0]


def _cellprofiler_cli(pipeline: Path, images: Path, out: Path) -> subprocess.CompletedProcess:
    return run_cellprofiler(pipeline, images, out, timeout=600)


def _image_csv(out: Path) -> list[dict]:
    with open(out / "Image.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_cellprofiler_cli_runs_the_example_pipeline(tmp_path):
    images = _images(tmp_path / "in")
    for p in (tmp_path / "in").glob("*_cells.tif"):
        p.unlink()
    proc = _cellprofiler_cli(PIPELINE, tmp_path / "in", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _image_csv(tmp_path / "out")
    assert len(rows) == len(images)
    for row in rows:
        assert 0 <= float(row["Phototoxicity_MeanSickProbability_Phase"]) <= 1
        assert row["Phototoxicity_Class_Phase"] in ("0", "1")
    for path in images:
        sick_map = tifffile.imread(tmp_path / "out" / f"{path.stem}_sickmap.tiff")
        assert sick_map.shape == tifffile.imread(path).shape
    # CellProfiler's own table reaches the comparison engine: one field per arm can only be untestable
    from phototox.stats.compare import cannot_test
    from phototox.stats.compare_table import TableSpec, compare_table
    from phototox.stats.dose_tests import OUT_OF_DOMAIN

    spec = TableSpec("Phototoxicity_MeanSickProbability_Phase", "FileName_Phase", images[0].name)
    result = compare_table(tmp_path / "out" / "Image.csv", spec)
    assert [r.condition for r in result.conditions] == [images[1].name]
    assert result.conditions[0].verdict in (cannot_test("field"), OUT_OF_DOMAIN)


@pytest.mark.slow
@pytest.mark.shared_data
def test_shipped_model_scores_sick_images_higher_on_real_data(tmp_path):
    data = need_celldeath()
    with open(data / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["label"] == "sick"][:2] + [r for r in rows if r["label"] == "healthy"][:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for r in chosen:
        (folder / Path(r["path"]).name).symlink_to(data / r["path"])
    proc = _cellprofiler_cli(PIPELINE, folder, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = {
        row["FileName_Phase"]: float(row["Phototoxicity_MeanSickProbability_Phase"])
        for row in _image_csv(tmp_path / "out")
    }
    sick = [scores[Path(r["path"]).name] for r in chosen if r["label"] == "sick"]
    healthy = [scores[Path(r["path"]).name] for r in chosen if r["label"] == "healthy"]
    assert min(sick) > max(healthy)
