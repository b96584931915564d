"""
MeasurePhototoxicity
====================

**MeasurePhototoxicity** tells, from one label-free phase-contrast image,
whether the cells look harmed by the light used to image them, and where.

It slides the DeadNet classifier (Richmond et al., 2017) over the image,
turns the window outputs into a sickness map at the image's size (the
probability that the cells around each pixel are sick), and measures the
mean sick probability, the fraction of the area above a threshold and an
image-level class with its confidence. Optionally it also measures each
object (for example cells from **IdentifyPrimaryObjects** or a label image
loaded by **NamesAndTypes**): the mean sick probability of the map under
it, which describes the cell's *neighbourhood* (see below), not the cell.

The computation is done by the *phototox* Python package (the same code as
its command line, Fiji bridge and bioimage.io package), which must be
installed in the Python environment that runs CellProfiler; see
``example_pipelines/README.md``.

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           YES
============ ============ ===============

See also
^^^^^^^^

**IdentifyPrimaryObjects**, **SaveImages** (save the map as a 32-bit
floating point TIFF), **ExportToSpreadsheet**.

What do I need as input?
^^^^^^^^^^^^^^^^^^^^^^^^

A grayscale phase-contrast (or other transmitted-light) image at least
220 x 220 pixels. Colour images whose channels differ are refused with an
error. Brightness and bit depth do not matter: every 220 px window is
normalised to zero mean and unit variance before it is classified.

What do I get as output?
^^^^^^^^^^^^^^^^^^^^^^^^

An image (the sickness map, values 0-1, same size as the input) and the
measurements below. If the input image has a mask, the image measurements
use only the unmasked pixels.

Measurements made by this module
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

**Image measurements** (``Phototoxicity_<Feature>_<Image>``):

-  *MeanSickProbability:* mean of the sickness map.
-  *SickAreaFraction:* fraction of pixels whose sick probability is at
   or above the threshold.
-  *Class:* 1 if MeanSickProbability is at or above the threshold (the
   cells are called sick), else 0 (healthy).
-  *Confidence:* probability of the called class (MeanSickProbability for
   sick, 1 - MeanSickProbability for healthy).
-  *PixelSizeUm*, *PixelSizeAssumed*, *ModelPixelSizeUm:* the image's pixel
   size used (from the setting), 1 when it was not given and the model's was
   assumed, and the model's own. The image is resampled to the model's pixel
   size before it is analysed.
-  *DomainScore*, *FineDetail*, *OutOfDomain:* how unlike the model's
   training images the image is, how fine its detail is (it rises when cells
   look smaller than in training, e.g. a wrong pixel size), and 1 when either
   is beyond the model's limits: the numbers above are then not trustworthy
   (another microscope, stain or cell type, or a wrong pixel size;
   ``phototox calibrate`` on your control fields refits the check).

**Object measurements** (``Phototoxicity_<Feature>_<Image>``):

-  *NeighbourhoodSickProbability:* mean of the map over the object's
   pixels. Every map value comes from 220 px windows (about 95 um at
   0.434 um/px), which hold several cells; the value is therefore the
   sickness of the area around the object, shared with its neighbours, and
   not a verdict on that cell. There is no per-object class for that
   reason, and no per-cell labels exist to validate one. Use it to ask
   where in the field damage is, and the image measurements for the call.

Technical notes
^^^^^^^^^^^^^^^

*Exact* mode classifies every window; *Dense* mode runs the network once
over the whole image (its fully connected layers recast as convolutions),
which is many times faster and agrees closely with exact mode. The model is
loaded once per run and its GPU memory is released at the end of the run.

The shipped model was trained on U2OS cells killed by a drug
(camptothecin), not by light; see the model card (``models/MODEL_CARD.md``)
for what its numbers mean and fine-tune on your own images where you can.

References
^^^^^^^^^^

-  Richmond D, Jost AP-T, Lake T, Spiller D, Baker J, Vass J (2017)
   "DeadNet: Identifying phototoxicity from label-free microscopy images of
   cells using deep ConvNets." arXiv:1701.06109.
   (`link <https://doi.org/10.48550/arXiv.1701.06109>`__)
-  La Greca AD, Perez N, et al. (2021) "celldeath: a tool for detection of
   cell death in transmitted light microscopy images by deep learning-based
   visual recognition." PLoS ONE 16(6): e0253666 (training data of the
   shipped model). (`link <https://doi.org/10.1371/journal.pone.0253666>`__)
"""

