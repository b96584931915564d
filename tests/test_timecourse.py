"""Time-lapse phototoxicity: frame order, intervals, doses, flow, confluence, mitosis, onsets, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
from scipy import ndimage, stats

from phototox.apps.cli import main
from phototox.errors import ImageInputError, ManifestError, PhototoxError
from phototox.io.images import natural_key
from phototox.timecourse.activity import foreground_mask, frame_change, motion_um_per_min
from phototox.timecourse.io import read_doses, read_field
from phototox.timecourse.mitosis import (
    detect_round_objects,
    link_detections,
    rounding_events,
)
from phototox.timecourse.onset import (
    NO_CONTROLS,
    TOO_FEW_CONTROLS,
    OnsetSettings,
    field_onsets,
    find_onsets,
    first_run,
    frame_level,
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


def test_frame_change_grows_with_motion_and_ignores_brightness_contrast_and_empty_area(rng):
    image = _texture(rng, (256, 256), 3.0) * 1000 + 30000
    cells = np.zeros(image.shape, bool)
    cells[32:-32, 32:-32] = True
    changes = [frame_change(image, np.roll(image, (0, d), axis=(0, 1)), cells, 12.0) for d in (0, 1, 2, 4)]
    assert changes[0] == 0.0 and all(a < b for a, b in itertools.pairwise(changes))  # more motion, more change
    moved = np.roll(image, (0, 2), axis=(0, 1))
    # a brighter frame with higher contrast (lamp, camera gain) changes nothing: each frame is flattened on its own
    assert frame_change(image, 1.7 * moved + 500, cells, 12.0) == pytest.approx(changes[2], rel=1e-4)
    # normalised by the active area: the same cells beside more empty background give the same value
    wide = np.full((256, 512), 30000.0) + rng.normal(0, 1, (256, 512))
    wide_moved = wide.copy()
    wide[:, :256], wide_moved[:, :256] = image, moved
    wide_cells = np.zeros(wide.shape, bool)
    wide_cells[:, :256] = cells
    assert frame_change(wide, wide_moved, wide_cells, 12.0) == pytest.approx(changes[2], rel=0.25)
    assert np.isnan(frame_change(image, moved, np.zeros_like(cells), 12.0))


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
    from phototox.synth.fields import _healthy_cell, phase_contrast
    from phototox.synth.timelapse import _mitotic_cell

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
    from phototox.synth.timelapse import PIXEL_UM

    stack = _division_stack(starts, persistent_at=4)
    detections = [detect_round_objects(frame, PIXEL_UM) for frame in stack]
    events, persistent = rounding_events(link_detections(detections, PIXEL_UM, 12.0), 10.0, 90.0)
    assert sorted(e.start for e in events) == starts
    assert all(e.end - e.start + 1 == 4 for e in events)
    assert len(persistent) == 1  # the cell that stays round is not a division


@pytest.mark.slow
def test_mitosis_detector_recall_on_crowded_synthetic_series():
    """Crowded, overlapping synthetic cells: measured recall 7/11 at +-1 frame; guard against regressions."""
    from phototox.synth.timelapse import PIXEL_UM, render_dose_series

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


def _null_fields(rng, n: int, frames: int = 37) -> np.ndarray:
    """Healthy fields: own offset and drift, autocorrelated frame noise (no effect anywhere)."""
    t = np.arange(frames)
    noise = np.cumsum(rng.normal(0, 0.02, (n, frames)), axis=1) * 0.5 + rng.normal(0, 0.02, (n, frames))
    return rng.normal(0, 0.15, (n, 1)) + rng.normal(0.005, 0.003, (n, 1)) * t + noise


def test_an_exposed_field_that_departs_is_found_after_its_true_onset(rng):
    settings = OnsetSettings()
    controls = _null_fields(rng, 6)
    exposed = _null_fields(rng, 2)
    exposed[:, 20:] -= 0.1 * np.arange(1, 18)  # cells detach from frame 20 (log confluence)
    found = field_onsets(exposed, controls, settings)
    for index, sign in found:
        assert index is not None and 20 <= index <= 32 and sign == -1


def test_false_onsets_hold_the_family_wise_rate_on_null_series(rng):
    """Family-wise over frames and exposed fields: at most 5% of null experiments show any onset."""
    settings = OnsetSettings(persistence=1)  # the least protected setting
    false = 0
    for _ in range(100):
        values = _null_fields(rng, 7)
        false += any(i is not None for i, _ in field_onsets(values[4:], values[:4], settings))
    assert false <= 5
    assert frame_level(3, 37, settings) == pytest.approx(0.05 / (3 * (37 - 3 - 1 + 1)))


def test_controls_are_other_fields_never_earlier_frames_of_the_same_field(rng):
    """A field whose own early frames differ from its later ones (every field shifts at frame 20, e.g.
    a medium change) but that moves with the control fields shows no onset."""
    controls = _null_fields(rng, 5)
    common = np.where(np.arange(37) >= 20, 1.0, 0.0)
    exposed = controls[:2].mean(axis=0, keepdims=True) + 0.01 * rng.normal(size=(1, 37))
    assert field_onsets(exposed + common, controls + common, OnsetSettings())[0][0] is None


def test_a_run_must_keep_one_direction():
    assert first_run(np.array([0, 1, -1, 1, 1, 0]), 2) == 3
    assert first_run(np.array([1, -1, 1, -1]), 2) is None
    assert first_run(np.array([0, 0, -1]), 1) == 2


def test_onsets_per_field_and_no_controls(rng):
    times = np.arange(40) * 10.0
    values = rng.normal(0, 0.01, (7, 40))
    values[5:, 25:] += 1.0
    groups = ["control"] * 4 + ["1 J/cm2"] * 3
    names = [f"f{i}" for i in range(7)]
    onsets = find_onsets({"m": values}, groups, "control", times, OnsetSettings(), names=names)
    assert [o.field for o in onsets] == ["f4", "f5", "f6"]
    assert onsets[0].time_min is None
    for o in onsets[1:]:
        assert o.time_min == pytest.approx(250, abs=20) and o.direction == "above controls"
    onsets = find_onsets({"m": values}, ["a"] * 7, None, times, OnsetSettings())
    assert onsets[0].time_min is None and onsets[0].note == NO_CONTROLS
    onsets = find_onsets({"m": values}, ["control"] + ["a"] * 6, "control", times, OnsetSettings())
    assert onsets[0].note == TOO_FEW_CONTROLS


def test_dose_verdicts_on_fields_as_units(rng):
    """Growth nearly stopped at the top dose: that dose is not shown harmless, the sensitivity shown; a dose like
    the controls is harmless (non-inferior) only then; equally toxic doses are never all harmless."""
    from phototox.timecourse.dose_verdicts import dose_verdicts, field_summary

    frames = 37
    growth = {"control": 1.0, "low": 1.0, "high": 0.2}
    groups = [g for g in growth for _ in range(4)]
    rate = [np.log(1.6) * growth[g] * (1 + rng.normal(0, 0.05)) for g in groups]
    conf = np.stack([0.3 * np.exp(r * np.linspace(0, 1, frames)) for r in rate])
    doses = {"control": 0.0, "low": 1.0, "high": 2.0}
    assert field_summary("confluence", conf[0], 3) == pytest.approx(np.exp(rate[0] * 34 / 36), rel=1e-6)
    tests = dose_verdicts({"confluence": conf}, groups, [str(i) for i in range(12)], doses, 3, 0.2)["confluence"]
    assert not isinstance(tests, str) and tests.sensitive
    verdicts = {d.dose: d.verdict for d in tests.doses}
    assert verdicts == {1.0: "harmless (non-inferior)", 2.0: "not shown harmless"}
    assert tests.no_observed_effect_dose == 1.0
    both_toxic = [g if g != "low" else "high" for g in groups]
    doses_toxic = {"control": 0.0, "high": 2.0}
    tests = dose_verdicts({"confluence": conf}, both_toxic, [str(i) for i in range(12)], doses_toxic, 3, 0.2)
    assert all(d.verdict != "harmless (non-inferior)" for d in tests["confluence"].doses)


# --- worker processes -----------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_processes_measure_the_same_as_one_process(tmp_path):
    """Fields measured in two spawned processes give exactly the serial measures, in field order."""
    import csv
    import io
    import json

    from phototox.synth.timelapse import write_dose_series

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


def test_margin_changes_the_no_observed_effect_dose(rng):
    """Growth 10% below the controls at the low dose: harmless within a 20% margin, not within 5%."""
    from phototox.timecourse.dose_verdicts import dose_verdicts

    growth = {"control": 1.0, "low": 0.9, "high": 0.2}
    groups = [g for g in growth for _ in range(5)]
    rate = [np.log(1.6) * growth[g] * (1 + rng.normal(0, 0.02)) for g in groups]
    conf = np.stack([0.3 * np.exp(r * np.linspace(0, 1, 37)) for r in rate])
    doses = {"control": 0.0, "low": 1.0, "high": 2.0}
    names = [str(i) for i in range(len(groups))]
    noel = {
        margin: dose_verdicts({"confluence": conf}, groups, names, doses, 3, margin)[
            "confluence"
        ].no_observed_effect_dose
        for margin in (0.2, 0.05)
    }
    assert noel == {0.2: 1.0, 0.05: None}


@pytest.mark.parametrize(("option", "value"), [("--margin", "0"), ("--false-onset-rate", "1.5")])
def test_bad_margin_or_false_onset_rate_is_a_one_line_error(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    code = main(["timecourse", str(tmp_path), "--no-sickness", option, value, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and option in err
    assert not out.exists()


def test_the_frame_level_divides_alpha_over_the_exposed_fields():
    """A departure between the levels for 1 and for 8 exposed fields is an onset only when alone."""
    settings = OnsetSettings()
    frames = 20
    controls = np.zeros((5, frames))
    controls[:, 3:] = (np.arange(5) - 2.0)[:, None]  # spread from frame 3 on; SD sqrt(2.5)
    sd, k = np.sqrt(2.5), 5

    def half(n_fields: int) -> float:
        level = frame_level(n_fields, frames, settings)
        return float(stats.t.ppf(1 - level / 2, k - 1) * sd * np.sqrt(1 + 1 / k))

    assert half(8) > half(1)
    departing = np.zeros((1, frames))
    departing[0, 3:] = (half(1) + half(8)) / 2
    alone = field_onsets(departing, controls, settings)
    among_eight = field_onsets(np.vstack([departing, np.zeros((7, frames))]), controls, settings)
    assert alone[0][0] is not None
    assert among_eight[0][0] is None
