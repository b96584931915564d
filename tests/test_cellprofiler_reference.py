"""MeasurePhototoxicity with an 'unlike your controls' reference (issue 26): the same numbers as the API."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from conftest import REPO

pytest.importorskip("cellprofiler_core", reason="CellProfiler is not installed (pip install -e '.[cellprofiler]')")

PIPELINE = REPO / "example_pipelines" / "measure_phototoxicity.cppipe"
MODEL = "deadnet-gap-synthetic-v2"


@pytest.mark.slow
def test_reference_setting_adds_the_unlike_map_and_measurements(tmp_path):
    from cellprofiler_core.pipeline import Pipeline, RunException
    from cellprofiler_core.preferences import set_default_output_directory, set_headless, set_plugin_directory
    from cellprofiler_core.reader import fill_readers, filter_active_readers

    from phototox.apps.cli import main
    from phototox.maps.inference import Predictor
    from phototox.maps.settings import MapSettings
    from phototox.synth.fields import render_field
    from phototox.trust.assess import Assessor
    from phototox.trust.novelty import NoveltyReference
    from phototox.trust.pixelsize import PixelSize

    set_headless()
    set_plugin_directory(str(REPO / "plugins" / "cellprofiler"), globally=False)
    fill_readers(check_config=False)
    filter_active_readers(["imageio_reader"])
    import cellprofiler_core.modules  # noqa: F401  (loads the plugins)

    controls = []
    for s in range(3):
        controls.append(tmp_path / f"control{s}.tif")
        tifffile.imwrite(controls[-1], render_field(300, 300, 0.0, seed=40 + s).image)
    ref = tmp_path / "refs" / "reference.npz"
    ref.parent.mkdir()
    assert main(["reference", *map(str, controls), "--out", str(ref), "--model", MODEL, "--device", "cpu"]) == 0
    image = tmp_path / "in" / "field_phase.tif"
    image.parent.mkdir()
    frame = render_field(300, 300, 1.0, seed=50).image
    tifffile.imwrite(image, frame)

    pipeline = Pipeline()
    pipeline.loadtxt(str(PIPELINE), raise_on_error=True)
    module = next(m for m in pipeline.modules() if m.module_name == "MeasurePhototoxicity")
    module.model_choice.value = "Weights file, bioimage.io package or zoo id"
    module.model_location.value = MODEL
    module.wants_reference.value = True
    module.reference_directory.join_parts("Elsewhere...", str(ref.parent))
    module.reference_file.value = ref.name
    assert module.reference_file in module.visible_settings()
    errors = []
    pipeline.add_listener(lambda caller, event: errors.append(event) if isinstance(event, RunException) else None)
    pipeline.add_pathnames_to_file_list([str(image)])
    (tmp_path / "out").mkdir()
    set_default_output_directory(str(tmp_path / "out"))
    measurements = pipeline.run()
    assert not errors
    measured = {
        f: measurements.get_measurement("Image", f"Phototoxicity_{f}_Phase", 1)
        for f in ("UnlikeControlsFraction", "UnlikeControlsPValue", "UnlikeControlsRate")
    }
    assessor = Assessor(Predictor.from_spec(MODEL, "cpu"), warn=lambda line: None)
    assessor.novelty = NoveltyReference.load(ref)
    api = assessor.analyse(frame.astype(np.float32), MapSettings(), PixelSize(None, "unknown"))[0].trust
    assert measured["UnlikeControlsFraction"] == pytest.approx(api.unlike_controls_fraction, abs=1e-3)
    assert measured["UnlikeControlsPValue"] == pytest.approx(api.unlike_controls_p_value, abs=1e-3)
    assert measured["UnlikeControlsRate"] == pytest.approx(0.25)
