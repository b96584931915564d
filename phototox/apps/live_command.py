"""``phototox watch`` (a useq MDA sequence on a Micro-Manager config or the simulator) and
``phototox demo --live`` (a short simulated acquisition with controls)."""

from __future__ import annotations

import gc
import logging
import time
from datetime import timedelta
from pathlib import Path

from phototox.apps.options import add_out
from phototox.errors import PhototoxError
from phototox.extras import require_extra
from phototox.io.planned import check_outputs

DEMO_LIVE: dict = {"size": 192, "n_cells": 16, "n_frames": 20, "n_controls": 6, "excitation_ms": (500.0,)}
"""The simulated acquisition of ``phototox demo --live`` (and the end-to-end test)."""


def _require_live():

    require_extra("live", "live acquisition (phototox watch, demo --live)")
    logging.getLogger("pymmcore-plus").setLevel(logging.WARNING)  # not one log line per event


def _light(text: str) -> tuple[str, str]:
    device, _, prop = text.partition(".")
    if not device or not prop:
        raise PhototoxError(f"--light {text!r}: give DEVICE.PROPERTY, e.g. 'Light.Power'")
    return device, prop


def _read_sequence(path: str):
    import useq

    p = Path(path)
    if not p.is_file():
        raise PhototoxError(f"{p}: no such sequence file")
    try:
        return useq.MDASequence.from_file(p)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PhototoxError(f"{p}: not a useq MDA sequence ({first})") from None


def run_watch(core, sequence, settings, truth_world=None) -> tuple[object, dict | None]:
    """Attach, check the sequence, run it to the end (blocking), print each warning as it fires."""
    from phototox.live import attach, check_sequence
    from phototox.live.outputs import summary

    check_sequence(core, sequence, settings)
    watcher = attach(core, settings, callback=lambda w: print(w.message(), flush=True))
    if truth_world is not None:
        from phototox.live.sim import known_onsets
        from phototox.live.watcher import position_names

        watcher.truth = known_onsets(truth_world, position_names(sequence))
    start = time.perf_counter()
    core.mda.run(sequence)
    if watcher.failed:
        raise PhototoxError(watcher.failed)
    doc = summary(watcher)
    seconds = time.perf_counter() - start
    print(
        f"phototox watch: {sum(p['analysed_frames'] for p in doc['positions'])} frames analysed in {seconds:.1f} s, "
        f"{doc['skipped_analysis_frames']} analysis frames skipped (acquisition frames never are)"
    )
    print(f"dose: {doc['dose_unit']}")
    for p in doc["positions"]:
        warned = (
            ", ".join(
                f"{w['readout']} from frame {w['onset_frame']} (known at {w['known_at_frame']})" for w in p["warnings"]
            )
            or "no warning"
        )
        truth = (
            ""
            if truth_world is None
            else (
                f"; simulated onset frame {p['simulated_onset_frame']}"
                if p["simulated_onset_frame"] is not None
                else "; simulated: never damaged"
            )
        )
        print(f"  {p['position']:<10} {p['role']:<8} dose {p['dose_total']:.4g}: {warned}{truth}")
    for error in doc["errors"][:5]:
        print(f"problem: {error}")
    if settings.out_dir:
        print(f"wrote {settings.out_dir}/live_report.md (and per-position CSVs, maps, dose.csv, warnings.csv)")
    return watcher, doc


def _run_and_release(core, run) -> int:
    """Run, then free the core before the interpreter exits (a core with a Python camera still alive
    at interpreter shutdown aborts the process in pymmcore-plus 0.17), also after a refusal."""

    message = ""
    try:
        run()
    except PhototoxError as error:
        message = str(error)
    core.unloadAllDevices()
    del core, run
    gc.collect()
    if message:
        raise PhototoxError(message)
    return 0


def _settings(args, controls, light):
    from phototox.live import LiveSettings
    from phototox.timecourse.onset import OnsetSettings

    return LiveSettings(
        controls=tuple(controls),
        light=(light,),
        analysis_channel=args.analysis_channel,
        calibration=args.calibration,
        model=args.model,
        stride=args.stride,
        interval_min=args.interval,
        pixel_um=args.pixel_size,
        out_dir=args.out,
        queue_size=args.queue,
        onset=OnsetSettings(alpha=args.alpha),
    )


