"""phototox.live: a real pymmcore-plus ``UniMMCore`` MDA on simulated Python devices, watched.

Synthetic cells (phototox.synth.timelapse) test the machinery, not the biology.
"""

from __future__ import annotations

import csv
import logging
import time

import numpy as np
import pytest
import tifffile

pytest.importorskip("pymmcore_plus", reason="the live extra (pip install 'phototox[live]') is not installed")
import useq

from phototox.errors import PhototoxError
from phototox.live import LiveSettings, attach, check_sequence
from phototox.live.dose import Calibration, DoseLedger
from phototox.live.onsets import LiveOnsets
from phototox.live.sim import EXCITATION, LIGHT, PHASE, core_for, demo_sequence, known_onsets
from phototox.synth.timelapse import TimelapseCells, onset_frame
from phototox.timecourse.onset import OnsetSettings, frame_level

logging.getLogger("pymmcore-plus").setLevel(logging.WARNING)


@pytest.mark.slow
def test_watched_mda_warns_the_exposed_position_after_its_onset_and_no_control(tmp_path):
    from phototox.apps.live_command import DEMO_LIVE as d

    sequence = demo_sequence(d["n_frames"], d["n_controls"], d["excitation_ms"])
    core, world = core_for(sequence, d["size"], seed=0, n_cells=d["n_cells"])
    controls = [f"control{i + 1}" for i in range(d["n_controls"])]
    heard = []
    settings = LiveSettings(light=(LIGHT,), interval_min=10.0, out_dir=str(tmp_path), queue_size=10_000)
    watcher = attach(core, settings, controls=controls, callback=heard.append)
    acquired = []
    core.mda.events.frameReady.connect(lambda image, event, meta: acquired.append(event.index))
    core.mda.run(sequence)
    names = [p.name for p in sequence.stage_positions]
    truth = known_onsets(world, names)

    assert not watcher.errors and not watcher.skipped
    assert heard == watcher.onsets.warnings  # every warning was emitted, once
    assert not [w for w in heard if w.position in controls]  # fixed seed: no false warning
    exposed = [n for n in names if n not in controls]
    for name in exposed:
        onset = truth(name)
        assert onset is not None
        warned = [w for w in heard if w.position == name]
        assert warned, f"{name} (simulated onset frame {onset}) was never warned about"
        assert all(w.onset_frame >= onset and w.warned_frame > w.onset_frame for w in warned)
    # live decisions are exactly the time-course rule on the finished series, only earlier
    offline = watcher.onsets.offline()
    live = {(w.position, w.readout): w.onset_frame for w in heard}
    assert live == {k: v for k, v in offline.items() if v is not None}
    # the dose ledger is what the core did: controls none, exposed exposure x setting, never J/cm2
    assert all(watcher.ledger.total(c) == 0 for c in controls)
    for j, name in enumerate(exposed):
        assert watcher.ledger.total(name) == pytest.approx(d["n_frames"] * d["excitation_ms"][j] * 50.0)
    assert "not J/cm2" in watcher.ledger.unit
    # every frame acquired (phase and excitation), every phase frame analysed, written per position
    assert len(acquired) == d["n_frames"] * (len(names) + len(exposed))
    for name in names:
        with (tmp_path / "positions" / f"{name}.csv").open() as handle:
            assert [int(r["frame"]) for r in csv.DictReader(handle)] == list(range(d["n_frames"]))
        assert tifffile.imread(tmp_path / "maps" / f"{name}.ome.tif").shape[0] == d["n_frames"]
    report = (tmp_path / "live_report.md").read_text()
    assert all(name in report for name in names)
    assert (tmp_path / "live_readouts.png").stat().st_size > 0


def test_a_control_that_would_receive_excitation_is_refused():
    sequence = demo_sequence(4, 3, (100.0,))
    bad = list(sequence.stage_positions)
    bad[1] = bad[1].model_copy(update={"sequence": None})  # control2 falls back to phase + excitation
    sequence = sequence.model_copy(update={"stage_positions": tuple(bad)})
    core, _ = core_for(sequence, 64)
    settings = LiveSettings(controls=("control1", "control2", "control3"), light=(LIGHT,))
    with pytest.raises(PhototoxError, match="control position control2 would receive excitation"):
        check_sequence(core, sequence, settings)
    with pytest.raises(PhototoxError, match="not in the sequence"):
        check_sequence(core, sequence, LiveSettings(controls=("control1", "control2", "nope"), light=(LIGHT,)))
    with pytest.raises(PhototoxError, match="at least three control positions"):
        check_sequence(core, sequence, LiveSettings(controls=("control1", "control3"), light=(LIGHT,)))


