"""The guided few-label loop (issue 26): suggestion order, training from votes, field-level splits.

The end-to-end test is the README walkthrough "Adapt phototox to your cells" on synthetic fields:
annotators register and vote through the app's HTTP API (never writing the database directly),
then ``phototox train --from-annotations`` and ``phototox evaluate --from-annotations`` run.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from phototox.errors import PhototoxError
from phototox.training.adapt_eval import learning_curve, leave_one_field_out
from phototox.training.suggest import choose_test_fields, slot_kind, suggest


def test_slot_kinds_keep_the_random_share_in_every_prefix_and_test_every_nth():
    for share in (0.3, 0.5):
        kinds = [slot_kind(k, 4, share) for k in range(200)]
        assert all(kinds[k] == "test" for k in range(3, 200, 4))
        train = [k for k in kinds if k != "test"]
        for j in range(1, len(train) + 1):
            assert train[:j].count("random") >= math.ceil(j * share) - 1e-9, (share, j)
        assert "suggested" in train
    with pytest.raises(ValueError):
        slot_kind(0, 4, 0.2)  # below the 30% floor


def test_test_fields_are_whole_fields_drawn_before_and_apart_from_training():
    fields = [f"f{i}" for i in range(12)]
    chosen = choose_test_fields(fields, 0.25, seed=1)
    assert len(chosen) == 3 and set(chosen) <= set(fields)
    assert chosen == choose_test_fields(list(reversed(fields)), 0.25, seed=1)  # fixed by the seed alone
    with pytest.raises(ValueError):
        choose_test_fields(["a", "b"], 0.5, 0)


def test_suggest_prefers_uncertain_then_far_from_labelled():
    features = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [0.0, 0.1]])
    p = np.array([0.5, 0.5, 0.5, 0.99])
    assert suggest(features, p, np.array([1, 2, 3]), np.array([], dtype=int)) == 1  # most uncertain, lowest index
    assert suggest(features, p, np.array([1, 2, 3]), np.array([0])) == 2  # uncertain and far from window 0
    assert suggest(features, p, np.array([1, 2, 3]), np.array([0]), shortlist=1) == 1


def test_learning_curve_and_lofo_never_put_a_field_on_both_sides():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = (x[:, 0] > 0).astype(int)
    fields = np.repeat([f"f{i}" for i in range(6)], 10)
    with pytest.raises(PhototoxError, match="both sides"):
        learning_curve(x[:40], y[:40], fields[:40], x[35:], y[35:], fields[35:])
    curve = learning_curve(x[:40], y[:40], fields[:40], x[40:], y[40:], fields[40:], sizes=(10, 25))
    assert [p["n_labelled"] for p in curve] == [10, 25, 40]
    assert curve[-1]["n_fields"] == 2 and curve[-1]["balanced_accuracy"] > 0.8
    # labels that are pure field identity cannot be predicted for an unseen field
    noise = rng.normal(size=(60, 5)) + np.repeat(rng.normal(size=(6, 5)) * 3, 10, axis=0)
    by_field = np.repeat([0, 1, 0, 1, 0, 1], 10)
    lofo = leave_one_field_out(noise, by_field, fields)
    assert lofo["n_fields"] == 6 and lofo["balanced_accuracy"] < 0.9


# -- the walkthrough, end to end ------------------------------------------------------------------
def _synth_fields(folder: Path, n_per_dose: int = 5) -> dict[str, int]:
    from phototox.io.images import write_tiff_atomic
    from phototox.synth.fields import render_field

    truth = {}
    for d, dose in enumerate((0.0, 1.0)):
        for k in range(n_per_dose):
            path = folder / f"field_d{d}_{k}.tif"
            write_tiff_atomic(path, render_field(440, 440, dose, seed=100 * d + k).image)
            truth[str(path.resolve())] = d
    return truth


class _Annotator:
    """One person at the app, through HTTP only: register, read the page, vote."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        data = urllib.parse.urlencode({"name": name, "token": ""}).encode()
        with urllib.request.urlopen(urllib.request.Request(url + "/signin", data=data, method="POST")) as r:
            page = r.read().decode()
        token = page.split('id="new-token">')[1].split("<")[0]
        self.opener = urllib.request.build_opener()
        self.opener.addheaders = [("Cookie", f"phototox_annotator={token}")]

    def next(self) -> tuple[int, str] | None:
        page = self.opener.open(self.url + "/annotate").read().decode()
        if 'id="done"' in page:
            return None
        return int(page.split('data-item="')[1].split('"')[0]), page.split('name="csrf" value="')[1].split('"')[0]

    def vote(self, item: int, label: str, csrf: str) -> None:
        data = urllib.parse.urlencode({"item": item, "label": label, "csrf": csrf}).encode()
        self.opener.open(urllib.request.Request(self.url + "/vote", data=data, method="POST")).read()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from phototox.apps.annotate.db import AnnotationDB
    from phototox.apps.annotate.guided import prepare
    from phototox.apps.annotate.server import AppConfig, make_server

    root = tmp_path_factory.mktemp("adapt")
    images = root / "images"
    images.mkdir()
    truth = _synth_fields(images)
    from phototox.apps.cli import main

    controls = sorted(images.glob("field_d0_*.tif"))[:3]  # step 1 of the walkthrough: calibrate on controls
    assert main(["calibrate", *map(str, controls), "--out", str(root / "calibrated.pt")]) == 0
    db = AnnotationDB(root / "votes.sqlite")
    state = prepare(
        db, [str(images)], str(root / "calibrated.pt"), None, 0.3, seed=2, frames=1, test_every=4, random_share=0.3
    )
    server = make_server(db, "127.0.0.1", 0, AppConfig(overlap_every=3, seed=2, guided=state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ann, bob = _Annotator(url, "ann"), _Annotator(url, "bob")
    by_id = {i.id: i for i in db.items()}
    shown = ann.next()
    assert shown is not None
    (root / "context.png").write_bytes(ann.opener.open(f"{url}/item/{shown[0]}/context.png").read())
    flipped = 0
    for person, budget in ((ann, 40), (bob, 12)):
        for _ in range(budget):
            shown = person.next()
            if shown is None:
                break
            item, csrf = shown
            label = ("healthy", "sick")[truth[by_id[item].path]]
            if person is bob and flipped < 2:  # bob disagrees twice
                label, flipped = ("sick" if label == "healthy" else "healthy"), flipped + 1
            person.vote(item, label, csrf)
    server.shutdown()
    server.server_close()
    return root, db, state, truth


@pytest.mark.slow
def test_served_order_holds_test_fields_apart_and_random_share(session):
    _root, db, state, _truth = session
    test_fields = set(state.settings["test_fields"])
    with sqlite3.connect(db.path) as con:
        rows = con.execute(
            "SELECT s.annotator_id, s.slot, s.kind, i.path FROM suggestions s JOIN items i "
            "ON i.id = s.item_id ORDER BY s.annotator_id, s.slot"
        ).fetchall()
    assert rows and len(test_fields) == 3
    for _who, _slot, kind, path in rows:
        if kind in ("random", "suggested"):
            assert path not in test_fields
        if kind == "test":
            assert path in test_fields
    first = [r for r in rows if r[0] == rows[0][0]][:16]  # before any side of the pool runs out
    training = [r for r in first if r[2] in ("random", "suggested")]
    assert sum(r[2] == "random" for r in training) >= 0.3 * len(training)
    assert any(r[2] == "suggested" for r in training)


@pytest.mark.slow
def test_window_is_shown_in_its_field(session):
    import imageio.v3 as iio

    picture = iio.imread(session[0] / "context.png")
    yellow = (picture[..., 0] > 200) & (picture[..., 1] > 180) & (picture[..., 2] < 60)
    rows, cols = np.nonzero(yellow)
    assert 150 < rows.ptp() < 250 and 150 < cols.ptp() < 250  # a 220 px window outlined in a 384 px view


@pytest.mark.slow
def test_train_and_evaluate_from_annotations(session, capsys):
    from phototox.apps.cli import main
    from phototox.maps.inference import Predictor
    from phototox.models.loader import load_model

    root, db, _state, truth = session
    out = root / "adapted"
    assert main(["train", "--from-annotations", str(db.path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "disagreed dropped" in text
    adaptation = json.loads((out / "adaptation.json").read_text())
    assert set(adaptation["train_fields"]).isdisjoint(adaptation["test_fields"])
    assert adaptation["train_windows"]["disagreed"] >= 1  # bob's flips on overlap windows are dropped and counted
    assert (out / "model_card.md").read_text().startswith("# Model card")
    model = load_model(str(out / "model.pt"))
    assert model.meta["adaptation"]["base_model"].startswith(str(root / "calibrated.pt"))
    # the trunk is frozen, so calibrate's domain check (fitted on the controls) still holds and is kept
    assert model.meta["domain"] == load_model(str(root / "calibrated.pt")).meta["domain"]
    assert "calibration" not in model.meta  # the old head's control P(sick) no longer describes this head
    # the written model computes the fitted head: P(sick) of test-field windows from the file itself
    predictor = Predictor.create(model, "cpu")
    test_paths = sorted(adaptation["test_fields"])
    from phototox.io.images import read_frames

    assert {truth[p] for p in test_paths} == {0, 1}
    for path in test_paths:  # healthy and sick test fields, each read by the written file
        frame = read_frames(path)[0]
        p = predictor.classify_windows(np.stack([frame[:220, :220], frame[220:, 220:]]))
        assert ((p >= 0.5) == truth[path]).all(), (path, p)
    ev = adaptation["test_evaluation"]["disagreed_dropped"]
    assert ev["n_fields"] == 3 and ev["balanced_accuracy"] >= 0.8

    assert main(["evaluate", "--from-annotations", str(db.path), "--out", str(root / "eval")]) == 0
    report = json.loads((root / "eval" / "adaptation_eval.json").read_text())
    assert report["learning_curve"][-1]["n_labelled"] == sum(report["train_windows"][k] for k in ("healthy", "sick"))
    assert report["agreement"] and report["agreement"][0]["shared_windows"] >= 2
    assert "leave_one_field_out" in report and "audit" in report
    assert (root / "eval" / "learning_curve.png").stat().st_size > 1000