import logging

import numpy
from cellprofiler_core.constants.measurement import COLTYPE_FLOAT, COLTYPE_INTEGER
from cellprofiler_core.image import Image
from cellprofiler_core.module import Module
from cellprofiler_core.setting import Binary, ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.subscriber import ImageSubscriber, LabelSubscriber
from cellprofiler_core.setting.text import Directory, Filename, Float, ImageName, Integer, Text

LOGGER = logging.getLogger(__name__)

CATEGORY = "Phototoxicity"
F_NEIGHBOURHOOD = "NeighbourhoodSickProbability"
try:  # the one result schema names the measurements (a light import: no torch)
    from phototox.schema import COLUMNS

    IMAGE_FEATURES = tuple(c.cellprofiler for c in COLUMNS if c.cellprofiler)
except ImportError:  # phototox missing: validation says so; nothing is measured
    COLUMNS, IMAGE_FEATURES = (), ()


def image_measurements(row: dict) -> dict:
    """CellProfiler's image measurements of a result row (:meth:`FrameResult.summary`), by the schema.

    Classes and flags become 0/1, the pixel-size source ``PixelSizeAssumed`` (1 unless the user
    gave it), unknown numbers NaN.
    """
    out = {}
    for c in COLUMNS:
        if not c.cellprofiler:
            continue
        value = row.get(c.name)
        if c.name == "label":
            value = int(value == "sick")
        elif c.name == "pixel_size_source":
            value = int(value != "user")
        elif c.kind is bool:
            value = int(bool(value))
        out[c.cellprofiler] = float("nan") if value is None else value
    return out


OBJECT_FEATURES = (F_NEIGHBOURHOOD,)
INTEGER_FEATURES = tuple(
    c.cellprofiler for c in COLUMNS if c.cellprofiler and (c.kind is bool or c.name in ("label", "pixel_size_source"))
)
try:  # the one default shared by every phototox front end (no torch import)
    from phototox.defaults import DEFAULT_STRIDE
except ImportError:  # phototox missing: validation says so
    DEFAULT_STRIDE = 32

MODEL_SHIPPED = "Shipped default model"
MODEL_FILE = "Model file (.pt or bioimage.io .zip) in a folder"
MODEL_CUSTOM = "Weights file, bioimage.io package or zoo id"
"""Typed as text: a zoo id, a URL, or a path (kept for pipelines of revision 1 and 2)."""
MODE_DENSE = "Dense (fast)"
MODE_EXACT = "Exact (every window)"
DEVICE_AUTO = "GPU if available, else CPU"
DEVICE_CPU = "CPU"
DEVICE_GPU = "GPU (CUDA)"
DEVICES = {DEVICE_AUTO: "auto", DEVICE_CPU: "cpu", DEVICE_GPU: "cuda"}

INSTALL_HINT = (
    "the phototox package is not installed in the Python environment running CellProfiler "
    "(pip install phototox from its repository; see example_pipelines/README.md)"
)


def _phototox():
    """Import phototox (and with it torch) only when the module is used, not when plugins load."""
    try:
        import phototox.maps.inference
        import phototox.maps.settings
        import phototox.models.architectures
        import phototox.models.loader
        import phototox.trust.assess

        return phototox
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT}: {exc}") from exc


