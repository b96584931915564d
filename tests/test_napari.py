"""The napari plugin on a real ``napari.Viewer`` (one per module): the widget's map equals ``phototox map``.

Needs the ``napari`` extra. Without a display (CI) the module starts its own Xvfb, as ``phototox fiji`` does.
"""

from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import REPO

pytest.importorskip("pytestqt", reason="the napari extra is not installed (pip install -e '.[napari]')")
pytest.importorskip("napari", reason="the napari extra is not installed (pip install -e '.[napari]')")

MANIFEST = REPO / "plugins" / "napari" / "phototox_napari" / "napari.yaml"
WAIT_MS = 180_000


def _display() -> None:
    """A display for Qt: the session's, else an Xvfb of our own kept until the interpreter exits.

    Called at import: pytest-qt's QApplication (session-scoped) is made before any module fixture.
    """
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if shutil.which("Xvfb") is None:
        pytest.skip("no DISPLAY and no Xvfb (apt-get install xvfb, or run under xvfb-run -a)", allow_module_level=True)
    from phototox_fiji.display import start_virtual_display

    atexit.register(start_virtual_display().stop)  # after the tests; Qt is not drawing any more by then


_display()


@pytest.fixture(scope="module")
def viewer():
    import napari
    from npe2 import PluginManager, PluginManifest

    manager = PluginManager.instance()
    manifest = PluginManifest.from_file(MANIFEST)
    if manifest.name not in manager._manifests:  # an editable install of another checkout may hold it
        manager.register(manifest)
    view = napari.Viewer(show=False)
    yield view
    view.close()


@pytest.fixture(scope="module")
def widget(viewer, tiny_model_path):
    """The dock widget, opened through the plugin's manifest as napari's Plugins menu does."""
    _, dock = viewer.window.add_plugin_dock_widget("phototox", "Phototoxicity map")
    dock.model.setEditText(str(tiny_model_path))
    dock.stride.setValue(16)
    return dock


def _run(qtbot, viewer, widget, layer) -> None:
    viewer.layers.selection.active = layer
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is not None and not widget.worker.is_running, timeout=WAIT_MS)
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=WAIT_MS)


@pytest.mark.slow
def test_map_layer_equals_phototox_map(qtbot, viewer, widget, tiny_model_path, tmp_path):
    """The shipped default model (the widget's first choice, 0.434 µm/px) on a 0.65 µm/px layer: the
    frame is resampled both ways, so the layer's scale must reach the analysis for the maps to agree."""
    from phototox.apps.cli import main
    from phototox.models.registry import default_name
    from phototox.synth.fields import render_field

    image = render_field(240, 250, 0.7, seed=8).image
    tifffile.imwrite(tmp_path / "field.tif", image)
    args = ["map", str(tmp_path / "field.tif"), "--out", str(tmp_path / "out"), "--pixel-size", "0.65"]
    assert main([*args, "--stride", "16", "--device", "cpu", "--quiet", "--no-overlay"]) == 0
    expected = tifffile.imread(tmp_path / "out" / "field_map.tif")

    widget.model.setCurrentIndex(0)
    assert widget.model.currentText() == default_name()
    layer = viewer.add_image(image, name="field", scale=(0.65, 0.65), translate=(5.0, -3.0))
    try:
        _run(qtbot, viewer, widget, layer)
    finally:
        widget.model.setEditText(str(tiny_model_path))
    sick = viewer.layers["P(sick) field"]
    np.testing.assert_allclose(sick.data, expected, rtol=0, atol=1e-6)
    assert tuple(sick.scale) == tuple(layer.scale) and tuple(sick.translate) == tuple(layer.translate)
    assert tuple(sick.contrast_limits) == (0.0, 1.0)
    text = widget.verdicts.text()
    assert "pixel size 0.65 µm/px (layer scale" in text and "model's 0.434 µm/px" in text, text
    assert widget.progress.value() == widget.progress.maximum() == 1
    assert sick.metadata["phototox"][0]["pixel_size_um"] == 0.65


