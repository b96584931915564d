"""The README's T98G command runs as printed, and the onsets figure says why it shows no onset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, need_usiigaci

from phototox.timecourse.measures import MEASURES, SICKNESS_MEASURES
from phototox.timecourse.onset import NO_CONTROLS, TOO_FEW_CONTROLS, Onset
from phototox.timecourse.plots import no_onset_reason, plot_onsets, y_limits

COMMAND = re.compile(r'phototox timecourse "\$\{PHOTOTOX_SHARED_DATA:-\.\./shared/data\}/usiigaci_t98g_phase/[^`\n]*')


def _flat(text: str) -> str:
    return " ".join(text.split())


def readme_t98g_command() -> str:
    """The one T98G command of README.md (every copy of it must be the same)."""
    found = set(COMMAND.findall((REPO / "README.md").read_text(encoding="utf-8")))
    assert len(found) == 1, f"README.md: expected one T98G command, found {sorted(found)}"
    return found.pop().strip()


def test_readme_command_points_at_the_data_from_a_clone():
    command = readme_t98g_command()
    assert "--no-sickness" in command and "--workers 2" in command and "--out t98g/" in command
    # with the variable unset the default is ../shared/data, i.e. next to the clone
    expanded = subprocess.run(
        ["bash", "-c", f"unset PHOTOTOX_SHARED_DATA; printf '%s' {command.split()[2]}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert expanded == "../shared/data/usiigaci_t98g_phase/frames"


@pytest.mark.slow
def test_readme_t98g_command_runs_as_printed(tmp_path):
    """Run in a folder beside the data (``PHOTOTOX_SHARED_DATA`` as the README says), as bash would."""
    need_usiigaci()
    command = readme_t98g_command()
    env = {**os.environ, "PHOTOTOX_SHARED_DATA": str(SHARED_DATA), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # `phototox` is this checkout's CLI (the console script may belong to another install)
    script = f'phototox() {{ "{sys.executable}" -m phototox "$@"; }}\n{command} --quiet'
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "t98g"
    doc = json.loads((out / "timecourse.json").read_text())
    assert len(doc["fields"]) == 4 and all(f["frames"] == 37 for f in doc["fields"])
    assert doc["pixel_size_um"] == 0.87 and doc["interval_min"] == 10.2
    assert (out / "timecourse_onsets.png").stat().st_size > 0
    why = doc["why_no_onset"]
    assert why and why.startswith(NO_CONTROLS)
    assert "between-field check" in why and "not computed (--no-sickness)" in why
    assert _flat(why) in [_flat(t) for t in doc["onsets_figure_text"]]
    # healthy quadrants of one movie show no onset against each other (persistence chosen on synthetic
    # null series, not on this recording)
    assert doc["onset_statement"].startswith("no onset can be given")
    assert doc["onset_settings"]["persistence_frames"] == 2
    checks = doc["between_field_consistency"]
    label_free = [m for m in MEASURES if m not in SICKNESS_MEASURES]  # --no-sickness
    assert len(checks) == 4 * len(label_free) and {c["measure"] for c in checks} == set(label_free)
    assert [c for c in checks if c["time_min"] is not None] == []
    assert len((out / "timecourse.csv").read_text().splitlines()) == 1 + 4 * 37


def _onsets(times: list[float | None], note: str = "") -> list[Onset]:
    return [Onset("confluence", "1 J/cm2", f"f{i}", t, "", 0.01, note) for i, t in enumerate(times)]


@pytest.mark.parametrize(
    ("onsets", "control", "expected"),
    [
        (_onsets([None, None], NO_CONTROLS), None, NO_CONTROLS),
        (_onsets([None, None], TOO_FEW_CONTROLS), "control", TOO_FEW_CONTROLS),
        (_onsets([None, None]), "control", "no onset: no exposed field departs from the control fields beyond"),
    ],
)
def test_onsets_figure_says_why_there_is_no_onset(tmp_path, onsets, control, expected):
    why = no_onset_reason(onsets, control, [], 0.05, 2)
    assert why.startswith(expected)
    texts = plot_onsets(
        onsets, ["1 J/cm2"], {"1 J/cm2": 1.0}, np.arange(10) * 10.0, ["confluence"], tmp_path / "o.png", why
    )
    assert _flat(why) in [_flat(t) for t in texts]
    assert (tmp_path / "o.png").stat().st_size > 0


def test_no_reason_when_an_onset_is_found(tmp_path):
    onsets = _onsets([None, 50.0])
    assert no_onset_reason(onsets, "control", [], 0.05, 2) == ""
    texts = plot_onsets(onsets, ["1 J/cm2"], {"1 J/cm2": 1.0}, np.arange(10) * 10.0, ["confluence"], tmp_path / "o.png")
    assert not any("no onset" in t and "beyond" in t for t in texts)


def test_between_field_check_reason_counts_departures():
    checks = [vars(o) for o in _onsets([None, 30.0, None])]
    why = no_onset_reason(_onsets([None], NO_CONTROLS), None, checks, 0.05, 2)
    assert "each of the 3 fields" in why and "1 departure(s)" in why


@pytest.mark.parametrize("measure", ["confluence", "motion_um_per_min", "mitotic_events_per_hour"])
def test_y_axis_does_not_magnify_noise(measure):
    """A flat non-negative series: the axis starts at zero and spans far more than the wiggle."""
    low, high = 0.380, 0.384
    bottom, top = y_limits(measure, low, high)
    assert bottom == 0.0 and top >= high
    assert (high - low) / (top - bottom) < 0.05
