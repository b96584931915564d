"""The annotation app and its CLI under hostile requests (issue 14): a real server on 127.0.0.1:0.

Every wait is bounded; times asserted are the stated bounds plus slack for a loaded machine.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import tifffile
from hostile_http import Servers, connect, read_answer, request, slowloris, threads_named

from phototox.apps.annotate.db import AnnotationDB
from phototox.apps.annotate.items import make_items
from phototox.apps.annotate.server import MAX_BODY, make_server
from phototox.apps.cli import main as cli_main
from phototox.apps.httpserve import Limits

SLACK = 3.0


@pytest.fixture()
def images(tmp_path) -> Path:
    from phototox.synth.fields import render_field

    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "pos0.tif", render_field(256, 512, 0.3, seed=1).image)
    return folder


@pytest.fixture()
def app(tmp_path, images):
    running = Servers()

    def start(limits: Limits | None = None):
        db = AnnotationDB(tmp_path / f"votes{len(running.started)}.sqlite")
        db.add_items(make_items([str(images)], crop=256, frames=10))
        server = make_server(db, port=0, limits=limits or Limits(workers=4, queue=8, read_timeout=1.5))
        return running.run(server)

    yield start
    running.close()


def _post(port: int, path: str, form: dict, extra: str = "", host: str = "") -> tuple[str, bytes]:
    """(head, body) of a form POST, for ``request(port, *_post(...))``."""
    body = urllib.parse.urlencode(form).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}{extra}"
    )
    return head, body


def _signed_in(server) -> tuple[str, str]:
    _, token = server.db.create_annotator(f"tester{time.monotonic_ns()}")
    return token, server.csrf_for(token)


def test_host_and_origin_are_checked(app):
    server = app()
    port = server.port
    assert request(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}").status == 200
    assert request(port, f"GET / HTTP/1.1\r\nHost: localhost:{port}").status == 200
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}"):
        assert request(port, f"GET / HTTP/1.1\r\nHost: {host}").status == 403, host
    form = {"name": "mallory", "token": ""}
    assert request(port, *_post(port, "/signin", form, host=f"rebound.example:{port}")).status == 403
    for origin in ("http://evil.example", "null", f"http://localhost:{port + 1}"):
        answer = request(port, *_post(port, "/signin", form, f"\r\nOrigin: {origin}"))
        assert answer.status == 403, origin
    assert not server.db.annotator_exists("mallory")
    same = request(port, *_post(port, "/signin", form, f"\r\nOrigin: http://127.0.0.1:{port}"))
    assert same.status == 200 and server.db.annotator_exists("mallory")


def test_simple_request_content_types_are_refused(app):
    port = app().port
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "application/json"):
        head, body = _post(port, "/signin", {"name": "eve"})
        head = head.replace("application/x-www-form-urlencoded", content_type)
        assert request(port, head, body).status == 415, content_type


def test_unexpected_methods_and_paths(app):
    port = app().port
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        answer = request(port, f"{method} /vote HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0")
        assert answer.status in (405, 501), method
    assert request(port, *_post(port, "/admin", {"x": "1"})).status == 404


@pytest.mark.parametrize("value", ["-1", "abc", "4096.0", "99999999999999999999"])
def test_malformed_content_length_is_a_400(app, value, capfd):
    server = app()
    port = server.port
    body = "name=bob&token=" + "x" * 8000  # over the app's form limit, which -1 used to bypass
    answer = request(
        port,
        f"POST /signin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
        f"application/x-www-form-urlencoded\r\nContent-Length: {value}\r\n\r\n{body}",
    )
    assert answer.status == 400 and answer.seconds < SLACK, (value, answer)
    assert not server.db.annotator_exists("bob")
    assert "Traceback" not in capfd.readouterr().err


def test_large_bodies_are_refused_unread(app):
    server = app()
    port = server.port
    token, _ = _signed_in(server)
    cookie = f"\r\nCookie: phototox_annotator={token}"
    for path, extra, status in (
        ("/vote", "", 403),  # not signed in: refused before the body
        ("/signin", "", 413),
        ("/vote", cookie, 413),
    ):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {1 << 30}{extra}"
        )
        answer = request(port, head, b"a" * 65536)
        assert answer.status == status and answer.seconds < SLACK and answer.closed, (path, answer)
    assert MAX_BODY < 1 << 16


def test_a_declared_body_that_never_comes_frees_the_worker(app):
    server = app(Limits(workers=1, queue=4, read_timeout=1.5))
    port = server.port
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST /signin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
            f"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=".encode()
        )
        answer = read_answer(sock, timeout=10, started=started)
    assert answer.status == 408 and answer.seconds < 1.5 + 1 + SLACK, answer
    assert request(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}").status == 200


@pytest.mark.slow
def test_slowloris_does_not_hold_a_thread_per_connection(app):
    limits = Limits(workers=4, queue=8, read_timeout=2.0)
    port = app(limits).port
    before = threading.active_count()
    outcome = slowloris(
        port, connections=200, drip_seconds=3.0, probe=lambda: (threading.active_count(), threads_named("http-worker"))
    )
    active, workers = outcome["probe"]
    assert workers <= limits.workers and active - before <= limits.workers + 1
    assert outcome["busy"] >= 200 - limits.workers - limits.queue - 5
    deadline = time.monotonic() + limits.read_timeout + 10
    while time.monotonic() < deadline:
        answer = request(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}")
        if answer.status == 200:
            break
        time.sleep(0.2)
    assert answer.status == 200


def test_an_item_id_of_thirty_digits_is_a_404(app, capfd):
    server = app()
    port = server.port
    token, csrf = _signed_in(server)
    cookie = f"\r\nCookie: phototox_annotator={token}"
    huge = "9" * 30
    for path in (f"/item/{huge}/0.png", f"/item/1/{huge}.png", f"/item/{2**63}/0.png"):
        answer = request(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}{cookie}")
        assert answer.status == 404, path
    for item in (huge, str(2**63), "-1", "1e3"):
        answer = request(port, *_post(port, "/vote", {"item": item, "label": "sick", "csrf": csrf}, cookie))
        assert answer.status == 404, item
    assert server.db.votes() == []
    first = server.db.items()[0].id
    assert request(port, *_post(port, "/vote", {"item": first, "label": "sick", "csrf": csrf}, cookie)).status == 303
    assert "Traceback" not in capfd.readouterr().err


# -- CLI: one line, non-zero exit, nothing created -------------------------------------------------
@pytest.fixture(autouse=True)
def _never_serve_forever(monkeypatch):
    """A CLI call that should have been refused fails the test instead of serving until killed."""
    import phototox.apps.httpserve

    def refuse(server):
        server.server_close()
        raise AssertionError("the command started serving instead of refusing")

    monkeypatch.setattr(phototox.apps.httpserve, "serve_until_interrupted", refuse)


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("phototox: error:") and "\n" not in err, err
    return err


@pytest.mark.parametrize("crop", ["0", "-5", "8"])
def test_annotate_serve_refuses_a_crop_that_serves_nothing(images, tmp_path, capsys, crop):
    db = tmp_path / "v.sqlite"
    err = _one_line_error(
        capsys, cli_main(["annotate", "serve", str(images), "--db", str(db), "--port", "0", "--crop", crop])
    )
    assert "--crop" in err and not db.exists()


def test_annotate_export_refuses_negative_min_votes(images, tmp_path, capsys):
    db = AnnotationDB(tmp_path / "v.sqlite")
    db.add_items(make_items([str(images)], crop=256))
    out = tmp_path / "export"
    err = _one_line_error(
        capsys, cli_main(["annotate", "export", "--db", str(db.path), "--out", str(out), "--min-votes", "-3"])
    )
    assert "--min-votes" in err and not out.exists()


def test_a_database_that_is_not_sqlite_is_one_line(images, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    digest = hashlib.sha256(text.read_bytes()).hexdigest()
    for argv in (
        ["annotate", "serve", str(images), "--db", str(text), "--port", "0"],
        ["annotate", "report", "--db", str(text), "--out", str(tmp_path / "r")],
        ["annotate", "export", "--db", str(text), "--out", str(tmp_path / "e")],
    ):
        err = _one_line_error(capsys, cli_main(argv))
        assert "notes.txt" in err and "SQLite" in err, err
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE samples (id INTEGER)")
    foreign_digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
    err = _one_line_error(capsys, cli_main(["annotate", "serve", str(images), "--db", str(foreign), "--port", "0"]))
    assert "other.sqlite" in err
    assert hashlib.sha256(text.read_bytes()).hexdigest() == digest
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == foreign_digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "notes.txt", "other.sqlite"]


def test_port_in_use_is_one_line_and_creates_no_database(images, tmp_path, capsys):
    db = tmp_path / "v.sqlite"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _one_line_error(
            capsys, cli_main(["annotate", "serve", str(images), "--db", str(db), "--port", str(port)])
        )
    assert f"port {port} is already in use" in err and not db.exists()


def test_annotate_serve_refuses_inputs_without_images(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    db = tmp_path / "v.sqlite"
    err = _one_line_error(capsys, cli_main(["annotate", "serve", str(empty), "--db", str(db), "--port", "0"]))
    assert "nothing to annotate" in err and not db.exists()