@pytest.mark.slow
def test_time_lapse_unscaled_layer_and_controls(qtbot, viewer, widget):
    """A (T, H, W) layer without a scale: a map per frame, the model's pixel size said to be assumed;
    with two control layers marked, the field is compared with them."""
    from phototox.synth.fields import render_field

    stack = np.stack([render_field(224, 230, d, seed=1).image for d in (0.0, 0.5, 1.0)])
    controls = [viewer.add_image(render_field(224, 230, 0.0, seed=s).image, name=f"control {s}") for s in (2, 3)]
    viewer.layers.selection = set(controls)
    widget.mark_controls()
    assert widget.controls_label.text() == "controls: control 2, control 3"
    layer = viewer.add_image(stack, name="movie")
    _run(qtbot, viewer, widget, layer)
    sick = viewer.layers["P(sick) movie"]
    assert sick.data.shape == stack.shape and widget.progress.value() == 3
    text = widget.verdicts.text()
    assert "layer scale" not in text and ("assumed" in text or "pixel size unknown" in text), text
    assert "frame 2: mean P(sick)" in text, text
    assert "against your controls:" in text, text
    viewer.layers.selection = set()
    widget.mark_controls()


@pytest.mark.slow
def test_reference_adds_the_unlike_your_controls_layer_equal_to_phototox_map(qtbot, viewer, widget, tmp_path):
    """With a reference file, the widget adds the same 'unlike your controls' map as ``phototox map
    --reference`` and says its fraction; a reference made with another model is one line, nothing added."""
    from phototox.apps.cli import main
    from phototox.synth.fields import render_field

    model = widget.model.currentText()
    controls = []
    for seed in (11, 12, 13):
        path = tmp_path / f"control{seed}.tif"
        tifffile.imwrite(path, render_field(240, 250, 0.0, seed=seed).image)
        controls.append(str(path))
    reference = tmp_path / "ref.npz"
    assert main(["reference", *controls, "--out", str(reference), "--model", model, "--device", "cpu"]) == 0
    image = render_field(240, 250, 0.9, seed=14).image
    tifffile.imwrite(tmp_path / "exposed.tif", image)
    args = ["map", str(tmp_path / "exposed.tif"), "--out", str(tmp_path / "out"), "--reference", str(reference)]
    assert main([*args, "--model", model, "--stride", "16", "--device", "cpu", "--quiet", "--no-overlay"]) == 0
    expected = tifffile.imread(tmp_path / "out" / "exposed_unlike_controls.tif")

    layer = viewer.add_image(image, name="exposed", translate=(2.0, 4.0))
    widget.reference.setText(str(reference))
    try:
        _run(qtbot, viewer, widget, layer)
        unlike = viewer.layers["unlike your controls exposed"]
        np.testing.assert_allclose(unlike.data, expected, rtol=0, atol=1e-6)
        assert tuple(unlike.translate) == tuple(layer.translate)
        assert "unlike your controls (not 'sick')" in widget.verdicts.text(), widget.verdicts.text()
        viewer.layers.selection.active = unlike  # an output layer is not analysed
        widget.run()
        assert "not an 'unlike your controls' map" in widget.verdicts.text()

        widget.model.setCurrentIndex(0)  # the shipped default: the reference was made with the tiny model
        other = viewer.add_image(image, name="other")
        _run(qtbot, viewer, widget, other)
        text = widget.verdicts.text()
        assert text.startswith("phototox: ") and "\n" not in text, text
        assert "unlike your controls other" not in viewer.layers and "P(sick) other" not in viewer.layers
    finally:
        widget.reference.setText("")
        widget.model.setEditText(model)


def _calibrate(qtbot, widget) -> None:
    widget.calibrate()
    qtbot.waitUntil(lambda: widget.worker is not None and not widget.worker.is_running, timeout=WAIT_MS)
    qtbot.waitUntil(widget.calibrate_button.isEnabled, timeout=WAIT_MS)


