"""Division / failed-division / persistent-round events: local decisions, invariance, truth.

Synthetic fields (phototox.synth.events) carry exact truth; the T98G annotations
(tests/data/t98g_events.csv, made by eye before tuning, docs/annotation-protocol-events.md) score
the detector on real cells (Usiigaci, Tsai et al. 2019, MIT; skipped when the data is absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import need_usiigaci

from phototox.synth.events import PIXEL_UM, add_band, render_event_field
from phototox.timecourse.event_truth import Event, in_box, match, read_events, score
from phototox.timecourse.events import events_in_stack
from phototox.timecourse.mitosis import local_contrast

ANNOTATIONS = Path(__file__).parent / "data" / "t98g_events.csv"
INTERVAL = 10.0
SCHEDULE = [(2, "division"), (4, "failed_division"), (6, "division"), (3, "failed_division"), (5, "division")]


def _truth(field) -> list[Event]:
    return [Event(e.frame, e.y, e.x, e.outcome) for e in field.events]


@pytest.fixture(scope="module")
def field():
    return render_event_field(14, 256, SCHEDULE, seed=4, bead=True)


@pytest.fixture(scope="module")
def found(field):
    return events_in_stack(field.stack, INTERVAL, PIXEL_UM)


def test_division_and_death_are_told_apart_on_synthetic_cells(field, found):
    truth = _truth(field)
    for outcome in ("division", "failed_division"):
        s = score(found, truth, (outcome,))
        assert s.true_positives == s.detected == s.annotated, (outcome, s.line())


def test_a_static_round_bead_is_no_division(field, found):
    by, bx = field.bead
    near = [e for e in found if np.hypot(e.y - by, e.x - bx) < 20]
    assert [e.outcome for e in near] == ["persistent_round"]  # seen, and not as an event that resolves


def test_brightness_and_contrast_do_not_change_events(field, found):
    changed = field.stack.astype(np.float64) * 0.4 + 9000.0  # dimmer, lower contrast, offset
    again = events_in_stack(changed, INTERVAL, PIXEL_UM)
    assert [(e.frame, e.outcome) for e in again] == [(e.frame, e.outcome) for e in found]


def test_a_bright_band_elsewhere_does_not_change_an_event():
    """Local normalisation: a textured bright band (scratch, well edge) far from a dividing cell
    leaves its round object's contrast and its event unchanged (a field-wide spread would not)."""
    base = render_event_field(10, 384, [(3, "division")], seed=7, spacing=128)
    cy, cx = base.events[0].y, base.events[0].x  # the first grid cell, near (64, 64)
    banded = add_band(base.stack, 280, 384, strength=1.5)
    yy, xx = int(cy), int(cx)
    window = (slice(yy - 15, yy + 15), slice(xx - 15, xx + 15))
    for t in (3, 4):  # round frames: the object's local contrast is unchanged
        z0 = local_contrast(base.stack[t], PIXEL_UM)[window]
        z1 = local_contrast(banded[t], PIXEL_UM)[window]
        assert np.allclose(z0, z1, rtol=0.05, atol=0.2)
    before = events_in_stack(base.stack, INTERVAL, PIXEL_UM)
    after = events_in_stack(banded, INTERVAL, PIXEL_UM)
    keep = [e for e in after if e.x < 200]
    assert [(e.frame, e.outcome) for e in keep] == [(e.frame, e.outcome) for e in before] == [(3, "division")]


@pytest.mark.slow
def test_events_are_the_same_whole_or_cut_into_quadrants():
    """A 2x2 grid of fields analysed whole and as quadrants: >= 90% of events matched, counts +-10%.

    The quadrants differ as real ones do: one has 15% of the contrast (uneven
    illumination) and one carries a bright static band, so a field-wide brightness scale would
    find different events whole and cut (it does: the mutation check in benchmarks/README.md)."""
    schedule = [(2 + (k % 6), "division" if k % 3 else "failed_division") for k in range(16)]
    whole = render_event_field(14, 512, schedule, seed=11, spacing=128)
    stack = whole.stack.astype(np.float64)
    dim = stack[:, 256:, 256:]
    stack[:, 256:, 256:] = dim.mean() + (dim - dim.mean()) * 0.15
    stack[:, :256, :] = add_band(stack[:, :256, :].astype(np.uint16), 236, 276, strength=1.5)
    stack = np.clip(stack, 0, 65535).astype(np.uint16)
    found = events_in_stack(stack, INTERVAL, PIXEL_UM)
    parts: list[Event] = []
    for y0 in (0, 256):
        for x0 in (0, 256):
            tile = stack[:, y0 : y0 + 256, x0 : x0 + 256]
            for e in events_in_stack(tile, INTERVAL, PIXEL_UM):
                parts.append(Event(e.frame, e.y + y0, e.x + x0, e.outcome))
    pairs = match(found, parts, frame_tol=1, dist_px=10)
    assert len(found) >= 12
    assert len(pairs) >= 0.9 * max(len(found), len(parts))
    assert abs(len(parts) - len(found)) <= 0.1 * len(found)
    assert sum(found[i].outcome == parts[j].outcome for i, j in pairs) >= 0.9 * len(pairs)


def test_annotation_file_reads_and_scores_itself():
    truth = read_events(ANNOTATIONS)
    assert {e.outcome for e in truth} <= {"division", "failed_division", "persistent_round", "unresolved"}
    assert all(0 <= e.x < 1024 and 0 <= e.y < 1022 and 0 <= e.frame < 37 for e in truth)
    s = score(truth, truth)
    assert s.precision == s.recall == 1.0
    shifted = [Event(e.frame + 3, e.y, e.x, e.outcome) for e in truth]  # beyond the +-2 frame tolerance
    assert score(shifted, truth).true_positives == 0


@pytest.mark.slow
def test_precision_and_recall_on_the_annotated_t98g_frames():
    """The detector against the by-eye annotations, per quadrant as the benchmark runs it.

    Guards the measured level (benchmarks/README.md) against regressions; the issue's goal (0.8 on
    the acceptance quadrants) is reported there, not asserted here.
    """
    import tifffile

    frames = sorted((need_usiigaci() / "frames").glob("*.tif"))
    stack = np.stack([tifffile.imread(p).astype(np.float32) for p in frames])
    truth = read_events(ANNOTATIONS)
    detected: list[Event] = []
    for y0, x0 in ((0, 0), (0, 512), (511, 0), (511, 512)):
        tile = stack[:, y0 : y0 + 511, x0 : x0 + 512]
        detected += [Event(e.frame, e.y + y0, e.x + x0, e.outcome) for e in events_in_stack(tile, 10.2, 0.87)]
    s = score(detected, truth)
    assert s.precision >= 0.8, s.line()
    assert s.recall >= 0.5, s.line()
    top = score([e for e in detected if e.y < 511], in_box(truth, 0, 0, 511, 1024))
    assert top.recall >= 0.75, top.line()
