"""P(sick) and activity overlapped in one pool of workers (issue 30): the same numbers as one process."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from phototox.apps.cli import main

SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"


@pytest.mark.slow
def test_overlapped_sickness_and_activity_equal_the_serial_run(tmp_path):
    """Ten frames per field: each field's P(sick) is split over two jobs (8 + 2 frames), reassembled in order."""
    from phototox.synth.timelapse import write_dose_series
    from phototox.timecourse.overlap import SICK_BATCH

    n_frames = 10
    assert SICK_BATCH < n_frames < 2 * SICK_BATCH  # a job boundary inside every field
    doses = write_dose_series(tmp_path / "series", irradiances=(0.0, 0.0, 600.0), n_frames=n_frames, size=240, seed=5)
    fields = sorted(str(p) for p in (tmp_path / "series").glob("field*.tif"))
    tables = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        common = ["--doses", str(doses), "--model", SYNTH_MODEL, "--device", "cpu", "--bootstrap", "0", "--quiet"]
        assert main(["timecourse", *fields, *common, "--out", str(out), "--workers", str(workers)]) == 0
        assert json.loads((out / "timecourse.json").read_text())["run_time"]["activity_workers"] == workers
        tables[workers] = list(csv.DictReader(io.StringIO((out / "timecourse.csv").read_text())))
    assert [(r["field"], r["frame"]) for r in tables[1]] == [(r["field"], r["frame"]) for r in tables[2]]
    sick = np.array([float(r["mean_sick_probability"]) for r in tables[1]])
    assert np.ptp(sick) > 0.01, "the fixture's P(sick) must vary from frame to frame"
    for one, two in zip(tables[1], tables[2]):
        for key, value in one.items():
            try:
                assert float(two[key]) == pytest.approx(float(value), abs=1e-5), (key, one["field"], one["frame"])
            except ValueError:
                assert two[key] == value, key