@pytest.mark.slow
def test_calibrate_on_control_layers_equals_phototox_calibrate(qtbot, viewer, widget, tmp_path):
    """Three control layers (scale 0.5 µm/px) calibrate the model as ``phototox calibrate`` does on the
    same fields saved with that pixel size; the widget then uses the new model. Too few layers or no
    file name: one line, nothing written."""
    from phototox.apps.cli import main
    from phototox.models.loader import load_model
    from phototox.synth.fields import render_field

    model = widget.model.currentText()
    images = [render_field(240, 250, 0.0, seed=s).image for s in (21, 22, 23)]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"c{i}.tif")
        tifffile.imwrite(paths[-1], image)
    cli_out = tmp_path / "cli.pt"
    args = ["calibrate", *map(str, paths), "--out", str(cli_out), "--model", model, "--pixel-size", "0.5"]
    assert main([*args, "--device", "cpu"]) == 0
    layers = [viewer.add_image(im, name=f"cal {i}", scale=(0.5, 0.5)) for i, im in enumerate(images)]
    out = tmp_path / "mine.pt"
    try:
        viewer.layers.selection = set(layers[:2])
        widget.mark_controls()
        widget.calibrated_path.setText(str(out))
        _calibrate(qtbot, widget)
        text = widget.verdicts.text()
        assert text.startswith("phototox: ") and "\n" not in text and not out.exists(), text  # two fields: refused
        viewer.layers.selection = set(layers)
        widget.mark_controls()
        widget.calibrated_path.setText("")
        _calibrate(qtbot, widget)
        assert widget.verdicts.text().startswith("phototox: 'Save calibrated model as'")
        widget.calibrated_path.setText(str(out))
        _calibrate(qtbot, widget)
        assert out.exists() and widget.model.currentText() == str(out), widget.verdicts.text()
        assert "(3 control fields)" in widget.verdicts.text()
        ours, theirs = load_model(str(out)).meta, load_model(str(cli_out)).meta
        assert ours["domain"]["threshold"] == pytest.approx(theirs["domain"]["threshold"], rel=1e-6)
        assert ours["calibration"]["control_p_sick"] == theirs["calibration"]["control_p_sick"]
        assert ours["calibration"]["control_pixel_sizes"][0].startswith("0.5")
    finally:
        viewer.layers.selection = set()
        widget.mark_controls()
        widget.model.setEditText(model)


def _timecourse(qtbot, widget) -> None:
    widget.timecourse()
    qtbot.waitUntil(lambda: widget.worker is not None and not widget.worker.is_running, timeout=WAIT_MS)
    qtbot.waitUntil(widget.timecourse_button.isEnabled, timeout=WAIT_MS)


