"""A simulated microscope in pure Python for ``UniMMCore`` (pymmcore-plus): camera, XY stage,
excitation light source with a power setting, shutter (``pip install phototox[live]``).

The camera renders :class:`phototox.synth.timelapse.TimelapseCells` at the stage position nearest
to the stage (one population of cells per position); the light source delivers
``power % x SIM_FULL_POWER_MW_CM2`` mW/cm2 while the shutter is open, so the dose a position's cells
receive is the light the acquisition really sent there, and damage starts when their cumulative dose
reaches the synthetic biology's critical dose (the same dose-response as ``phototox demo``'s
time-lapses). Synthetic cells test the machinery; they are no validation of the biology.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import useq
from pymmcore_plus.experimental.unicore import (
    GenericDevice,
    ShutterDevice,
    SimpleCameraDevice,
    UniMMCore,
    XYStageDevice,
    pymm_property,
)

from phototox.synth.timelapse import PIXEL_UM, TimelapseBiology, TimelapseCells

SIM_FULL_POWER_MW_CM2 = 400.0
"""Irradiance at the sample of the simulated light source at 100 % power (its calibration)."""
PHASE, EXCITATION = "Phase", "Excitation"
CHANNEL_GROUP = "Channel"
LIGHT = ("Light", "Power")


@dataclass
class World:
    """State shared by the simulated devices: stage, shutter, light, cells per position."""

    positions: list[tuple[float, float]]
    size: int = 256
    seed: int = 0
    n_cells: int = 8
    biology: TimelapseBiology = field(default_factory=TimelapseBiology)
    xy: tuple[float, float] = (0.0, 0.0)
    shutter_open: bool = False
    power: float = 0.0
    exposure_ms: float = 10.0
    cells: dict[int, TimelapseCells] = field(default_factory=dict)
    pending_dose: dict[int, float] = field(default_factory=dict)  # J/cm2 since the last phase frame
    delivered: dict[int, float] = field(default_factory=dict)  # J/cm2 in total

    def position_index(self) -> int:
        """The position nearest to the stage."""
        d = [np.hypot(self.xy[0] - x, self.xy[1] - y) for x, y in self.positions]
        return int(np.argmin(d))

    def onset_frame(self, index: int) -> int | None:
        """Known onset (phase frame index) of a position's cells, or None."""
        cells = self.cells.get(index)
        return None if cells is None else cells.onset


class SimCamera(SimpleCameraDevice):
    """Renders the cells under the stage; an excitation frame delivers light and shows a dim field."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def sensor_shape(self) -> tuple[int, int]:
        return (self.world.size, self.world.size)

    def dtype(self):
        return np.uint16

    def get_exposure(self) -> float:
        return self.world.exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self.world.exposure_ms = float(exposure)

    def snap(self, buffer: np.ndarray) -> dict:
        w = self.world
        i = w.position_index()
        irradiance = SIM_FULL_POWER_MW_CM2 * w.power / 100 if w.shutter_open else 0.0
        dose = irradiance * w.exposure_ms * 1e-6
        w.delivered[i] = w.delivered.get(i, 0.0) + dose
        if dose > 0:  # excitation: the light reaches the cells; the image is a dim background
            w.pending_dose[i] = w.pending_dose.get(i, 0.0) + dose
            buffer[:] = 100
            return {"sim_dose_j_cm2": dose}
        cells = w.cells.get(i)
        if cells is None:
            cells = w.cells[i] = TimelapseCells(w.size, w.seed * 1000 + i, w.n_cells, w.biology)
        buffer[:] = cells.step(w.pending_dose.pop(i, 0.0))
        return {"sim_onset_frame": -1 if cells.onset is None else cells.onset}


class SimStage(XYStageDevice):
    """An XY stage that moves instantly."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def set_position_um(self, x: float, y: float) -> None:
        self.world.xy = (float(x), float(y))

    def get_position_um(self) -> tuple[float, float]:
        return self.world.xy

    def home(self) -> None:
        self.world.xy = (0.0, 0.0)

    def stop(self) -> None:
        pass

    def set_origin(self) -> None:
        pass

    def set_origin_x(self) -> None:
        pass

    def set_origin_y(self) -> None:
        pass


class SimShutter(ShutterDevice):
    """The excitation shutter."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def get_open(self) -> bool:
        return self.world.shutter_open

    def set_open(self, open: bool) -> None:
        self.world.shutter_open = bool(open)


class SimLight(GenericDevice):
    """An excitation light source with a power setting in % (its only property)."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    @pymm_property(limits=(0.0, 100.0), name="Power")
    def power(self) -> float:
        return self.world.power

    @power.setter  # type: ignore[no-redef]
    def power(self, value: float) -> None:
        self.world.power = float(value)


