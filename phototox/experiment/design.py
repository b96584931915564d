"""Is the experiment designed so that its answer can mean something? Checks on a doses table.

``phototox design doses.csv`` (and ``dose-response`` / ``timecourse``, before they measure) reads
either table phototox accepts -- the time-course doses file (``field, irradiance_mW_per_cm2,
exposure_ms, wavelength_nm[, frames]``) or a dose-response manifest (``path, dose[, replicate,
time]``) -- and checks, from optional columns:

* zero-light controls, imaged identically, in wells or dishes of their own (``well`` or ``dish``);
* at least :data:`MIN_DOSES` light doses;
* at least :data:`MIN_REPLICATES` independent replicates (``replicate``: dish, day, passage) per dose;
* a positive control (``positive_control`` = yes on its rows), or a highest dose expected to harm;
* a follow-up time after the exposure (``follow_up_h``; in a time-course doses file ``frames``, the
  exposed frames, when fewer than the recording's; ``time`` in a manifest);
* irradiance measured at the sample with a power meter (``power_meter`` = yes on the exposed rows);
* in a time course, at least :data:`MIN_CONTROL_POSITIONS` zero-light control positions: the line says
  how many times the controls' spread an onset must exceed at the onset rule's family-wise level.

Each missing item is one line saying what it costs the conclusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from phototox.errors import ManifestError
from phototox.io.manifest import read_manifest
from phototox.io.tables import read_csv
from phototox.stats.compare import MIN_REPLICATES, prediction_factor

MIN_DOSES = 3
YES = {"yes", "y", "true", "1", "x"}


@dataclass(frozen=True)
class Row:
    """One field or image of the design: its dose (0: control) and the optional design columns."""

    dose: float
    columns: dict[str, str]

    def get(self, key: str) -> str:
        return self.columns.get(key, "").strip()


TIMECOURSE_KEY = "_timecourse"
"""marks the rows of a time-course doses file (they get the control-positions check)"""
MIN_CONTROL_POSITIONS = 6
"""fewest zero-light positions with which time-course onsets were found on synthetic series (issue 31, #28)"""
ASSUMED_FRAMES = 37
"""frames assumed when the doses file states none (T98G's length)"""


@dataclass(frozen=True)
class Check:
    item: str
    ok: bool
    line: str


def read_design(path: str | Path) -> list[Row]:
    """Rows of a time-course doses file or a dose-response manifest (told apart by their columns)."""

    path = Path(path)
    header, _ = read_csv(path, "doses")
    columns = {h.strip().lower() for h in header}
    if "irradiance_mw_per_cm2" in columns:
        from phototox.timecourse.io import parse_doses

        return [
            Row(dose.per_frame_j_cm2, {**_lower(dose.extra), **_frames(dose, given), TIMECOURSE_KEY: "yes"})
            for _line, _name, dose, given in parse_doses(path)
        ]
    if "dose" in columns and "path" in columns:
        samples = read_manifest(path, check_files=False, require_labels=False)
        rows = []
        for line, s in enumerate(samples, start=2):
            if s.dose is None:
                raise ManifestError(f"{path}, line {line}: no dose")
            rows.append(Row(s.dose, {**_lower(s.extra), "replicate": s.replicate, "time": s.time}))
        return rows
    raise ManifestError(
        f"{path}: neither a time-course doses file (field, irradiance_mW_per_cm2, exposure_ms, wavelength_nm) "
        "nor a dose-response manifest (path, dose)"
    )


def _lower(extra: dict) -> dict[str, str]:
    return {str(k).strip().lower(): str(v) for k, v in extra.items()}


def _frames(dose, given: bool) -> dict[str, str]:
    return {"frames": str(dose.frames)} if given else {}


def check_design(rows: list[Row]) -> list[Check]:
    """The six design checks, in order, each with its line; a time course adds its control positions."""
    if not rows:
        raise ManifestError("the design table has no rows")
    controls = [r for r in rows if r.dose == 0]
    exposed = [r for r in rows if r.dose != 0]
    doses = sorted({r.dose for r in exposed})
    checks = [_controls(controls, exposed), _doses(doses)]
    checks.append(_replicates(rows))
    checks.append(_positive(rows))
    checks.append(_follow_up(exposed))
    checks.append(_power_meter(exposed))
    if any(r.get(TIMECOURSE_KEY) for r in rows):
        checks.append(_control_positions(controls, exposed))
    return checks


def _control_positions(controls: list[Row], exposed: list[Row]) -> Check:
    """How far beyond the control positions' spread an onset must lie, at the onset rule's level."""
    from phototox.timecourse.onset import OnsetSettings, frame_level

    k = len(controls)
    frames = max([int(r.get("frames")) for r in exposed if r.get("frames").isdigit()] or [ASSUMED_FRAMES])
    if k < 2:
        return Check("control positions", False, f"{k} control position(s): no onset can be tested (at least 2)")
    level = frame_level(max(1, len(exposed)), frames, OnsetSettings())
    spreads = prediction_factor(k, level)
    words = (
        f"{k} zero-light control positions: an onset must lie {spreads:.0f} times their spread beyond them "
        f"(family-wise 5% over {len(exposed)} exposed positions and ~{frames} frames)"
    )
    if k >= MIN_CONTROL_POSITIONS:
        return Check("control positions", True, words)
    return Check(
        "control positions",
        False,
        words + f"; fewer than {MIN_CONTROL_POSITIONS}: most real onsets cannot be shown (with 3, none was in "
        "benchmarks/bench_peer.py); add control positions, they cost only stage time",
    )


def _controls(controls: list[Row], exposed: list[Row]) -> Check:
    if not controls:
        return Check(
            "controls",
            False,
            "no zero-light controls: nothing to compare with, so no onset and no dose verdict can be given",
        )
    key = next((k for k in ("well", "dish") if all(r.get(k) for r in controls + exposed)), None)
    if key is None:
        return Check(
            "controls",
            False,
            f"{len(controls)} zero-light control row(s), but no well or dish column: separate wells or dishes "
            "for the controls cannot be checked (controls beside exposed positions in one dish get stray light "
            "and share medium, which hides an effect)",
        )
    shared = sorted({r.get(key) for r in controls} & {r.get(key) for r in exposed})
    if shared:
        return Check(
            "controls",
            False,
            f"controls share {key} {', '.join(shared[:3])} with exposed fields: stray light and shared medium reach "
            "them, so a difference (or its absence) may not be the light's",
        )
    return Check("controls", True, f"{len(controls)} zero-light control row(s) in {key}s of their own")


def _doses(doses: list[float]) -> Check:
    if len(doses) >= MIN_DOSES:
        return Check("doses", True, f"{len(doses)} light doses")
    return Check(
        "doses",
        False,
        f"{len(doses)} light dose(s), fewer than {MIN_DOSES}: no dose-response shape, and the no-observed-effect "
        f"dose can only be one of {len(doses)} value(s)",
    )


def _replicates(rows: list[Row]) -> Check:
    per_dose: dict[float, set[str]] = {}
    for r in rows:
        per_dose.setdefault(r.dose, set()).add(r.get("replicate"))
    fewest = min(per_dose, key=lambda d: len(per_dose[d] - {""}))
    k = len(per_dose[fewest] - {""})
    if k >= MIN_REPLICATES:
        return Check("replicates", True, f"at least {k} independent replicates per dose")
    where = "no replicate column" if k == 0 else f"{k} at dose {fewest:g}"
    return Check(
        "replicates",
        False,
        f"fewer than {MIN_REPLICATES} independent replicates (dish, day, passage) per dose ({where}): "
        "the result describes these dishes, not the biology",
    )


def _positive(rows: list[Row]) -> Check:
    if any(r.get("positive_control").lower() in YES for r in rows):
        return Check("positive control", True, "a positive control is marked")
    return Check(
        "positive control",
        False,
        "no positive control (positive_control = yes): the highest dose must show harm by itself, otherwise "
        "the assay's sensitivity is unknown and no dose can be called harmless",
    )


def _follow_up(exposed: list[Row]) -> Check:
    if exposed and all(r.get("follow_up_h") or r.get("frames") or r.get("time") for r in exposed):
        return Check("follow-up", True, "a follow-up time (or exposed frames) is given for every exposed row")
    return Check(
        "follow-up",
        False,
        "no follow-up time after exposure (follow_up_h, frames or time): damage that appears hours later "
        "(delayed death, failed divisions) is missed, and a dose can look harmless because the recording ended",
    )


def _power_meter(exposed: list[Row]) -> Check:
    if exposed and all(r.get("power_meter").lower() in YES for r in exposed):
        return Check("irradiance", True, "irradiance measured with a power meter")
    return Check(
        "irradiance",
        False,
        "irradiance not marked as measured at the sample with a power meter (power_meter = yes): doses in J/cm2 "
        "may be off by the objective's and filters' losses and do not transfer to another microscope",
    )


def design_lines(path: str | Path, missing_only: bool = False) -> list[str]:
    """One line per check (``ok`` or ``missing``), or only the missing ones."""
    checks = check_design(read_design(path))
    return [f"{'ok' if c.ok else 'missing'}: {c.item}: {c.line}" for c in checks if not (missing_only and c.ok)]
