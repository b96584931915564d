"""The expert annotation app in a real headless Chromium, its database, report and export."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phototox.apps.annotate.db import AnnotationDB
from phototox.apps.annotate.export import concordant_label
from phototox.apps.annotate.items import make_items
from phototox.apps.annotate.report import ambiguity_estimate, build_report, cohen_kappa
from phototox.apps.annotate.server import AppConfig, make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def images(tmp_path) -> Path:
    from phototox.synth.fields import render_field, render_timelapse

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"pos{i}.tif", render_field(256, 768, 0.3 * i, seed=i).image)  # 3 items each
    tifffile.imwrite(folder / "movie.tif", render_timelapse(12, 256, 256, 0.1), photometric="minisblack")
    return folder


@pytest.fixture()
def app(tmp_path, images):
    db = AnnotationDB(tmp_path / "votes.sqlite")
    db.add_items(make_items([str(images)], crop=256, frames=10))
    server = make_server(db, port=0, config=AppConfig(overlap_every=5, seed=1))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", db
    server.shutdown()
    server.server_close()


def test_items_cover_images_and_time_windows(app):
    _, db = app
    items = db.items()
    movie = [i for i in items if i.path.endswith("movie.tif")]
    assert len(items) == 3 * 3 + 2 and [(i.first_frame, i.last_frame) for i in movie] == [(0, 9), (10, 11)]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


def _sign_in(browser, url, name, token=""):
    page = browser.new_context().new_page()
    page.goto(url + "/")
    page.fill("#name", name)
    page.fill("#token", token)
    page.click("#go")
    return page


def _vote_by_key(page, key):
    before = page.get_attribute("#movie", "data-item")
    with page.expect_navigation():
        page.keyboard.press(key)
    return int(before)


@pytest.mark.slow
def test_sign_in_vote_by_keyboard_and_overlap_rule(browser, app):
    url, db = app
    ada = _sign_in(browser, url, "Ada")
    token = ada.inner_text("#new-token")
    ada.click("#start")
    ada_items = [_vote_by_key(ada, key) for key in "hshsh"]
    assert ada.inner_text("#progress") == "5"
    assert len(set(ada_items)) == 5
    labels = {(v[1], v[3]) for v in db.votes()}
    assert labels == set(zip(ada_items, ["healthy", "sick", "healthy", "sick", "healthy"]))

    bob = _sign_in(browser, url, "Bob")
    bob.click("#start")
    bob_items = []
    for k in range(5):
        overlap = bob.get_attribute("#movie", "data-overlap")
        bob_items.append(_vote_by_key(bob, "u" if k == 0 else "s"))
        assert overlap == ("1" if k == 4 else "0")
    assert bob_items[4] in ada_items  # every 5th item was already scored by someone else
    assert not set(bob_items[:4]) & set(ada_items)  # the others are fresh

    again = _sign_in(browser, url, "Ada", token)  # a returning annotator with her token
    assert again.inner_text("#who") == "Ada"
    forged = _sign_in(browser, url, "Ada", "not-her-token")
    assert "does not match" in forged.content()
    assert len(db.votes()) == 10


def test_skip_and_changed_mind_append_rows(browser, app):
    url, db = app
    page = _sign_in(browser, url, "Cy")
    page.click("#start")
    first = _vote_by_key(page, "k")
    assert db.votes()[-1][3] == "skip"
    cy = db.annotators()[-1].id
    db.add_vote(first, cy, "sick")
    db.add_vote(first, cy, "healthy")
    assert [v[3] for v in db.votes() if v[1] == first] == ["skip", "sick", "healthy"]
    assert db.latest_labels()[(first, cy)] == "healthy"
    import sqlite3

    with db.connect() as con, pytest.raises(sqlite3.DatabaseError, match="never"):
        con.execute("UPDATE votes SET label = 'sick'")


def test_hostile_input_is_escaped_or_refused(browser, app):
    url, db = app
    page = _sign_in(browser, url, "<img src=x onerror=alert(1)><script>window.pwned=1</script>")
    page.click("#start")
    assert page.inner_text("#who").startswith("<img src=x")  # shown as text
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("#who img").count() == 0

    def post(path, data, cookie=""):
        request = urllib.request.Request(url + path, data=urllib.parse.urlencode(data).encode(), method="POST")
        if cookie:
            request.add_header("Cookie", cookie)
        try:
            with urllib.request.urlopen(request) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    assert post("/vote", {"item": 1, "label": "sick", "csrf": "x"}, "phototox_annotator=forged") == 403
    cookie = next(c for c in page.context.cookies() if c["name"] == "phototox_annotator")
    good = f"phototox_annotator={cookie['value']}"
    csrf = page.get_attribute("input[name=csrf]", "value")
    assert post("/vote", {"item": 99999, "label": "sick", "csrf": csrf}, good) == 404
    assert post("/vote", {"item": 1, "label": "dead", "csrf": csrf}, good) == 400
    assert post("/vote", {"item": 1, "label": "sick", "csrf": "forged"}, good) == 403
    assert post("/vote", {"item": 1, "label": "sick", "csrf": csrf}, good) in (200, 303)
    assert post("/signin", {"name": "x" * 500}) == 400
    assert len(db.votes()) == 1


def test_concurrent_annotators_lose_no_vote(app):
    url, db = app
    annotators = [db.create_annotator(f"a{i}") for i in range(6)]
    server_csrf = None

    def session(index):
        _annotator, token = annotators[index]
        opener = urllib.request.build_opener()
        opener.addheaders = [("Cookie", f"phototox_annotator={token}")]
        page = opener.open(url + "/annotate").read().decode()
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        ids = [item.id for item in db.items()]
        for k in range(20):
            data = urllib.parse.urlencode(
                {"item": ids[k % len(ids)], "label": "sick" if k % 2 else "healthy", "csrf": csrf}
            ).encode()
            opener.open(urllib.request.Request(url + "/vote", data=data, method="POST")).read()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(session, range(6)))
    assert len(db.votes()) == 6 * 20
    assert server_csrf is None


def test_report_reproduces_the_papers_arithmetic():
    amb = ambiguity_estimate(263, 49)
    assert amb.disagreement_rate == pytest.approx(0.186, abs=5e-4)
    assert amb.ambiguous_fraction == pytest.approx(0.372, abs=1e-3)
    assert amb.ambiguous_after_filtering == pytest.approx(0.229, abs=1e-3)
    assert amb.accuracy_ceiling == pytest.approx(0.771, abs=1e-3)


@pytest.mark.slow
def test_report_from_votes_matches_the_arithmetic(tmp_path):
    db = AnnotationDB(tmp_path / "v.sqlite")
    db.add_items([(f"/img{i}.tif", 0, 0, 0, 0, 256, f"pos{i}", int(i < 20)) for i in range(263)])
    (a, _), (b, _) = db.create_annotator("A"), db.create_annotator("B")
    rng = np.random.default_rng(0)
    disagree = set(rng.choice(263, 49, replace=False).tolist())
    for i in range(263):
        label = "healthy" if i < 20 or i % 2 else "sick"
        db.add_vote(i + 1, a.id, label)
        db.add_vote(i + 1, b.id, ("sick" if label == "healthy" else "healthy") if i in disagree else label)
    report = build_report(db)
    assert report["ambiguity"]["overlaps"] == 263 and report["ambiguity"]["disagreements"] == 49
    assert report["ambiguity"]["accuracy_ceiling"] == pytest.approx(0.771, abs=1e-3)
    assert report["controls"]["A"]["accuracy"] == 1.0
    assert report["controls"]["B"]["accuracy"] == pytest.approx(1 - len([i for i in disagree if i < 20]) / 20)
    pair = report["pairs"][0]
    assert pair["agreement"] == pytest.approx(214 / 263)


def test_cohen_kappa_known_values():
    assert cohen_kappa(["healthy", "sick"] * 10, ["healthy", "sick"] * 10) == pytest.approx(1.0)
    a = ["healthy"] * 25 + ["sick"] * 25
    b = ["healthy"] * 20 + ["sick"] * 5 + ["healthy"] * 5 + ["sick"] * 20
    assert cohen_kappa(a, b) == pytest.approx(0.6)  # po 0.8, pe 0.5


@pytest.mark.slow
def test_export_rules_and_cli(tmp_path, images, capsys):
    from phototox.apps.cli import main
    from phototox.io.manifest import read_manifest

    assert concordant_label(["sick", "sick"], "unanimous", 2) == "sick"
    assert concordant_label(["sick", "healthy"], "unanimous", 1) is None
    assert concordant_label(["sick", "sick", "healthy"], "majority", 1) == "sick"
    assert concordant_label(["unsure", "unsure", "sick"], "majority", 1) is None
    assert concordant_label(["sick"], "unanimous", 2) is None
    db = AnnotationDB(tmp_path / "v.sqlite")
    db.add_items(make_items([str(images)], crop=256))
    (a, _), (b, _) = db.create_annotator("A"), db.create_annotator("B")
    items = db.items()
    for item, (la, lb) in zip(
        items, [("sick", "sick"), ("healthy", "healthy"), ("sick", "healthy"), ("unsure", "sick")]
    ):
        db.add_vote(item.id, a.id, la)
        db.add_vote(item.id, b.id, lb)
    assert (
        main(
            [
                "annotate",
                "export",
                "--db",
                str(tmp_path / "v.sqlite"),
                "--out",
                str(tmp_path / "ex"),
                "--min-votes",
                "2",
            ]
        )
        == 0
    )
    samples = read_manifest(tmp_path / "ex" / "manifest.csv")
    assert [s.label_name for s in samples] == ["sick", "healthy"]
    assert samples[0].group == items[0].group and tifffile.imread(samples[0].path).shape[-2:] == (256, 256)
    assert main(["annotate", "report", "--db", str(tmp_path / "v.sqlite"), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "annotation_report.json").read_text())
    assert report["pairs"][0]["overlaps"] == 4 and (tmp_path / "rep" / "annotation_report.png").is_file()
