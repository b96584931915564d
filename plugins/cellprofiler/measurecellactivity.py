"""
MeasureCellActivity
===================

**MeasureCellActivity** measures, frame by frame in a label-free
phase-contrast time-lapse, how active the cells are: how much of the field
they cover (confluence), how fast they move (optical flow against the
previous frame of the same group) and how many of them are rounded up, as
cells do in mitosis. Light that harms cells slows them and delays or blocks
their divisions before they look sick; compare these numbers between your
exposed and control fields over time (phototox ``timecourse`` does this with
onsets and intervals).

The measurements are computed by the *phototox* Python package, the same
code as ``phototox timecourse``: confluence from a texture threshold,
motion by scikit-image's iterative Lucas-Kanade optical flow at about 3 um
per pixel over the pixels cells cover in either frame, rounded cells by a
bright, round, solid object test. See ``example_pipelines/README.md``.

**Time-lapses in CellProfiler.** Load the frames and group them by field
with the **Groups** module (for example on a ``Field`` metadata tag); each
group is processed in file-name order by one worker (number frames with
leading zeros: ``t001``, ``t002``, ...), and the first
frame of each group has no motion value (there is no previous frame). This
follows CellProfiler's convention for measurements that need the previous
frame (as in **TrackObjects**).

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           NO
============ ============ ===============

Measurements made by this module
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

**Image measurements:**

-  *Confluence:* fraction of the field covered by cells (0-1).
-  *MotionUmPerMin:* mean optical-flow speed over the cell-covered pixels
   since the previous frame of the group, in micrometres per minute
   (NaN for the first frame of each group).
-  *RoundedCells:* number of round, bright objects (cells rounded up, as in
   mitosis) in this frame.
-  *PixelSizeUm*, *FrameIntervalMin:* the pixel size and frame interval the
   numbers above were computed with (from the settings).

References
^^^^^^^^^^

-  Richmond D, et al. (2017) DeadNet: Identifying phototoxicity from
   label-free microscopy images of cells using deep ConvNets.
   arXiv:1701.06109.
"""

from __future__ import annotations

from cellprofiler_core.constants.measurement import COLTYPE_FLOAT, COLTYPE_INTEGER
from cellprofiler_core.module import Module
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import Float

CATEGORY = "Activity"
F_CONFLUENCE = "Confluence"
F_MOTION = "MotionUmPerMin"
F_ROUNDED = "RoundedCells"
F_PIXEL_SIZE = "PixelSizeUm"
F_INTERVAL = "FrameIntervalMin"
FEATURES = (F_CONFLUENCE, F_MOTION, F_ROUNDED, F_PIXEL_SIZE, F_INTERVAL)
INTEGER_FEATURES = (F_ROUNDED,)
INSTALL_HINT = (
    "MeasureCellActivity needs the phototox package (pip install -e . in its repository; scikit-image comes with it)"
)
PREVIOUS_FRAME = "previous_frame"
PREVIOUS_CELLS = "previous_cells"


def _activity():
    """The phototox activity and mitosis code, imported when the module runs (not when plugins load)."""
    try:
        import phototox.errors
        import phototox.io.images
        import phototox.timecourse.activity as activity
        import phototox.timecourse.mitosis as mitosis
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT}: {exc}") from exc
    return phototox, activity, mitosis