class SimCore(UniMMCore):
    """``UniMMCore`` whose pixel size is the simulated camera's (a pixel-size configuration of the
    C++ core cannot name Python devices)."""

    def __init__(self) -> None:
        quiet = logging.getLogger("pymmcore-plus")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # no Micro-Manager installation is needed for Python devices
        try:
            super().__init__()
        finally:
            quiet.setLevel(level)

    def _do_snap_image(self) -> None:
        """Open the shutter around the exposure when auto-shutter is on, as the C++ core does for its cameras."""
        shutter = self.getShutterDevice() if self.getAutoShutter() else ""
        if shutter:
            self._do_shutter_open(shutter, True)
        try:
            super()._do_snap_image()
        finally:
            if shutter:
                self._do_shutter_open(shutter, False)

    def getPixelSizeUm(self, cached: bool = False) -> float:
        return PIXEL_UM


def make_core(
    positions: list[tuple[float, float]],
    size: int = 256,
    seed: int = 0,
    excitation_power: float = 50.0,
    n_cells: int = 8,
) -> tuple[UniMMCore, World]:
    """A ``UniMMCore`` with the simulated devices, pixel size ``PIXEL_UM`` and a ``Channel`` group.

    Presets: ``Phase`` (light at 0 %) and ``Excitation`` (light at ``excitation_power`` %). The
    shutter is the core's shutter with auto-shutter on, so light reaches the sample only during an
    exposure.
    """
    world = World(list(positions), size, seed, n_cells)
    core = SimCore()
    core.loadPyDevice("Camera", SimCamera(world))
    core.loadPyDevice("XY", SimStage(world))
    core.loadPyDevice("Shutter", SimShutter(world))
    core.loadPyDevice(LIGHT[0], SimLight(world))
    for label in ("Camera", "XY", "Shutter", LIGHT[0]):
        core.initializeDevice(label)
    core.setCameraDevice("Camera")
    core.setXYStageDevice("XY")
    core.setShutterDevice("Shutter")
    core.setAutoShutter(True)
    core.defineConfig(CHANNEL_GROUP, PHASE, LIGHT[0], LIGHT[1], "0")
    core.defineConfig(CHANNEL_GROUP, EXCITATION, LIGHT[0], LIGHT[1], f"{excitation_power:g}")
    core.setChannelGroup(CHANNEL_GROUP)
    return core, world


def demo_sequence(
    n_frames: int = 18,
    n_controls: int = 4,
    excitation_ms: tuple[float, ...] = (100.0, 200.0),
    interval_s: float = 0.0,
    phase_ms: float = 10.0,
) -> useq.MDASequence:
    """A multi-position time-lapse: phase + excitation everywhere except the controls.

    The main sequence images ``Phase`` and then ``Excitation``; each control position has a
    sub-sequence with ``Phase`` only (no excitation), and each exposed position a sub-sequence
    with its own excitation exposure. Positions are 1 mm apart.
    """
    phase = useq.Channel(config=PHASE, exposure=phase_ms)
    positions = [
        useq.Position(x=1000.0 * i, y=0.0, name=f"control{i + 1}", sequence=useq.MDASequence(channels=(phase,)))
        for i in range(n_controls)
    ]
    for j, ms in enumerate(excitation_ms):
        sub = useq.MDASequence(channels=(phase, useq.Channel(config=EXCITATION, exposure=ms)))
        positions.append(useq.Position(x=1000.0 * (n_controls + j), y=0.0, name=f"exposed{j + 1}", sequence=sub))
    return useq.MDASequence(
        time_plan=useq.TIntervalLoops(interval=timedelta(seconds=interval_s), loops=n_frames),
        channels=(phase, useq.Channel(config=EXCITATION, exposure=max(excitation_ms, default=100.0))),
        stage_positions=tuple(positions),
        axis_order=("t", "p", "c"),
    )


def core_for(
    sequence: useq.MDASequence, size: int = 256, seed: int = 0, excitation_power: float = 50.0, n_cells: int = 8
) -> tuple[UniMMCore, World]:
    """:func:`make_core` with one simulated field at each stage position of ``sequence``."""
    xy = [(float(p.x or 0.0), float(p.y or 0.0)) for p in sequence.stage_positions] or [(0.0, 0.0)]
    return make_core(xy, size, seed, excitation_power, n_cells)


def known_onsets(world: World, names: list[str]) -> Callable[[str], int | None]:
    """Position name -> the simulator's known onset frame (None: undamaged)."""
    return lambda name: world.onset_frame(names.index(name))