def watch_command(args) -> int:
    """Run a sequence on a Micro-Manager configuration or the simulator, watching it."""
    _require_live()

    sequence = _read_sequence(args.sequence)
    if args.out:
        check_outputs([Path(args.out) / "live_report.md"], [args.sequence])
    world = None
    if args.config:
        from pymmcore_plus import CMMCorePlus

        core = CMMCorePlus()
        try:
            core.loadSystemConfiguration(args.config)
        except Exception as error:
            raise PhototoxError(
                f"{args.config}: Micro-Manager could not load it ({str(error).splitlines()[0]})"
            ) from None
        light = _light(args.light) if args.light else None
    else:
        from phototox.live.sim import LIGHT, core_for

        core, world = core_for(sequence, args.sim_size, args.seed, n_cells=args.sim_cells)
        light = _light(args.light) if args.light else LIGHT
        planned = sequence.time_plan.interval.total_seconds() / 60 if sequence.time_plan is not None else 0.0
        if args.interval is None:
            args.interval = planned or 10.0  # simulated minutes between frames
        # the simulator runs the time plan without waiting: its time is simulated
        plan = (
            sequence.time_plan.model_copy(update={"interval": timedelta(0)}) if sequence.time_plan is not None else None
        )
        sequence = sequence.model_copy(update={"time_plan": plan})
    if light is None:
        raise PhototoxError("name the excitation light's setting: --light DEVICE.PROPERTY")
    return _run_and_release(core, lambda: run_watch(core, sequence, _settings(args, args.control, light), world))


def demo_live(args) -> int:
    """``phototox demo --live``: a short simulated acquisition with controls; warnings against known onsets."""
    _require_live()
    from phototox.live import LiveSettings
    from phototox.live.sim import LIGHT, core_for, demo_sequence

    out = Path(args.out)
    check_outputs([out / "live_report.md"], [])
    d = DEMO_LIVE
    sequence = demo_sequence(d["n_frames"], d["n_controls"], d["excitation_ms"])
    core, world = core_for(sequence, d["size"], args.seed, n_cells=d["n_cells"])
    controls = [f"control{i + 1}" for i in range(d["n_controls"])]
    print(
        f"phototox demo --live: simulated microscope (UniMMCore, Python devices), {len(controls)} control positions "
        f"without excitation, {len(d['excitation_ms'])} exposed, {d['n_frames']} frames of 10 simulated min; "
        "synthetic cells (phototox.synth.timelapse), not real ones"
    )
    settings = LiveSettings(
        controls=tuple(controls), light=(LIGHT,), interval_min=10.0, out_dir=str(out), queue_size=10_000
    )
    return _run_and_release(core, lambda: run_watch(core, sequence, settings, world))


def register(sub) -> None:
    """The ``watch`` command."""
    p = sub.add_parser(
        "watch", help="watch a Micro-Manager acquisition (useq sequence) live; warn when positions depart from controls"
    )
    p.add_argument("sequence", help="useq MDA sequence (.yaml/.json), e.g. example_pipelines/live_sequence.yaml")
    p.add_argument("--config", help="Micro-Manager configuration (.cfg); default: the simulated microscope")
    p.add_argument(
        "--control",
        action="append",
        default=[],
        required=True,
        help="name of a control position (no excitation); give it once per control, at least twice",
    )
    p.add_argument("--light", help="the excitation setting as DEVICE.PROPERTY (simulator: Light.Power)")
    p.add_argument("--analysis-channel", help="channel config of the phase frames to analyse (default: the first)")
    p.add_argument("--calibration", help="CSV device,property,value,mW_per_cm2 from a power meter: doses in J/cm2")
    p.add_argument("--model", default=None, help="add DeadNet's P(sick) with this model ('default'); slower")
    p.add_argument("--stride", type=int, default=32, help="P(sick) dense-map stride in pixels (default 32)")
    p.add_argument("--interval", type=float, help="frame interval in minutes (default: the sequence's time plan)")
    p.add_argument("--pixel-size", type=float, help="um per pixel (default: the core's pixel-size configuration)")
    p.add_argument("--queue", type=int, default=8, help="analysis frames that may wait (beyond: analysis skipped)")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise false-warning rate (default 0.05)")
    add_out(p, "folder for the incremental outputs and the final report")
    p.add_argument("--seed", type=int, default=0, help="simulator: seed of the synthetic cells")
    p.add_argument("--sim-size", type=int, default=192, help="simulator: frame size in pixels (default 192)")
    p.add_argument("--sim-cells", type=int, default=16, help="simulator: cells per field (default 16)")
    p.set_defaults(func=watch_command)