class MeasurePhototoxicity(Module):
    module_name = "MeasurePhototoxicity"
    category = "Measurement"
    variable_revision_number = 5
    doi = {
        "Please cite the following when using MeasurePhototoxicity:": "https://doi.org/10.48550/arXiv.1701.06109",
        "If you use the shipped model, also cite its training data:": "https://doi.org/10.1371/journal.pone.0253666",
    }

    def create_settings(self):
        self.image_name = ImageSubscriber(
            "Select the phase-contrast image",
            "None",
            doc="Choose the grayscale phase-contrast image whose cells you want to check for light damage.",
        )
        self.map_name = ImageName(
            "Name the output sickness map",
            "SicknessMap",
            doc="Name of the output image: per-pixel probability (0-1) that the cells there are sick.",
        )
        self.model_choice = Choice(
            "Model",
            [MODEL_SHIPPED, MODEL_FILE, MODEL_CUSTOM],
            doc=f"""\
*{MODEL_SHIPPED}* uses the model that comes with phototox. *{MODEL_FILE}*
picks a phototox weight file (.pt) or bioimage.io package (.zip) with a folder
and a file name (portable: the folder can be relative to the default input or
output folder). *{MODEL_CUSTOM}* takes typed text: a bioimage.io zoo id or URL
(downloaded once, then cached), another shipped model by name (``phototox models``
lists them) or a path.""",
        )
        self.model_location = Text(
            "Model file, package or zoo id",
            "",
            doc="A shipped model's name (e.g. 'deadnet-gap-synthetic-v2'), the path of a .pt weight file or "
            "bioimage.io package, or a zoo id such as 'affable-shark'.",
        )
        self.stride = Integer(
            "Window stride (pixels)",
            DEFAULT_STRIDE,
            minval=1,
            doc="""\
Step between neighbouring 220 px windows. Smaller is finer and slower. Dense
mode needs a stride that divides 16 or is a multiple of 16 (e.g. 8, 16, 32, 64).""",
        )
        self.mode = Choice(
            "Map mode",
            [MODE_DENSE, MODE_EXACT],
            doc="Dense runs the network once over the image; exact classifies every window separately.",
        )
        self.threshold = Float(
            "Sick probability threshold",
            0.5,
            minval=0.01,
            maxval=0.99,
            doc="Pixels and objects at or above this sick probability count as sick.",
        )
        self.device = Choice(
            "Compute device",
            list(DEVICES),
            doc="Where the network runs. Choosing GPU on a machine without a CUDA GPU gives an error.",
        )
        self.wants_objects = Binary(
            "Measure objects too?",
            False,
            doc="Select *Yes* to measure, for each object, the mean sick probability of the map under it "
            "(NeighbourhoodSickProbability: the area around the object, from 220 px windows).",
        )
        self.objects_name = LabelSubscriber(
            "Select the objects to measure",
            "None",
            doc="Objects (for example cells) whose pixels are averaged on the sickness map.",
        )
        self.model_directory = Directory(
            "Folder of the model file",
            Directory.static_join_string("Default Input Folder", ""),
            doc="""\
Folder holding the model file. Choose it relative to the default input or output
folder (or an elsewhere path) so the pipeline moves between machines.""",
        )

        def get_directory():
            return self.model_directory.get_absolute_path()

        def set_directory(path):
            choice, custom = self.model_directory.get_parts_from_path(path)
            self.model_directory.join_parts(choice, custom)

        self.model_file = Filename(
            "Model file",
            "model.pt",
            get_directory_fn=get_directory,
            set_directory_fn=set_directory,
            browse_msg="Choose a phototox .pt weight file or bioimage.io package (.zip)",
            exts=[
                ("phototox weights (*.pt)", "*.pt"),
                ("bioimage.io package (*.zip)", "*.zip"),
                ("All files (*.*)", "*.*"),
            ],
            doc="A phototox .pt weight file or a bioimage.io package .zip in the folder above.",
        )
        self.threads = Integer(
            "Torch threads per worker",
            1,
            minval=1,
            doc="""\
CPU threads each CellProfiler worker gives the network. CellProfiler runs one
worker per core; one thread each (the default) uses every core without
oversubscribing them. Raise it when you run a single worker.""",
        )
        self.pixel_size = Float(
            "Pixel size (micrometres per pixel; 0: assume the model's)",
            0.0,
            minval=0.0,
            maxval=20.0,
            doc="""\
The size of one pixel in the specimen, in micrometres (camera pixel size divided
by the total magnification). The image is resampled to the pixel size the model
was trained at before it is analysed, and the map is returned at the image's
size, so P(sick) does not change with magnification. 0 assumes the model's pixel
size (0.434 um for the shipped model) and records PixelSizeAssumed = 1: set it
whenever your objective or camera differs.""",
        )
        self.wants_reference = Binary(
            "Compare with a reference of your control fields?",
            False,
            doc="""\
Select *Yes* to add an 'unlike your controls' map and measurements from a
reference made with ``phototox reference CONTROLS... --out reference.npz`` on
your own control fields (no light, same cells, same microscope, same model).
It marks windows whose features differ from every control field, for any
reason: it is not a sickness measure. UnlikeControlsFraction is the fraction
of windows beyond the reference's line (with a 95% interval), and a field like
the controls crosses that line at most UnlikeControlsRate of the time.""",
        )

        def get_reference_directory():
            return self.reference_directory.get_absolute_path()

        def set_reference_directory(path):
            choice, custom = self.reference_directory.get_parts_from_path(path)
            self.reference_directory.join_parts(choice, custom)

        self.reference_directory = Directory(
            "Folder of the reference file",
            Directory.static_join_string("Default Input Folder", ""),
            doc="Folder holding the reference .npz (relative to the default input or output folder).",
        )
        self.reference_file = Filename(
            "Reference file",
            "reference.npz",
            get_directory_fn=get_reference_directory,
            set_directory_fn=set_reference_directory,
            browse_msg="Choose an 'unlike your controls' reference (.npz from phototox reference)",
            exts=[("phototox reference (*.npz)", "*.npz"), ("All files (*.*)", "*.*")],
            doc="The .npz written by ``phototox reference`` with the same model.",
        )
        self.unlike_map_name = ImageName(
            "Name the output 'unlike your controls' map",
            "UnlikeControlsMap",
            doc="Window novelty divided by the reference's line: above 1, unlike your controls (not 'sick').",
        )
        self._predictor = None
        self._predictor_key = None
        self._assessor = None
        self._reference_key = None

    def settings(self):
        return [
            self.image_name,
            self.map_name,
            self.model_choice,
            self.model_location,
            self.stride,
            self.mode,
            self.threshold,
            self.device,
            self.wants_objects,
            self.objects_name,
            self.threads,
            self.model_directory,
            self.model_file,
            self.pixel_size,
            self.wants_reference,
            self.reference_directory,
            self.reference_file,
            self.unlike_map_name,
        ]

    def visible_settings(self):
        result = [self.image_name, self.map_name, self.model_choice]
        if self.model_choice.value == MODEL_CUSTOM:
            result.append(self.model_location)
        elif self.model_choice.value == MODEL_FILE:
            result += [self.model_directory, self.model_file]
        result += [self.pixel_size, self.stride, self.mode, self.threshold, self.device, self.threads]
        result.append(self.wants_objects)
        if self.wants_objects.value:
            result.append(self.objects_name)
        result.append(self.wants_reference)
        if self.wants_reference.value:
            result += [self.reference_directory, self.reference_file, self.unlike_map_name]
        return result

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        if variable_revision_number > self.variable_revision_number:
            raise ValueError(
                f"MeasurePhototoxicity settings revision {variable_revision_number} is newer than this "
                f"plugin ({self.variable_revision_number}); update phototox"
            )
        if variable_revision_number == 1:  # 10 settings; revision 2 adds torch threads per worker
            setting_values = [*list(setting_values), "1"]
            variable_revision_number = 2
        if variable_revision_number == 2:  # 11 settings; revision 3 adds the model folder and file pickers
            setting_values = [
                *list(setting_values),
                Directory.static_join_string("Default Input Folder", ""),
                "model.pt",
            ]
            variable_revision_number = 3
        if variable_revision_number == 3:  # 13 settings; revision 4 adds the pixel size (0: the model's)
            setting_values = [*list(setting_values), "0.0"]
            variable_revision_number = 4
        if variable_revision_number == 4:  # 14 settings; revision 5 adds the 'unlike your controls' reference
            setting_values = [
                *list(setting_values),
                "No",
                Directory.static_join_string("Default Input Folder", ""),
                "reference.npz",
                "UnlikeControlsMap",
            ]
            variable_revision_number = 5
        return setting_values, variable_revision_number

    def volumetric(self):
        return False

    # -- model --------------------------------------------------------------------------------
    def _model_spec(self):
        if self.model_choice.value == MODEL_SHIPPED:
            return "default"
        if self.model_choice.value == MODEL_FILE:
            import os

            return os.path.join(self.model_directory.get_absolute_path(), self.model_file.value)
        return self.model_location.value.strip()

    def _model_setting(self):
        return {MODEL_CUSTOM: self.model_location, MODEL_FILE: self.model_file}.get(
            self.model_choice.value, self.model_choice
        )

    def _mode(self):
        return "dense" if self.mode.value == MODE_DENSE else "exact"

    def get_predictor(self):
        """Load the model once per run (per worker) and keep it for every image set."""
        key = (self._model_spec(), DEVICES[self.device.value])
        if self._predictor is None or self._predictor_key != key:
            phototox = _phototox()
            import torch

            torch.set_num_threads(int(self.threads.value))
            self._predictor = phototox.maps.inference.Predictor.from_spec(key[0], key[1])
            self._predictor_key = key
        return self._predictor

    def get_assessor(self):
        """The predictor with the model's pixel size and domain check (phototox.trust.assess); warnings go to the log."""
        predictor = self.get_predictor()
        if self._assessor is None or self._assessor.predictor is not predictor:
            setting = self.pixel_size.text.split(" (")[0]
            self._assessor = _phototox().assess.Assessor(
                predictor, warn=LOGGER.warning, pixel_size_hint=f"set MeasurePhototoxicity's '{setting}' setting"
            )
            self._reference_key = None
        key = self._reference_path() if self.wants_reference.value else None
        if key != self._reference_key:  # load the reference once per run (and when the setting changes)
            novelty = None
            if key is not None:
                novelty = _phototox().novelty.NoveltyReference.load(key)
                novelty.check_model(predictor.model)
            self._assessor.novelty = novelty
            self._reference_key = key
        return self._assessor

    def _reference_path(self):
        import os

        return os.path.join(self.reference_directory.get_absolute_path(), self.reference_file.value)

    def validate_module(self, pipeline):
        if self.model_choice.value == MODEL_CUSTOM and not self.model_location.value.strip():
            raise ValidationError("Enter a model file, package or zoo id", self.model_location)
        try:
            phototox = _phototox()
        except ImportError as exc:
            raise ValidationError(str(exc), self.model_choice) from None
        try:
            phototox.maps.devices.resolve_device(DEVICES[self.device.value])
        except phototox.errors.PhototoxError as exc:
            raise ValidationError(str(exc), self.device) from None
        problem = self.model_problem()
        if problem:
            raise ValidationError(problem, self._model_setting())
        try:  # settings only: the model is loaded once, when the run starts (not on every keystroke)
            phototox.maps.settings.MapSettings(
                stride=int(self.stride.value), mode=self._mode(), threshold=float(self.threshold.value)
            )
        except phototox.errors.PhototoxError as exc:
            raise ValidationError(str(exc), self.stride) from None

    def model_problem(self):
        """Why the model setting cannot work, checked cheaply (no loading, no download, no folders made)."""
        phototox = _phototox()
        try:  # the loader's own rule: every registry name, file, package, zoo id or URL it accepts
            phototox.models.loader.spec_kind(self._model_spec())
        except phototox.errors.PhototoxError as exc:
            return f"Model: {exc}"
        return ""

    def prepare_run(self, workspace):
        """Load the model before the first image set: a bad model stops the run with one line."""
        problem = self.model_problem()
        if problem:
            raise ValueError(f"MeasurePhototoxicity: {problem}")
        import os

        if self.wants_reference.value and not os.path.isfile(self._reference_path()):
            raise ValueError(f"MeasurePhototoxicity: reference {self._reference_path()}: no such file")
        return True

    # -- running ------------------------------------------------------------------------------
    def run(self, workspace):
        phototox = _phototox()
        image_name = self.image_name.value
        image = workspace.image_set.get_image(image_name)
        pixels = image.pixel_data
        source = f"MeasurePhototoxicity: image '{image_name}'"
        if image.volumetric or (pixels.ndim == 3 and pixels.shape[-1] not in (3, 4)):
            raise ValueError(f"{source} is a 3-D volume; MeasurePhototoxicity works on 2-D images only")
        predictor = self.get_predictor()
        try:
            try:
                frames = phototox.io.images.as_grey_frames(pixels, source, min_size=predictor.window)
            except phototox.errors.ImageInputError as exc:
                if "colour" not in str(exc):
                    raise
                raise ValueError(
                    f"{source} is a colour image whose channels differ; convert it to grey "
                    f"(ColorToGray) and choose the grey image in the setting "
                    f"'{self.image_name.text}'"
                ) from exc
            assessor = self.get_assessor()
            user_um = float(self.pixel_size.value) or None
            size = assessor.pixel_size(user_um, None)
            settings = phototox.maps.settings.MapSettings(
                stride=int(self.stride.value), mode=self._mode(), threshold=float(self.threshold.value)
            )
            mask = image.mask if image.has_mask else None
            result = assessor.analyse(frames[0], settings, size, source, mask=mask)[0]
        except phototox.errors.PhototoxError as exc:
            raise ValueError(str(exc)) from exc
        sick_map = result.sick_map
        wanted = set(self._image_features())
        measurements = {k: v for k, v in image_measurements(result.summary()).items() if k in wanted}
        for feature, value in measurements.items():
            workspace.measurements.add_image_measurement(self._feature(feature), value)
        workspace.image_set.add(
            self.map_name.value, Image(sick_map.astype(numpy.float32), parent_image=image, convert=False)
        )
        if result.novelty_map is not None:
            workspace.image_set.add(
                self.unlike_map_name.value,
                Image(result.novelty_map.astype(numpy.float32), parent_image=image, convert=False),
            )
        statistics = [
            [image_name, feature, f"{value:.3f}" if isinstance(value, float) else str(value)]
            for feature, value in measurements.items()
        ]
        if self.wants_objects.value:
            objects = workspace.object_set.get_objects(self.objects_name.value)
            labels = objects.segmented
            if labels.shape != sick_map.shape:
                raise ValueError(
                    f"MeasurePhototoxicity: objects '{self.objects_name.value}' have shape {labels.shape} but "
                    f"image '{image_name}' has shape {sick_map.shape}; they must match"
                )
            means, ids = phototox.maps.inference.object_means(sick_map, labels)
            per_object = numpy.full(objects.count, numpy.nan)
            per_object[ids - 1] = means
            workspace.measurements.add_measurement(self.objects_name.value, self._feature(F_NEIGHBOURHOOD), per_object)
            statistics.append(
                [
                    self.objects_name.value,
                    "neighbourhood P(sick), median of objects",
                    f"{numpy.nanmedian(per_object):.3f}" if objects.count else "no objects",
                ]
            )
        if self.show_window:
            workspace.display_data.pixels = frames[0]
            workspace.display_data.sick_map = sick_map
            workspace.display_data.statistics = statistics

    def post_run(self, workspace):
        """Free the model and any GPU memory it holds."""
        if self._predictor is not None:
            self._predictor.release()
        self._predictor = None
        self._predictor_key = None
        self._assessor = None
        self._reference_key = None

    def display(self, workspace, figure):
        figure.set_subplots((3, 1))
        figure.subplot_imshow_grayscale(0, 0, workspace.display_data.pixels, title=self.image_name.value)
        figure.subplot_imshow(
            1,
            0,
            workspace.display_data.sick_map,
            title=self.map_name.value,
            colormap="magma",
            vmin=0,
            vmax=1,
            sharexy=figure.subplot(0, 0),
        )
        figure.subplot_table(2, 0, workspace.display_data.statistics, col_labels=["Image/objects", "Feature", "Value"])

    # -- measurement bookkeeping --------------------------------------------------------------
    def _feature(self, feature):
        return f"{CATEGORY}_{feature}_{self.image_name.value}"

    def _image_features(self) -> list[str]:
        """The image features this module measures: the 'unlike your controls' ones only with a reference."""
        return [f for f in IMAGE_FEATURES if self.wants_reference.value or not f.startswith("UnlikeControls")]

    def get_measurement_columns(self, pipeline):
        columns = [
            ("Image", self._feature(f), COLTYPE_INTEGER if f in INTEGER_FEATURES else COLTYPE_FLOAT)
            for f in self._image_features()
        ]
        if self.wants_objects.value:
            columns += [
                (self.objects_name.value, self._feature(f), COLTYPE_INTEGER if f in INTEGER_FEATURES else COLTYPE_FLOAT)
                for f in OBJECT_FEATURES
            ]
        return columns

    def get_categories(self, pipeline, object_name):
        if object_name == "Image" or (self.wants_objects.value and object_name == self.objects_name.value):
            return [CATEGORY]
        return []

    def get_measurements(self, pipeline, object_name, category):
        if category != CATEGORY:
            return []
        if object_name == "Image":
            return self._image_features()
        if self.wants_objects.value and object_name == self.objects_name.value:
            return list(OBJECT_FEATURES)
        return []

    def get_measurement_images(self, pipeline, object_name, category, measurement):
        if measurement in self.get_measurements(pipeline, object_name, category):
            return [self.image_name.value]
        return []