def test_slow_analysis_skips_analysis_frames_never_acquisition_frames(tmp_path):
    phase = useq.Channel(config=PHASE, exposure=1.0)
    positions = [useq.Position(x=1000.0 * i, y=0.0, name=f"c{i}") for i in range(3)]
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 6}, channels=[phase], stage_positions=positions)
    core, _ = core_for(sequence, 64, n_cells=2)
    watcher = attach(core, LiveSettings(light=(LIGHT,), interval_min=10.0, queue_size=1), controls=["c0", "c1", "c2"])
    measure = watcher.measure

    def slow(name, t, image):
        time.sleep(0.05)
        return measure(name, t, image)

    watcher.measure = slow
    acquired = []
    core.mda.events.frameReady.connect(lambda image, event, meta: acquired.append(event.index))
    core.mda.run(sequence)
    analysed = sum(len(p.rows) for p in watcher.positions.values())
    assert len(acquired) == 18  # the camera was never held up
    assert watcher.skipped and analysed + len(watcher.skipped) == 18
    for name, t in watcher.skipped:  # a skipped frame is missing, not a value
        assert all(np.isnan(watcher.onsets.values[r][watcher.names.index(name), t]) for r in watcher.readouts)


def _series(rng, n_positions, n_frames, shift_at=None, shift=5.0):
    values = rng.normal(0, 0.1, (n_positions, n_frames))
    if shift_at is not None:
        values[-1, shift_at:] += shift
    return values


def test_frame_by_frame_onsets_equal_the_rule_on_the_finished_series_and_gaps_break_runs():
    rng = np.random.default_rng(1)
    names = [f"c{i}" for i in range(6)] + ["x"]
    settings = OnsetSettings()
    values = _series(rng, 7, 14, shift_at=6)
    live = LiveOnsets(names, names[:6], ["m"], 14, settings, {"m": 0.0})
    assert live.level == pytest.approx(frame_level(7, 14, settings))  # family: positions x readouts x run starts
    two = LiveOnsets(names, names[:6], ["m", "n"], 14, settings)
    assert two.level == pytest.approx(frame_level(2 * 7, 14, settings))  # readouts are in the family too
    fired = []
    for t in range(14):
        for p in range(7):
            live.set(p, t, {"m": values[p, t]})
        fired += [(w.onset_frame, t) for w in live.advance(t + 1)]
    fired += [(w.onset_frame, 13) for w in live.advance(14, final=True)]
    assert [f for f, _ in fired] == [live.offline()[("x", "m")]] == [6]
    assert fired[0][1] == 6 + settings.persistence - 1 + settings.smooth_frames // 2  # known as soon as final
    gap = LiveOnsets(names, names[:6], ["m"], 14, settings, {"m": 0.0})
    holes = values.copy()
    holes[-1, [7, 9, 11]] = np.nan  # skipped analysis frames of the exposed position
    for t in range(14):
        for p in range(7):
            gap.set(p, t, {"m": holes[p, t]})
    gap.advance(14, final=True)
    assert not gap.warnings or gap.warnings[0].onset_frame >= 6


def test_dose_calibration_turns_settings_into_j_per_cm2_and_refuses_extrapolation(tmp_path):
    table = tmp_path / "calibration.csv"
    table.write_text("device,property,value,mW_per_cm2\nLight,Power,0,0\nLight,Power,100,400\n")
    calibration = Calibration.read(table)
    ledger = DoseLedger((LIGHT,), calibration)
    dose = ledger.record("p", 0, EXCITATION, 100.0, {"Light.Power": 50.0}, True)
    assert dose.dose_j_cm2 == pytest.approx(200 * 100 * 1e-6)  # 200 mW/cm2 for 100 ms
    assert "J/cm2" in ledger.unit and "not" not in ledger.unit
    with pytest.raises(PhototoxError, match="outside the measured"):
        ledger.record("p", 1, EXCITATION, 100.0, {"Light.Power": 150.0}, True)
    (tmp_path / "bad.csv").write_text("device,value\nLight,1\n")
    with pytest.raises(PhototoxError, match="bad.csv: a calibration table needs the columns"):
        Calibration.read(tmp_path / "bad.csv")


def test_simulated_cells_start_damage_when_their_cumulative_dose_reaches_the_critical_dose():
    for per_frame in (0.02, 0.03, 0.05):
        cells = TimelapseCells(64, seed=0, n_cells=2)
        for _ in range(8):
            cells.step(per_frame)
        assert cells.onset == onset_frame(per_frame)
