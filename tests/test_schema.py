"""One result schema: every front end's columns come from phototox.schema, and drift fails here."""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from phototox.results.analysis_requests import RESULT_KEYS, format_result
from phototox.results.outputs import SUMMARY_FIELDS
from phototox.schema import COLUMNS, Trust, column, columns

ROOT = Path(__file__).resolve().parents[1]


def test_trust_fields_are_exactly_the_trust_and_control_columns():
    assert tuple(f.name for f in fields(Trust)) == columns("trust") + columns("controls")


def test_names_are_unique_and_tables_take_every_column_in_order():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    assert tuple(names) == SUMMARY_FIELDS
    assert columns(line=True) == RESULT_KEYS


def test_result_line_carries_the_schema_keys_in_order(varying_predictor):
    from phototox.maps.settings import MapSettings
    from phototox.synth.fields import render_field
    from phototox.trust.assess import Assessor

    assessor = Assessor(varying_predictor, warn=lambda line: None)
    frame = render_field(260, 280, 0.6, seed=3).image.astype(np.float32)
    result = assessor.analyse(frame, MapSettings(stride=32), assessor.pixel_size(None))[0]
    line = format_result(result, "m")
    assert [part.split("=", 1)[0] for part in line.split(";")] == list(RESULT_KEYS)
    assert f"engine={result.engine}" in line and result.engine in ("torch", "onnxruntime")


def test_cellprofiler_measures_exactly_the_schema_columns():
    sys.path.insert(0, str(ROOT / "plugins" / "cellprofiler"))
    try:
        source = (ROOT / "plugins" / "cellprofiler" / "measurephototoxicity.py").read_text()
    finally:
        sys.path.pop(0)
    assert "IMAGE_FEATURES = tuple(c.cellprofiler for c in COLUMNS if c.cellprofiler)" in source
    # image_measurements maps a row by the schema, one value per CellProfiler column
    namespace: dict = {}
    start = source.index("def image_measurements")
    exec(
        compile(source[start : source.index("\n\n\n", start)], "image_measurements", "exec"),
        {"COLUMNS": COLUMNS},
        namespace,
    )
    row = {c.name: None for c in COLUMNS} | {"label": "sick", "pixel_size_source": "user", "out_of_domain": True}
    measured = namespace["image_measurements"](row)
    assert tuple(measured) == tuple(c.cellprofiler for c in COLUMNS if c.cellprofiler)
    assert measured["Class"] == 1 and measured["PixelSizeAssumed"] == 0 and measured["OutOfDomain"] == 1


def test_fiji_results_table_reads_only_schema_keys_under_schema_names():
    java = (ROOT / "plugins" / "fiji" / "phototox_fiji" / "java" / "phototox" / "Phototox.java").read_text()
    shown = dict(re.findall(r'table\.addValue\("(\w+)",\s*(?:"sick"\.equals\()?r\.(?:number|text)\("(\w+)"\)', java))
    assert shown, "no Results columns found in Phototox.java"
    for fiji_name, key in shown.items():
        assert key in RESULT_KEYS, f"Fiji reads {key!r}, which the result line does not carry"
        expected = column(key).fiji
        assert fiji_name in (expected, "Class"), f"Fiji shows {key} as {fiji_name}, the schema says {expected}"
    assert {c.name for c in COLUMNS if c.fiji} <= set(shown.values())
