"""MeasureCellActivity in the real ``cellprofiler`` command: a time-lapse grouped by field.

Known answers: a field whose content moves 3 px per frame at 0.65 um/px and 10 min per frame moves
at 0.195 um/min; a still field does not move; the first frame of each group has no motion, also
when the previous image set belongs to another field.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import tifffile
from cellprofiler_support import run_cellprofiler
from conftest import REPO

pytest.importorskip("cellprofiler_core", reason="CellProfiler is not installed (pip install -e '.[cellprofiler]')")
pytest.importorskip("skimage", reason="the activity measures need the timecourse extra (scikit-image)")

PIPELINE = REPO / "example_pipelines" / "measure_cell_activity.cppipe"
SHIFT_PX, PIXEL_UM, INTERVAL_MIN, FRAMES = 3, 0.65, 10.0, 4


@pytest.fixture(scope="module")
def timelapse(tmp_path_factory):
    """Two fields of four frames: 'moving' (content shifts 3 px per frame) and 'still'."""
    from phototox.synth.fields import render_field

    folder = tmp_path_factory.mktemp("timelapse")
    for name, step, seed in (("moving", SHIFT_PX, 5), ("still", 0, 6)):
        big = render_field(300, 360 + SHIFT_PX * FRAMES, 0.0, seed=seed).image
        for t in range(FRAMES):
            frame = big[:, step * t : step * t + 360]
            tifffile.imwrite(folder / f"{name}_t{t:02d}.tif", np.round(frame).astype(np.uint16))
    return folder


@pytest.mark.slow
def test_activity_per_frame_in_a_real_cellprofiler_run(timelapse, tmp_path):
    done = run_cellprofiler(PIPELINE, timelapse, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "Image.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * FRAMES

    def value(row, feature):
        text = row[f"Activity_{feature}_Phase"]
        return float(text) if text not in ("", "nan", "NaN") else math.nan

    by_field = {}
    for row in rows:
        by_field.setdefault(row["Metadata_Field"], []).append(row)
    assert sorted(by_field) == ["moving", "still"]
    expected = SHIFT_PX * PIXEL_UM / INTERVAL_MIN  # 0.195 um/min
    for field, field_rows in by_field.items():
        field_rows.sort(key=lambda r: int(r["Metadata_Frame"]))
        motion = [value(r, "MotionUmPerMin") for r in field_rows]
        assert math.isnan(motion[0]), f"{field}: the first frame of a group has no previous frame"
        if field == "moving":
            assert all(abs(m - expected) < 0.2 * expected for m in motion[1:]), motion  # measured 0.17-0.19
        else:
            assert all(m < 0.1 * expected for m in motion[1:]), motion
        confluence = [value(r, "Confluence") for r in field_rows]
        assert all(0.0 < c < 1.0 for c in confluence)
        assert max(confluence) - min(confluence) < 0.05  # the same cells, shifted
        assert all(int(r["Activity_RoundedCells_Phase"]) >= 0 for r in field_rows)
        assert {value(r, "PixelSizeUm") for r in field_rows} == {PIXEL_UM}
        assert {value(r, "FrameIntervalMin") for r in field_rows} == {INTERVAL_MIN}
