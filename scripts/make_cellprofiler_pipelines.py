"""Regenerate the example .cppipe files from code (run after changing the module's settings).

python scripts/make_cellprofiler_pipelines.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup():
    from cellprofiler_core.preferences import set_headless, set_plugin_directory

    set_headless()
    set_plugin_directory(str(REPO / "plugins" / "cellprofiler"), globally=False)
    import cellprofiler_core.modules  # noqa: F401  (loads the plugins)


def module(name):
    from cellprofiler_core.utilities.core.modules import instantiate_module

    return instantiate_module(name)


def base_pipeline(image_filter: str, with_objects: bool):
    from cellprofiler_core.pipeline import Pipeline

    pipeline = Pipeline()
    images = module("Images")
    images.filter_choice.value = "Custom"
    images.filter.value = image_filter
    metadata = module("Metadata")
    nat = module("NamesAndTypes")
    groups = module("Groups")
    for i, m in enumerate([images, metadata, nat, groups], start=1):
        m.set_module_num(i)
        pipeline.add_module(m)
    return pipeline, nat


def main() -> None:
    setup()
    out = REPO / "example_pipelines"

    # 1. images -> MeasurePhototoxicity -> SaveImages (map) + ExportToSpreadsheet
    pipeline, nat = base_pipeline('and (extension does isimage) (file doesnot contain "_sickmap")', False)
    nat.assignment_method.value = "All images"
    nat.single_image_provider.value = "Phase"
    pipeline.add_module(measure(5))
    pipeline.add_module(save_map(6))
    pipeline.add_module(export(7))
    with open(out / "measure_phototoxicity.cppipe", "w") as handle:
        pipeline.dump(handle)

    # 2. phase image + label image (objects) -> per-object measurements
    pipeline, nat = base_pipeline("and (extension does isimage)", True)
    nat.assignment_method.value = "Images matching rules"
    nat.single_image_provider.value = "Phase"
    first = nat.assignments[0]
    first.rule_filter.value = 'and (file does contain "phase")'
    first.image_name.value = "Phase"
    nat.add_assignment()
    second = nat.assignments[1]
    second.rule_filter.value = 'and (file does contain "cells")'
    second.load_as_choice.value = "Objects"
    second.object_name.value = "Cells"
    nat.matching_choice.value = "Order"  # <field>_cells.png pairs with <field>_phase.tif
    m = measure(5)
    m.wants_objects.value = True
    m.objects_name.value = "Cells"
    pipeline.add_module(m)
    pipeline.add_module(save_map(6))
    pipeline.add_module(export(7))
    with open(out / "measure_phototoxicity_objects.cppipe", "w") as handle:
        pipeline.dump(handle)

    # 3. a time-lapse: frames <field>_t<frame>.tif grouped by field -> MeasureCellActivity per frame
    pipeline, nat = base_pipeline("and (extension does isimage)", False)
    metadata = next(m for m in pipeline.modules() if m.module_name == "Metadata")
    metadata.wants_metadata.value = True
    extraction = metadata.extraction_methods[0]
    extraction.extraction_method.value = "Extract from file/folder names"
    extraction.source.value = "File name"
    extraction.file_regexp.value = "^(?P<Field>.*)_t(?P<Frame>[0-9]+)"
    nat.assignment_method.value = "All images"
    nat.single_image_provider.value = "Phase"
    groups = next(m for m in pipeline.modules() if m.module_name == "Groups")
    groups.wants_groups.value = True
    groups.grouping_metadata[0].metadata_choice.value = "Field"
    activity = module("MeasureCellActivity")
    activity.image_name.value = "Phase"
    activity.set_module_num(5)
    pipeline.add_module(activity)
    pipeline.add_module(export(6))
    with open(out / "measure_cell_activity.cppipe", "w") as handle:
        pipeline.dump(handle)
    print(
        "wrote",
        *(
            out / n
            for n in (
                "measure_phototoxicity.cppipe",
                "measure_phototoxicity_objects.cppipe",
                "measure_cell_activity.cppipe",
            )
        ),
    )


def measure(num):
    m = module("MeasurePhototoxicity")
    m.image_name.value = "Phase"
    m.map_name.value = "SicknessMap"
    m.set_module_num(num)
    return m


def save_map(num):
    m = module("SaveImages")
    m.save_image_or_figure.value = "Image"
    m.image_name.value = "SicknessMap"
    m.file_name_method.value = "From image filename"
    m.file_image_name.value = "Phase"
    m.wants_file_name_suffix.value = True
    m.file_name_suffix.value = "_sickmap"
    m.file_format.value = "tiff"
    m.bit_depth.value = "32-bit floating point"
    m.overwrite.value = True
    m.tiff_compress.value = False  # CellProfiler 5 passes a compression tuple newer tifffile rejects
    m.set_module_num(num)
    return m


def export(num):
    m = module("ExportToSpreadsheet")
    m.wants_everything.value = True
    m.wants_prefix.value = False  # Image.csv, Cells.csv
    m.directory.dir_choice = "Default Output Folder"
    m.set_module_num(num)
    return m


if __name__ == "__main__":
    sys.exit(main())
