"""Make the README's napari time-course screenshot: a synthetic dose series, two control layers, the plot docked.

Run under a display (``xvfb-run -a python scripts/napari_timecourse_screenshot.py docs/napari-timecourse.png``).
The series is :func:`phototox.synth.timelapse.render_dose_series` (its nominal 0.87 µm/px, 10 min a frame).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: str = "docs/napari-timecourse.png", frames: int = 12) -> int:
    import napari
    from npe2 import PluginManager, PluginManifest
    from qtpy.QtWidgets import QApplication

    from phototox.synth.timelapse import INTERVAL_MIN, PIXEL_UM, render_dose_series

    manifest = PluginManifest.from_file(Path(__file__).parents[1] / "plugins/napari/phototox_napari/napari.yaml")
    if manifest.name not in PluginManager.instance()._manifests:
        PluginManager.instance().register(manifest)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 1100)
    scale = (INTERVAL_MIN, PIXEL_UM, PIXEL_UM)
    controls = [
        viewer.add_image(
            render_dose_series(int(frames), 224, 0.0, seed=s, n_cells=8)[0], name=f"control {s}", scale=scale
        )
        for s in (2, 3, 4)
    ]
    exposed = render_dose_series(int(frames), 224, 0.05, seed=1, n_cells=8)[0]
    layer = viewer.add_image(exposed, name="exposed 0.05 J/cm2 per frame", scale=scale)
    _, widget = viewer.window.add_plugin_dock_widget("phototox", "Phototoxicity map")
    widget.model.setCurrentText("deadnet-gap-synthetic-v3")
    widget.stride.setValue(16)
    viewer.layers.selection = set(controls)
    widget.mark_controls()
    viewer.layers.selection.active = layer
    widget.timecourse()
    while widget.worker is None or widget.worker.is_running or not widget.timecourse_button.isEnabled():
        QApplication.processEvents()
    for _ in range(20):
        QApplication.processEvents()
    image = viewer.screenshot(canvas_only=False)
    from PIL import Image

    Image.fromarray(image[..., :3]).quantize(colors=128).save(out, optimize=True)  # small in the repository
    print(widget.verdicts.text())
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
