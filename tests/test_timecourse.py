"""Time-lapse phototoxicity: frame order, intervals, doses, flow, confluence, mitosis, onsets, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from phototox.apps.cli import main
from phototox.errors import ImageInputError, ManifestError, PhototoxError
from phototox.images import natural_key
from phototox.timecourse.activity import foreground_mask, motion_um_per_min
from phototox.timecourse.io import read_doses, read_field
from phototox.timecourse.mitosis import (
    detect_round_objects,
    link_detections,
    rounding_events,
)
from phototox.timecourse.onset import (
    NO_CONTROLS,
    OnsetSettings,
    find_onsets,
    largest_unaffected_dose,
    onset_index,
)


def _texture(rng, shape=(256, 256), sigma=2.0) -> np.ndarray:
    return ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma)


# --- frames, intervals, doses -------------------------------------------------------------------


def test_frames_are_ordered_by_the_numbers_in_their_names(tmp_path, rng):
    for t in (1, 2, 10, 11, 3):
        tifffile.imwrite(tmp_path / f"pos_t{t}.tif", np.full((70, 80), t * 100, np.uint16))
    f = read_field(tmp_path, interval_min=7.5)
    assert [int(v) for v in f.frames[:, 0, 0]] == [100, 200, 300, 1000, 1100]
    assert f.times_min.tolist() == [0, 7.5, 15, 22.5, 30]
    assert sorted(["a10", "a9", "a100"], key=natural_key) == ["a9", "a10", "a100"]


@pytest.mark.parametrize(("finterval", "unit", "minutes"), [(600, "sec", 10.0), (0.25, "hour", 15.0), (3, "min", 3.0)])
def test_interval_from_imagej_metadata(tmp_path, finterval, unit, minutes):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        np.zeros((3, 70, 70), np.uint16),
        imagej=True,
        metadata={"axes": "TYX", "finterval": finterval, "tunit": unit},
    )
    assert read_field(path).interval_min == pytest.approx(minutes)
    assert read_field(path, interval_min=2.0).interval_min == 2.0  # the flag wins


def test_missing_interval_single_frame_and_mixed_sizes_are_one_line_errors(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 70, 70), np.uint16), photometric="minisblack")
    with pytest.raises(ImageInputError, match="plain.tif: no frame interval.*--interval"):
        read_field(tmp_path / "plain.tif")
    tifffile.imwrite(tmp_path / "single.tif", np.zeros((70, 70), np.uint16))
    with pytest.raises(ImageInputError, match="single.tif: a time-lapse needs at least two frames, found 1"):
        read_field(tmp_path / "single.tif", 5.0)
    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "t1.tif", np.zeros((70, 70), np.uint16))
    tifffile.imwrite(folder / "t2.tif", np.zeros((70, 90), np.uint16))
    with pytest.raises(ImageInputError, match=r"t2.tif: frame is 90x70 px but t1.tif is 70x70 px"):
        read_field(folder, 5.0)


def test_cli_errors_are_one_line_and_create_nothing(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "single.tif", np.zeros((70, 70), np.uint16))
    out = tmp_path / "out"
    code = main(
        [
            "timecourse",
            str(tmp_path / "single.tif"),
            "--interval",
            "5",
            "--pixel-size",
            "1",
            "--no-sickness",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "at least two frames" in err
    assert not out.exists()


def test_doses_file_units_and_missing_fields(tmp_path):
    path = tmp_path / "doses.csv"
    path.write_text(
        "field,irradiance_mW_per_cm2,exposure_ms,wavelength_nm,frames\na,0,50,488,\nb,100,50,488,\nc,200,20,561,10\n"
    )
    doses = read_doses(path, ["a", "b", "c"], {"a": 30, "b": 30, "c": 30})
    assert doses["a"].is_control and not doses["b"].is_control
    assert doses["b"].per_frame_j_cm2 == pytest.approx(100e-3 * 50e-3)  # W/cm2 x s = J/cm2
    assert doses["b"].total_j_cm2 == pytest.approx(30 * 0.005)
    assert doses["c"].cumulative_j_cm2(12)[-3:] == pytest.approx([0.004 * 10] * 3)  # exposure stops at frame 10
    with pytest.raises(ManifestError, match="doses.csv: no dose for field.*d"):
        read_doses(path, ["a", "b", "c", "d"], {"a": 30, "b": 30, "c": 30, "d": 30})
    with pytest.raises(ManifestError, match="field 'c' is not among the inputs"):
        read_doses(path, ["a", "b"], {"a": 30, "b": 30})


# --- activity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("dy", "dx"), [(0, 2), (3, 4), (-5, 0)])
def test_flow_recovers_a_known_translation(rng, dy, dx):
    image = _texture(rng, (256, 256), 3.0) * 1000 + 30000
    moved = np.roll(image, (dy, dx), axis=(0, 1))
    cells = np.zeros(image.shape, bool)
    cells[32:-32, 32:-32] = True  # away from the wrapped edges
    speed = motion_um_per_min(image, moved, cells, pixel_um=0.5, interval_min=10.0, factor=2)
    assert speed == pytest.approx(np.hypot(dy, dx) * 0.5 / 10.0, rel=0.15)


def test_confluence_matches_a_known_mask(rng):
    truth = np.zeros((300, 300), bool)
    for cy, cx, r in ((60, 70, 30), (180, 200, 45), (240, 60, 25), (90, 230, 35)):
        yy, xx = np.ogrid[:300, :300]
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    image = 30000 + rng.normal(0, 30, truth.shape) + truth * _texture(rng, truth.shape, 1.0) * 3000
    mask = foreground_mask(image, pixel_um=1.0)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.8  # measured 0.84: the closing rounds off the discs' texture edges
    assert mask.mean() == pytest.approx(truth.mean(), abs=0.05)  # the texture window widens edges by ~3 px
    empty = foreground_mask(30000 + rng.normal(0, 30, truth.shape), pixel_um=1.0)
    assert empty.mean() < 0.05  # flat noise is not half full


# --- mitosis ------------------------------------------------------------------------------------


def _division_stack(starts: list[int], persistent_at: int, n_frames: int = 20, seed: int = 0):
    """Isolated cells on a grid: cell k rounds up at ``starts[k]`` for 4 frames, then two daughters.

    One more cell stays round from ``persistent_at`` to the end (an arrested or dying cell).
    """
    from phototox.synth import _healthy_cell, phase_contrast
    from phototox.synth_timelapse import _mitotic_cell

    size, centres = 384, [(80, 80), (80, 300), (300, 80), (300, 300), (190, 190)]
    frames = []
    for t in range(n_frames):
        phi = np.zeros((size, size))
        labels = np.zeros((size, size), np.int32)
        for k, (cy, cx) in enumerate(centres):
            start = starts[k] if k < len(starts) else persistent_at
            rounded = start <= t < start + 4 or (k == len(starts) and t >= persistent_at)
            if rounded:
                _mitotic_cell(phi, cy, cx, 14.0)
            elif t >= start + 4:
                for dy in (-14, 14):
                    _healthy_cell(phi, labels, 1, cy + dy, cx, 0.7, np.random.default_rng((k, dy + 20)))
            else:
                _healthy_cell(phi, labels, 1, cy, cx, 1.0, np.random.default_rng(k))
        frames.append(phase_contrast(phi, np.random.default_rng((seed, t))))
    return np.stack(frames)


@pytest.mark.slow
@pytest.mark.parametrize("starts", [[3, 7, 11, 15], [2, 5, 9, 12]])
def test_mitosis_detector_counts_synthetic_divisions(starts):
    from phototox.synth_timelapse import PIXEL_UM

    stack = _division_stack(starts, persistent_at=4)
    detections = [detect_round_objects(frame, PIXEL_UM) for frame in stack]
    events, persistent = rounding_events(link_detections(detections, PIXEL_UM, 12.0), 10.0, 90.0)
    assert sorted(e.start for e in events) == starts
    assert all(e.end - e.start + 1 == 4 for e in events)
    assert len(persistent) == 1  # the cell that stays round is not a division


@pytest.mark.slow
def test_mitosis_detector_recall_on_crowded_synthetic_series():
    """Crowded, overlapping synthetic cells: measured recall 7/11 at +-1 frame; guard against regressions."""
    from phototox.synth_timelapse import PIXEL_UM, render_dose_series

    found, truth_total, matched = 0, 0, 0
    for seed in (1, 2, 3):
        stack, truth = render_dose_series(24, 256, 0.0, seed=seed, n_cells=8)
        detections = [detect_round_objects(frame, PIXEL_UM) for frame in stack]
        events, _ = rounding_events(link_detections(detections, PIXEL_UM, 12.0), 10.0, 90.0)
        starts = [e.start for e in events]
        real = [t for t in truth["divisions"] if t > 0]
        truth_total += len(real)
        found += len(starts)
        matched += sum(1 for t in real if any(abs(s - t) <= 1 for s in starts))
    assert truth_total >= 5
    assert matched / truth_total >= 0.5
    assert found <= truth_total


# --- onsets -------------------------------------------------------------------------------------


def test_change_point_finds_a_known_step(rng):
    settings = OnsetSettings(n_boot=0, persistence=3)
    controls = rng.normal(0, 1, (4, 40))
    exposed = rng.normal(0, 1, (2, 40))
    exposed[:, 20:] -= 4.0
    # the running median may move the step one frame early; persistence may move it later
    assert 18 <= onset_index(exposed, controls, settings) <= 22
    exposed[:, 20:] += 4.0
    false = sum(
        onset_index(rng.normal(0, 1, (2, 40)), rng.normal(0, 1, (4, 40)), settings) is not None for _ in range(30)
    )
    assert false <= 3


def test_onset_interval_and_no_controls(rng):
    times = np.arange(40) * 10.0
    values = rng.normal(0, 1, (6, 40))
    values[4:, 25:] += 5.0
    groups = ["control"] * 4 + ["1 J/cm2"] * 2
    onsets, _ = find_onsets({"m": values}, groups, "control", times, OnsetSettings(n_boot=200))
    (onset,) = onsets
    assert onset.time_min == pytest.approx(250, abs=20) and onset.direction == "above controls"
    assert onset.low_min <= onset.time_min <= (onset.high_min or np.inf) and onset.found_fraction > 0.9
    onsets, _ = find_onsets({"m": values}, ["a"] * 6, None, times, OnsetSettings(n_boot=10))
    assert onsets[0].time_min is None and onsets[0].note == NO_CONTROLS


def test_largest_unaffected_dose():
    assert largest_unaffected_dose({0.1: None, 0.2: None, 0.4: 100.0}) == 0.2
    assert largest_unaffected_dose({0.1: 200.0, 0.2: 250.0, 0.4: 100.0}) == 0.2
    assert largest_unaffected_dose({0.1: 200.0, 0.2: 150.0}) == 0.1


def test_persistence_is_an_hour_of_frames_unless_given():
    from phototox.timecourse.onset import OnsetSettings

    assert OnsetSettings().persistence_frames(10.2) == 6
    assert OnsetSettings().persistence_frames(30.0) == 3  # never fewer than 3 frames
    assert OnsetSettings().persistence_frames(1.0) == 60
    assert OnsetSettings(persistence=4).persistence_frames(10.2) == 4
    assert OnsetSettings().for_interval(20.0).persistence == 3


# --- worker processes -----------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_processes_measure_the_same_as_one_process(tmp_path):
    """Fields measured in two spawned processes give exactly the serial measures, in field order."""
    import csv
    import io
    import json

    from phototox.synth_timelapse import write_dose_series

    doses = write_dose_series(tmp_path / "series", irradiances=(0.0, 0.0, 400.0), n_frames=8, size=192, seed=3)
    fields = sorted(str(p) for p in (tmp_path / "series").glob("field*.tif"))
    docs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        common = ["--doses", str(doses), "--no-sickness", "--bootstrap", "0", "--quiet"]
        assert main(["timecourse", *fields, *common, "--out", str(out), "--workers", str(workers)]) == 0
        docs[workers] = json.loads((out / "timecourse.json").read_text())
        assert docs[workers]["run_time"]["activity_workers"] == workers
        docs[workers]["csv"] = (out / "timecourse.csv").read_text()
    assert docs[1]["csv"] == docs[2]["csv"]
    rows = list(csv.DictReader(io.StringIO(docs[1]["csv"])))
    assert len({row["field"] for row in rows}) == 3
    for measure in ("confluence", "motion_um_per_min"):
        values = np.array([float(row[measure]) for row in rows if row[measure]])
        assert len(values) >= 3 * 7 and np.ptp(values) > 0, f"the fixture's {measure} must vary"


def test_workers_below_one_are_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["timecourse", str(tmp_path), "--no-sickness", "--workers", "0", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "--workers" in err
    assert not out.exists()


def test_a_failing_worker_stops_the_run_and_counts_no_progress(rng):
    """The first field that fails in a worker raises in the caller; failed fields advance no progress."""
    from phototox.timecourse.io import TimeField
    from phototox.timecourse.pipeline import TimecourseSettings, measure_activities

    frames = np.stack([_texture(rng, (96, 96)) for _ in range(3)]).astype(np.float32)
    fields = [TimeField(f"f{k}", frames, 10.0, "memory") for k in range(3)]
    done: list[int] = []
    with pytest.raises(ValueError, match="unknown flow method"):
        measure_activities(fields, 1.0, TimecourseSettings(workers=2, flow_method="bogus"), done.append)
    assert done == []
    with pytest.raises(PhototoxError, match="workers must be >= 1"):
        measure_activities(fields, 1.0, TimecourseSettings(workers=0))