class MeasureCellActivity(Module):
    module_name = "MeasureCellActivity"
    category = "Measurement"
    variable_revision_number = 1
    doi = {
        "Please cite the following when using MeasureCellActivity:": "https://doi.org/10.48550/arXiv.1701.06109",
    }

    def create_settings(self):
        self.image_name = ImageSubscriber(
            "Select the phase-contrast image",
            "None",
            doc="Choose the grayscale phase-contrast frame of your time-lapse.",
        )
        self.pixel_size = Float(
            "Pixel size (micrometres per pixel)",
            0.65,
            minval=0.02,
            maxval=20.0,
            doc="""\
The size of one pixel in the specimen, in micrometres (camera pixel size
divided by the total magnification; your microscope software shows it).
Confluence and the rounded-cell test work in micrometres, and motion is
reported in micrometres per minute, so a wrong value gives wrong numbers.""",
        )
        self.interval = Float(
            "Time between frames (minutes)",
            10.0,
            minval=0.01,
            doc="Time between consecutive frames of the time-lapse, in minutes (for motion in um/min).",
        )

    def settings(self):
        return [self.image_name, self.pixel_size, self.interval]

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        if variable_revision_number > self.variable_revision_number:
            raise ValueError(
                f"MeasureCellActivity settings revision {variable_revision_number} is newer than this "
                f"plugin ({self.variable_revision_number}); update phototox"
            )
        return setting_values, variable_revision_number

    def volumetric(self):
        return False

    def is_aggregation_module(self):
        """Motion needs the previous frame: CellProfiler then hands each group, in order, to one worker."""
        return True

    def prepare_group(self, workspace, grouping, image_numbers):
        """A new group (field) starts without a previous frame."""
        self.get_dictionary().clear()
        return True

    def run(self, workspace):
        phototox, activity, mitosis = _activity()
        image_name = self.image_name.value
        image = workspace.image_set.get_image(image_name)
        source = f"MeasureCellActivity: image '{image_name}'"
        if image.volumetric:
            raise ValueError(f"{source} is a 3-D volume; MeasureCellActivity works on 2-D frames only")
        try:
            frame = phototox.io.images.as_grey_frames(image.pixel_data, source, min_size=16)[0]
        except phototox.errors.PhototoxError as exc:  # one line naming the image and the problem
            raise ValueError(str(exc)) from exc
        pixel_um, interval = float(self.pixel_size.value), float(self.interval.value)
        cells = activity.foreground_mask(frame, pixel_um)
        state = self.get_dictionary()
        previous, previous_cells = state.get(PREVIOUS_FRAME), state.get(PREVIOUS_CELLS)
        motion = float("nan")
        if previous is not None and previous.shape == frame.shape:
            motion = activity.motion_um_per_min(
                previous, frame, cells | previous_cells, pixel_um, interval, activity.flow_factor(pixel_um)
            )
        elif previous is not None:
            raise ValueError(
                f"{source} is {frame.shape[1]}x{frame.shape[0]} px but the previous frame of its group was "
                f"{previous.shape[1]}x{previous.shape[0]}; group the frames of each field (Groups module)"
            )
        state[PREVIOUS_FRAME], state[PREVIOUS_CELLS] = frame, cells
        values = {
            F_CONFLUENCE: activity.confluence(cells),
            F_MOTION: motion,
            F_ROUNDED: len(mitosis.detect_round_objects(frame, pixel_um)),
            F_PIXEL_SIZE: pixel_um,
            F_INTERVAL: interval,
        }
        for feature, value in values.items():
            workspace.measurements.add_image_measurement(self._feature(feature), value)
        if self.show_window:
            workspace.display_data.pixels = frame
            workspace.display_data.cells = cells
            workspace.display_data.statistics = [[feature, f"{value:.4g}"] for feature, value in values.items()]

    def display(self, workspace, figure):
        figure.set_subplots((3, 1))
        figure.subplot_imshow_grayscale(0, 0, workspace.display_data.pixels, title=self.image_name.value)
        figure.subplot_imshow_bw(
            1, 0, workspace.display_data.cells, title="Cell-covered area", sharexy=figure.subplot(0, 0)
        )
        figure.subplot_table(2, 0, workspace.display_data.statistics, col_labels=["Feature", "Value"])

    # -- measurement bookkeeping --------------------------------------------------------------
    def _feature(self, feature):
        return f"{CATEGORY}_{feature}_{self.image_name.value}"

    def get_measurement_columns(self, pipeline):
        return [
            ("Image", self._feature(f), COLTYPE_INTEGER if f in INTEGER_FEATURES else COLTYPE_FLOAT) for f in FEATURES
        ]

    def get_categories(self, pipeline, object_name):
        return [CATEGORY] if object_name == "Image" else []

    def get_measurements(self, pipeline, object_name, category):
        return list(FEATURES) if object_name == "Image" and category == CATEGORY else []

    def get_measurement_images(self, pipeline, object_name, category, measurement):
        if measurement in self.get_measurements(pipeline, object_name, category):
            return [self.image_name.value]
        return []