@pytest.mark.slow
def test_time_course_equals_phototox_timecourse(qtbot, viewer, widget, tmp_path):
    """A (T, H, W) layer whose T scale is 10 (minutes) and two control time-lapse layers: the widget's
    per-frame measures and onsets equal ``phototox timecourse`` on the same stacks saved as TIFF
    (``--interval 10 --pixel-size 0.87``, zero-dose controls); the plot is docked, the text gives each
    measure's onset or why none. No interval, or controls of another length: one line."""
    import csv
    import json

    from phototox_napari.widget import PLOT_DOCK

    from phototox.apps.cli import main
    from phototox.synth.timelapse import PIXEL_UM, render_dose_series

    frames, size = 5, 224  # 3 baseline frames + 2 for an onset
    exposed = render_dose_series(frames, size, 0.05, seed=1, n_cells=5)[0]
    controls = [render_dose_series(frames, size, 0.0, seed=s, n_cells=5)[0] for s in (2, 3)]
    names = ["movie_tc", "control_tc2", "control_tc3"]
    for name, stack in zip(names, [exposed, *controls]):
        tifffile.imwrite(tmp_path / f"{name}.tif", stack)
    doses = tmp_path / "doses.csv"
    doses.write_text(
        "field,irradiance_mW_per_cm2,exposure_ms,wavelength_nm\n"
        "movie_tc,1000,50,488\ncontrol_tc2,0,50,488\ncontrol_tc3,0,50,488\n"
    )
    model = widget.model.currentText()
    args = ["timecourse", *(str(tmp_path / f"{n}.tif") for n in names), "--doses", str(doses), "--model", model]
    args += ["--interval", "10", "--pixel-size", str(PIXEL_UM), "--stride", "16", "--device", "cpu"]
    assert main([*args, "--bootstrap", "0", "--quiet", "--out", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "timecourse.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["field"] == "movie_tc"]
    cli_onsets = {
        (o["measure"], o["time_min"])
        for o in json.loads((tmp_path / "out" / "timecourse.json").read_text())["onsets"]
        if o["field"] == "movie_tc"
    }

    control_layers = [viewer.add_image(c, name=n) for c, n in zip(controls, names[1:])]
    layer = viewer.add_image(exposed, name="movie tc", scale=(10.0, PIXEL_UM, PIXEL_UM))
    try:
        viewer.layers.selection = set(control_layers)
        widget.mark_controls()
        viewer.layers.selection.active = layer
        _timecourse(qtbot, widget)
        run = widget.timecourse_result
        assert run is not None, widget.verdicts.text()
        assert run.interval_min == 10.0 and run.pixel_um == PIXEL_UM
        assert len(rows) == frames and set(run.values) <= set(rows[0])
        for measure, values in run.values.items():
            cli = np.array([float(row[measure]) if row[measure] else np.nan for row in rows])
            np.testing.assert_allclose(values, cli, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=measure)
        motion = run.values["motion_um_per_min"][1:]
        assert np.all(motion > 0) and np.ptp(motion) > 0  # the interval divides it: it must vary
        assert {(o.measure, o.time_min) for o in run.onsets if not o.note} == cli_onsets
        assert widget.progress.value() == widget.progress.maximum() == 2 * frames * 3
        assert widget.plot_path is not None and widget.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert PLOT_DOCK in viewer.window.dock_widgets and not widget.plot_label.pixmap().isNull()
        text = widget.verdicts.text()
        assert "5 frames every 10 min (layer T scale" in text and "2 control layers" in text, text
        measure_lines = [line for line in text.splitlines() if "->" in line]
        assert len(measure_lines) == len(run.values), text
        assert all("ONSET at" in line or "no onset: " in line for line in measure_lines), text

        viewer.add_image(exposed[:4], name="short tc", scale=(1.0, PIXEL_UM, PIXEL_UM))  # T scale 1, no interval
        _timecourse(qtbot, widget)
        text = widget.verdicts.text()
        assert text.startswith("phototox: ") and "\n" not in text and "Frame interval (min)" in text, text
        widget.interval.setValue(10.0)
        _timecourse(qtbot, widget)
        text = widget.verdicts.text()
        assert text.startswith("phototox: control layer control_tc") and "\n" not in text, text
        assert "5 frames, short tc has 4" in text, text
    finally:
        widget.interval.setValue(0.0)
        viewer.layers.selection = set()
        widget.mark_controls()


def test_colour_layer_and_map_layers_are_refused_in_one_line(qtbot, viewer, widget):
    colour = np.zeros((240, 250, 3), np.uint8)
    colour[..., 0] = np.random.default_rng(0).integers(0, 255, (240, 250))
    layer = viewer.add_image(colour, name="colour", rgb=True)
    _run(qtbot, viewer, widget, layer)
    text = widget.verdicts.text()
    assert text.startswith("phototox: ") and "\n" not in text and "split the layer into channels" in text, text
    assert "P(sick) colour" not in viewer.layers
    viewer.layers.selection.active = viewer.layers["P(sick) field"]
    widget.run()
    assert "select one image layer (not a P(sick) map)" in widget.verdicts.text()
    viewer.layers.selection.active = None  # nothing selected: the same line, no AttributeError
    widget.run()
    assert widget.verdicts.text().startswith("phototox: select one image layer")


def test_sample_data_opens_through_the_manifest(viewer):
    layers = viewer.open_sample("phototox", "synthetic-field")
    assert layers[0].data.shape == (512, 512) and layers[0].name == "synthetic field (phototox)"


def test_layer_pixel_size_reads_units_and_refuses_anisotropy():
    from phototox_napari.run import layer_pixel_size

    assert layer_pixel_size((0.65, 0.65)) == (0.65, "layer scale (read as µm)")
    assert layer_pixel_size((1.0, 1.0)) == (None, "")
    assert layer_pixel_size((650.0, 650.0), ("nanometer", "nanometer")) == (
        pytest.approx(0.65),
        "layer scale (nanometer)",
    )
    with pytest.raises(ValueError, match="differ"):
        layer_pixel_size((0.5, 0.65))


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert {c.python_name for c in manifest.contributions.commands} == {
        "phototox_napari.widget:PhototoxWidget",
        "phototox_napari.sample:synthetic_field",
    }
    assert Path(MANIFEST).parent.name == "phototox_napari"
