"""The dock widget: phototox on the selected image layer, in a worker thread, the map added as a layer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from phototox.maps.settings import MODES, MapSettings

from .run import LayerRun, analyse_layer_data, calibrate_on_layers
from .timecourse import LayerTimecourse, plot_timecourse, timecourse_of_layer

if TYPE_CHECKING:
    import napari

MAP_PREFIX = "P(sick) "
"""Name of the map layer: this prefix and the analysed layer's name."""
UNLIKE_PREFIX = "unlike your controls "
PLOT_DOCK = "phototox time course"
"""Name of the dock widget that shows the time-course plot."""
"""Name of the 'unlike your controls' layer (with a reference): this prefix and the analysed layer's name."""


def _is_output(layer) -> bool:
    return layer.name.startswith((MAP_PREFIX, UNLIKE_PREFIX))


def _layer_input(layer) -> tuple:
    """(data, scale, units, rgb) of an image layer (its full-resolution level when multiscale)."""
    data = layer.data[0] if layer.multiscale else layer.data
    return data, tuple(layer.scale), tuple(getattr(layer, "units", ()) or ()), bool(layer.rgb)


class _Progress(QObject):
    step = Signal(int)


class PhototoxWidget(QWidget):
    """Model, pixel size, stride and mode; Run maps the selected image layer; verdicts shown below."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from phototox.models.registry import list_models

        self.viewer = napari_viewer
        self.worker = None
        self.controls: list = []
        self._predictors: dict = {}
        self.model = QComboBox()
        self.model.setEditable(True)  # a registry name, or a model file / package / URL typed in
        self.model.addItems([entry.name for entry in list_models()])
        self.model.setToolTip("a shipped model (the default first), or type a model file, package or URL")
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 100.0)
        self.pixel_size.setDecimals(4)
        self.pixel_size.setSpecialValueText("from the layer's scale")
        self.pixel_size.setToolTip("µm per pixel; 0: the layer's scale (without one, the model's is assumed)")
        defaults = MapSettings()
        self.stride = QSpinBox()
        self.stride.setRange(1, 512)
        self.stride.setValue(defaults.stride)
        self.stride.setToolTip("window step in pixels at the model's scale")
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.mode.setCurrentText(defaults.mode)
        self.reference = QLineEdit()
        self.reference.setPlaceholderText("none (phototox reference CONTROLS --out ref.npz)")
        self.reference.setToolTip(
            "an 'unlike your controls' reference (.npz from 'phototox reference', made with this model): "
            "adds a map of the windows unlike your control fields (never called sick)"
        )
        self.interval = QDoubleSpinBox()
        self.interval.setRange(0.0, 10080.0)
        self.interval.setDecimals(3)
        self.interval.setSpecialValueText("from the layer's T scale")
        self.interval.setToolTip("minutes between frames; 0: the layer's T scale (refused when it is 1)")
        self.timecourse_button = QPushButton("Time course")
        self.timecourse_button.setToolTip(
            "phototox timecourse on the selected (T, H, W) layer: per-frame P(sick), motion, confluence, "
            "rounding; onsets against the control layers (time-lapses of the same length); the plot in a dock"
        )
        self.timecourse_button.clicked.connect(self.timecourse)
        self.timecourse_result: LayerTimecourse | None = None
        self.plot_path: Path | None = None
        self.plot_label: QLabel | None = None
        self._plot_dir = tempfile.TemporaryDirectory(prefix="phototox-napari-plot-")
        self.run_button = QPushButton("Run on selected layer")
        self.run_button.clicked.connect(self.run)
        self.controls_button = QPushButton("Selected layers are controls")
        self.controls_button.clicked.connect(self.mark_controls)
        self.controls_label = QLabel("controls: none")
        self.calibrated_path = QLineEdit()
        self.calibrated_path.setPlaceholderText("e.g. /path/to/mine.pt")
        self.calibrated_path.setToolTip("where 'Calibrate on controls' writes the calibrated model (.pt)")
        self.calibrate_button = QPushButton("Calibrate on controls")
        self.calibrate_button.setToolTip(
            "phototox calibrate on the control layers (3 or more, each one field): the domain check then means "
            "'like my controls'; the new model becomes the widget's model"
        )
        self.calibrate_button.clicked.connect(self.calibrate)
        self.progress = QProgressBar()
        self.verdicts = QLabel("select an image layer and press Run")
        self.verdicts.setWordWrap(True)
        self.verdicts.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.verdicts.setMinimumWidth(1)  # wraps to the dock's width (a checksum is clipped, not the lines)
        self.verdicts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._signals = _Progress()
        self._signals.step.connect(lambda n: self.progress.setValue(self.progress.value() + n))
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Pixel size (µm)", self.pixel_size)
        form.addRow("Stride", self.stride)
        form.addRow("Mode", self.mode)
        form.addRow("Reference (.npz)", self.reference)
        form.addRow("Frame interval (min)", self.interval)
        row = QHBoxLayout()
        row.addWidget(self.controls_button)
        row.addWidget(self.controls_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row)
        calibrate_row = QFormLayout()
        calibrate_row.addRow("Save calibrated model as", self.calibrated_path)
        layout.addLayout(calibrate_row)
        layout.addWidget(self.calibrate_button)
        layout.addWidget(self.run_button)
        layout.addWidget(self.timecourse_button)
        layout.addWidget(self.progress)
        scroll = QScrollArea()  # a time course's lines outgrow the dock beside its plot
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(180)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.verdicts)
        layout.addWidget(scroll)

    def settings(self) -> MapSettings:
        """The map settings shown, validated (one line on a bad value)."""
        return MapSettings(stride=self.stride.value(), mode=self.mode.currentText()).validate()

    def _image_layers(self) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers.selection if isinstance(layer, Image) and not _is_output(layer)]

    def mark_controls(self) -> None:
        """Remember the selected image layers as control fields (each one field; at least 2)."""
        chosen = self._image_layers()
        self.controls = [layer for layer in self.viewer.layers if layer in chosen]  # in the layer list's order
        names = ", ".join(layer.name for layer in self.controls)
        self.controls_label.setText(f"controls: {names}" if self.controls else "controls: none")

    def run(self) -> None:
        """Start the analysis of the active image layer in a worker thread."""
        from napari.layers import Image

        layer = self.viewer.layers.selection.active
        if not isinstance(layer, Image) or _is_output(layer):
            unlike = getattr(layer, "name", "").startswith(UNLIKE_PREFIX)  # no active layer: None
            kind = "an 'unlike your controls' map" if unlike else "a P(sick) map"
            self.verdicts.setText(f"phototox: select one image layer (not {kind}) first")
            return
        try:
            settings = self.settings()
            reference = self._reference()
        except Exception as exc:  # PhototoxError: one line
            self.verdicts.setText(f"phototox: {exc}")
            return
        data, scale, units, rgb = _layer_input(layer)
        frames = 1 if data.ndim == 2 or (rgb and data.ndim == 3) else int(data.shape[0])
        controls = [_layer_input(c) for c in self.controls if c is not layer]
        self.progress.setRange(0, frames)
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.verdicts.setText(f"analysing {layer.name} ...")
        user_um = self.pixel_size.value() or None
        spec = self.model.currentText().strip() or None

        def work() -> LayerRun:
            return analyse_layer_data(
                data,
                self._predictor(spec),
                settings,
                layer.name,
                rgb=rgb,
                scale=scale,
                units=units,
                pixel_size_um=user_um,
                controls=controls,
                progress=self._signals.step.emit,
                reference=reference,
            )

        self._start(work, lambda result: self._show(layer, result), self.run_button)

    def timecourse(self) -> None:
        """``phototox timecourse``'s measures of the active (T, H, W) layer in a worker thread; plot docked."""
        from napari.layers import Image

        layer = self.viewer.layers.selection.active
        if not isinstance(layer, Image) or _is_output(layer):
            self.verdicts.setText("phototox: select one time-lapse image layer (T, H, W) first")
            return
        data, scale, units, rgb = _layer_input(layer)
        if rgb or data.ndim != 3:
            self.verdicts.setText(f"phototox: {layer.name}: a time course needs a grey (T, H, W) layer")
            return
        controls = [(c.name, _layer_input(c)[0]) for c in self.controls if c is not layer]
        self.progress.setRange(0, 2 * int(data.shape[0]) * (1 + len(controls)))
        self.progress.setValue(0)
        self.timecourse_button.setEnabled(False)
        self.verdicts.setText(f"time course of {layer.name} ...")
        user_um = self.pixel_size.value() or None
        interval = self.interval.value() or None
        spec = self.model.currentText().strip() or None
        stride = self.stride.value()
        path = Path(self._plot_dir.name) / "timecourse_measures.png"  # the file phototox timecourse writes

        def work() -> LayerTimecourse:
            run = timecourse_of_layer(
                data,
                self._predictor(spec),
                layer.name,
                scale=scale,
                units=units,
                pixel_size_um=user_um,
                interval_min=interval,
                controls=controls,
                stride=stride,
                progress=self._signals.step.emit,
            )
            plot_timecourse(run, path)
            return run

        def done(run: LayerTimecourse) -> None:
            self.timecourse_result, self.plot_path = run, path
            self._show_plot(path)
            self.verdicts.setText("\n".join(run.lines()))

        self._start(work, done, self.timecourse_button)

    def _show_plot(self, path: Path) -> None:
        """Show the plot PNG in the time-course dock (made once, refreshed after)."""
        from qtpy.QtGui import QPixmap

        pixmap = QPixmap(str(path))
        if pixmap.height() > 420:  # leaves the widget's text room above the bottom dock
            pixmap = pixmap.scaledToHeight(420, Qt.TransformationMode.SmoothTransformation)
        if self.plot_label is None:
            self.plot_label = QLabel()
            self.plot_label.setObjectName(PLOT_DOCK)
            self.viewer.window.add_dock_widget(self.plot_label, name=PLOT_DOCK, area="bottom")
        self.plot_label.setPixmap(pixmap)
        self.plot_label.setToolTip(str(path))

    def calibrate(self) -> None:
        """``phototox calibrate`` on the control layers, in a worker thread; the new model is then used."""
        controls = [_layer_input(c) for c in self.controls]
        spec = self.model.currentText().strip() or None
        out = self.calibrated_path.text().strip()
        user_um = self.pixel_size.value() or None
        lines: list[str] = []
        self.calibrate_button.setEnabled(False)
        self.verdicts.setText(f"calibrating on {len(controls)} control layer(s) ...")

        def work() -> dict:
            return calibrate_on_layers(spec, controls, out, user_um, warn=lines.append)

        def done(calibration: dict) -> None:
            self.model.setEditText(out)
            self._predictors.pop(out, None)  # a model rewritten at the same path is read again
            self.verdicts.setText(
                "\n".join(
                    [
                        f"wrote {out}: domain threshold {calibration['previous_domain_threshold']} -> "
                        f"{calibration['domain_threshold']:.4g} ({calibration['n_fields']} control fields); "
                        f"a new field like the controls is called out of domain at most "
                        f"{calibration['false_alarm_rate']:.3g} of the time",
                        f"control P(sick): {', '.join(f'{v:.3f}' for v in calibration['control_p_sick'])}",
                        "the widget now uses this model",
                        *lines,
                    ]
                )
            )

        self._start(work, done, self.calibrate_button)

    def _predictor(self, spec: str | None):
        from phototox.maps.inference import Predictor

        if spec not in self._predictors:
            self._predictors[spec] = Predictor.from_spec(spec, "auto")
        return self._predictors[spec]

    def _reference(self):
        """The reference file typed in, loaded (None when the field is empty)."""
        from phototox.trust.novelty import NoveltyReference

        path = self.reference.text().strip()
        return NoveltyReference.load(path) if path else None

    def _start(self, work, done, button) -> None:
        """Run ``work`` in a napari worker thread: ``done`` gets its result, an error is one line in the
        widget (not raised in the event loop), and ``button`` is enabled again at the end."""
        from napari.qt.threading import create_worker

        self.worker = create_worker(
            work,
            _connect={"returned": done, "errored": self._failed, "finished": lambda: button.setEnabled(True)},
        )

    def _failed(self, exc: BaseException) -> None:
        self.verdicts.setText(f"phototox: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")

    def _show(self, layer, result: LayerRun) -> None:
        """Add (or refresh) the map layers on the analysed layer's grid and show the verdicts."""
        metadata = {"phototox": [r.summary() for r in result.results], "model": result.model}
        self._put(MAP_PREFIX + layer.name, result.maps, layer, metadata, "magma", (0.0, 1.0))
        if result.unlike is not None:  # novelty / the line: 1 is the line, 2 twice it
            self._put(UNLIKE_PREFIX + layer.name, result.unlike, layer, metadata, "cividis", (0.0, 2.0))
        self.viewer.layers.selection.active = layer
        self.verdicts.setText("\n".join(result.verdict_lines()))

    def _put(self, name: str, data, layer, metadata: dict, colormap: str, limits: tuple[float, float]) -> None:
        """Add the layer ``name`` on ``layer``'s grid, or refresh it when it exists."""
        if name in self.viewer.layers:
            target = self.viewer.layers[name]
            target.data, target.metadata = data, metadata
            target.scale, target.translate = layer.scale, layer.translate
            return
        self.viewer.add_image(
            data,
            name=name,
            colormap=colormap,
            contrast_limits=limits,
            scale=layer.scale,
            translate=layer.translate,
            opacity=0.5,
            blending="translucent",
            metadata=metadata,
        )
