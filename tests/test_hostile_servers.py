"""Issue #23 (part B, class 5): one client cannot hold a server's pool; absolute-form targets refused.

Reproductions: 72 clients of ``serve`` (80 of the annotation app) trickling header lines kept
every other client out for 90 s (40 s); ``GET http://evil.example/...`` was answered 200. All
traffic goes to 127.0.0.1; a second client is told apart by its source address (127.0.0.2, which
Linux routes over loopback too); every loop ends by itself.
"""

from __future__ import annotations

import threading
import time

import pytest
from hostile_http import Servers, connect, one_line, request, served_within, trickle_headers
from hostile_support import SYNTH_MODEL

from phototox.apps.annotate.db import AnnotationDB
from phototox.apps.annotate.server import ANNOTATION_LIMITS
from phototox.apps.annotate.server import make_server as make_annotation_server
from phototox.apps.httpserve import Limits
from phototox.apps.serve import make_server

OTHER_CLIENT = "127.0.0.2"


@pytest.fixture()
def servers(tmp_path):
    """Start ``serve`` or the annotation app on 127.0.0.1:0 with given limits; shut down after."""
    running = Servers()

    def start(kind: str, limits: Limits):
        if kind == "serve":
            server, _ = make_server("127.0.0.1", 0, SYNTH_MODEL, "cpu", None, 1_000_000, limits=limits)
        else:
            server = make_annotation_server(
                AnnotationDB(tmp_path / f"v{len(running.started)}.sqlite"), port=0, limits=limits
            )
        return running.run(server)

    yield start
    running.close()


def status_head(port: int, target: str = "/v1/status") -> str:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}"


PATH = {"serve": "/v1/status", "annotate": "/"}


@pytest.mark.parametrize("kind", ["serve", "annotate"])
def test_absolute_form_targets_are_refused(servers, kind):
    port = servers(kind, Limits(workers=2, queue=4, read_timeout=2.0)).port
    for target in (f"http://evil.example{PATH[kind]}", f"http://127.0.0.1:{port}{PATH[kind]}", "*"):
        answer = request(port, status_head(port, target), timeout=5)
        assert answer.status == 400 and "request target must be a path" in one_line(answer), answer
    assert request(port, status_head(port, PATH[kind]), timeout=5).status == 200


def test_connections_per_address_are_limited(servers):
    limits = Limits(workers=2, queue=8, read_timeout=3.0, per_address=3)
    port = servers("serve", limits).port
    held = [connect(port) for _ in range(limits.per_address)]  # idle: they hold their slots
    try:
        time.sleep(0.2)
        answer = request(port, status_head(port), timeout=3)
        assert answer.status == 503 and "too many connections from your address" in one_line(answer)
        assert served_within(port, status_head(port), 3.0, source=OTHER_CLIENT) is not None
    finally:
        for sock in held:
            sock.close()
    assert served_within(port, status_head(port), 3.0 + limits.read_timeout) is not None  # freed on close


def test_header_deadline_is_absolute_not_per_line(servers):
    """A line every 0.3 s never completes the head: the connection ends at read_timeout."""
    limits = Limits(workers=2, queue=4, read_timeout=1.5)
    port = servers("serve", limits).port
    start = time.monotonic()
    outcome = trickle_headers(port, 1, seconds=limits.read_timeout + 4)
    assert outcome["closed"] == 1 and time.monotonic() - start < limits.read_timeout + 3


@pytest.mark.slow
@pytest.mark.parametrize("kind,clients,limits", [("serve", 72, Limits()), ("annotate", 80, ANNOTATION_LIMITS)])
def test_clients_trickling_header_lines_do_not_keep_others_out(servers, kind, clients, limits):
    """The reproduction with each server's default limits: another client is served within a
    few seconds (before: 90 s and 40 s), and one address gets at most ``per_address`` slots."""
    port = servers(kind, limits).port
    outcome: dict = {}
    attack = threading.Thread(target=lambda: outcome.update(trickle_headers(port, clients, seconds=8.0)))
    attack.start()
    try:
        time.sleep(1.5)  # the trickling clients hold what they can
        seconds = served_within(port, status_head(port, PATH[kind]), 6.0, source=OTHER_CLIENT)
    finally:
        attack.join(20)
    assert seconds is not None and seconds < 4.0, seconds
    assert outcome["busy"] >= clients - limits.per_address, outcome
