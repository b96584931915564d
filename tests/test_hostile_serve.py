"""`phototox serve` under hostile requests and load (issue 14): real servers on 127.0.0.1, port 0.

Every wait is bounded; the times asserted are the server's stated bounds plus slack for a
loaded 2-core machine, not speed measurements (those are in benchmarks/bench_serve.py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hostile_http import (
    Servers,
    connect,
    one_line,
    read_answer,
    request,
    slowloris,
    threads_named,
)

from phototox.apps.cli import main as cli_main
from phototox.apps.httpserve import Limits
from phototox.apps.serve import make_server

SLACK = 3.0  # seconds allowed beyond a stated bound on a busy machine


@pytest.fixture()
def serve(tiny_model_path):
    running = Servers()

    def start(**kwargs):
        kwargs.setdefault("limits", Limits(read_timeout=1.5))
        server, _ = make_server(
            "127.0.0.1",
            0,
            kwargs.pop("model", str(tiny_model_path)),
            "cpu",
            kwargs.pop("token", None),
            kwargs.pop("max_pixels", 4_000_000),
            **kwargs,
        )
        return running.run(server)

    yield start
    running.close()


def _analyse_head(port: int, width: int, height: int, extra: str = "", query: str = "") -> str:
    return (
        f"POST /v1/analyse?width={width}&height={height}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {4 * width * height}{extra}"
    )


def _frame(width: int = 224, height: int = 224, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).normal(100, 10, (height, width)).astype("<f4").tobytes()


# -- DNS rebinding and browsers ------------------------------------------------------------------
def test_host_header_must_name_the_server(serve):
    port = serve().port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert request(port, f"GET /v1/status HTTP/1.1\r\nHost: {host}").status == 200, host
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"attacker.test.:{port}", "::1"):
        answer = request(port, f"GET /v1/status HTTP/1.1\r\nHost: {host}")
        assert answer.status == 403 and "Host" in one_line(answer), host
    answer = request(
        port,
        f"POST /v1/analyse?width=224&height=224 HTTP/1.1\r\nHost: rebound.example:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {4 * 224 * 224}",
        _frame(),
    )
    assert answer.status == 403
    assert request(port, "GET /v1/status HTTP/1.1").status == 400  # no Host at all


def test_cross_origin_browser_requests_are_refused(serve):
    port = serve().port
    own = f"\r\nOrigin: http://127.0.0.1:{port}"
    assert request(port, _analyse_head(port, 224, 224, own), _frame()).status == 200
    for extra in (
        "\r\nOrigin: http://evil.example",
        "\r\nOrigin: null",
        f"\r\nOrigin: https://127.0.0.1:{port}",
        "\r\nSec-Fetch-Site: cross-site",
    ):
        answer = request(port, _analyse_head(port, 224, 224, extra), _frame())
        assert answer.status == 403 and "cross" in one_line(answer), extra
        get = request(port, f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}{extra}")
        assert get.status == 403, extra
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        head = _analyse_head(port, 224, 224).replace("application/octet-stream", content_type)
        answer = request(port, head, _frame())
        assert answer.status == 415 and "Content-Type" in one_line(answer), content_type


def test_unexpected_methods_and_paths_are_refused(serve):
    port = serve().port
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"):
        answer = request(port, f"{method} /v1/analyse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0")
        assert answer.status in (405, 501) and one_line(answer), method
    for head in (
        f"GET /v1/analyse HTTP/1.1\r\nHost: 127.0.0.1:{port}",
        f"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1:{port}",
        f"POST /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0",
    ):
        assert request(port, head).status == 404, head
    assert (
        request(port, f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked").status == 501
    )


# -- models ---------------------------------------------------------------------------------------
def test_only_the_models_given_at_start_are_served(serve, tiny_model_path, tmp_path):
    other = tmp_path / "other.pt"
    shutil.copy(tiny_model_path, other)
    server = serve()
    port = server.port
    for model in (str(other), "http://127.0.0.1:9/pkg.zip", "affable-shark", "default", "shipped:x", "../x.pt"):
        answer = request(port, _analyse_head(port, 224, 224, query=f"&model={model}"), _frame())
        assert answer.status == 403 and "not one this server was started with" in one_line(answer), model
    assert server.pool.loaded() == [(str(tiny_model_path), "cpu")]  # nothing else was loaded
    # the start-up model, spelled another way, is the same model
    spelled = f"{tiny_model_path.parent}/../{tiny_model_path.parent.name}/{tiny_model_path.name}"
    assert request(port, _analyse_head(port, 224, 224, query=f"&model={spelled}"), _frame()).status == 200


def test_allow_list_and_bounded_model_cache(serve, tiny_model_path, tmp_path):
    copies = []
    for i in range(3):
        copies.append(tmp_path / f"m{i}.pt")
        shutil.copy(tiny_model_path, copies[-1])
    server = serve(
        model=[str(tiny_model_path), str(copies[0])], allowed_models=(str(copies[1]), str(copies[2])), max_models=2
    )
    port = server.port
    for path in copies:
        answer = request(port, _analyse_head(port, 224, 224, query=f"&model={path}"), _frame())
        assert answer.status == 200, one_line(answer)
        assert len(server.pool.loaded()) <= 2
    assert [Path(m).name for m, _ in server.pool.loaded()] == ["m1.pt", "m2.pt"]  # least recently used dropped


@pytest.mark.slow
def test_cli_serves_several_models_and_refuses_others(tiny_model_path, tmp_path):
    other = tmp_path / "b.pt"
    shutil.copy(tiny_model_path, other)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phototox",
            "serve",
            "--port",
            "0",
            "--device",
            "cpu",
            "--model",
            str(tiny_model_path),
            "--model",
            str(other),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        assert request(port, _analyse_head(port, 224, 224, query=f"&model={other}"), _frame()).status == 200
        answer = request(port, _analyse_head(port, 224, 224, query="&model=/etc/passwd"), _frame())
        assert answer.status == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- hangs ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_declared_body_that_never_comes_frees_the_worker(serve):
    server = serve(limits=Limits(workers=1, queue=4, read_timeout=1.5))
    port = server.port
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall((_analyse_head(port, 224, 224) + "\r\n\r\n").encode() + b"\0" * 1000)  # body: 1000 of 200704
        answer = read_answer(sock, timeout=10, started=started)
    assert answer.status == 408 and answer.seconds < 1.5 + 1 + SLACK, answer
    # the only worker is free again
    assert request(port, _analyse_head(port, 224, 224), _frame(), timeout=30).status == 200
    with connect(port) as sock:  # headers that never end
        started = time.monotonic()
        sock.sendall(f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        answer = read_answer(sock, timeout=10, started=started)
    assert answer.status is None and answer.seconds < 1.5 + SLACK  # closed, not held


def test_an_idle_kept_alive_connection_is_closed(serve):
    limits = Limits(workers=1, queue=2, read_timeout=5.0, idle_timeout=1.0)
    port = serve(limits=limits).port
    with connect(port) as sock:
        sock.sendall(f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert read_answer(sock, timeout=10).status == 200
        started = time.monotonic()
        assert read_answer(sock, timeout=10).status is None  # then nothing: the server hangs up
        assert time.monotonic() - started < limits.idle_timeout + SLACK


@pytest.mark.slow
def test_slowloris_does_not_hold_a_thread_per_connection(serve):
    limits = Limits(workers=4, queue=8, read_timeout=2.0)
    port = serve(limits=limits).port
    before = threading.active_count()
    outcome = slowloris(
        port, connections=200, drip_seconds=3.0, probe=lambda: (threading.active_count(), threads_named("http-worker"))
    )
    active, workers = outcome["probe"]
    assert workers <= limits.workers and active - before <= limits.workers + 1
    assert outcome["busy"] >= 200 - limits.workers - limits.queue - 5  # the rest answered 503 at once
    assert outcome["first_busy_s"] is not None and outcome["first_busy_s"] < SLACK
    # once the attack stops, a real request is served again
    deadline = time.monotonic() + limits.read_timeout + 10
    while time.monotonic() < deadline:
        answer = request(port, f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}")
        if answer.status == 200:
            break
        time.sleep(0.2)
    assert answer.status == 200


# -- refusals before the body ------------------------------------------------------------------------
def test_refusals_happen_before_reading_the_body(serve):
    server = serve(token="s3cret-token-for-tests")
    port = server.port
    gib = f"POST /v1/analyse?width=16384&height=16384 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {1 << 30}"
    for head, status in ((gib, 401), (gib + "\r\nAuthorization: Bearer s3cret-token-for-tests", 413)):
        answer = request(port, head, b"\0" * 65536, timeout=10)
        assert answer.status == status and answer.seconds < SLACK and answer.closed, answer
    # with Expect: 100-continue the client is told before it uploads anything
    with connect(port) as sock:
        sock.sendall((gib + "\r\nExpect: 100-continue\r\n\r\n").encode())
        answer = read_answer(sock, timeout=10)
    assert answer.status == 401


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "0x10", " ", "99999999999999999999"])
def test_malformed_content_length_is_a_400(serve, value, caplog):
    port = serve().port
    answer = request(
        port, _analyse_head(port, 224, 224).replace(f"Content-Length: {4 * 224 * 224}", f"Content-Length: {value}")
    )
    assert answer.status == 400 and "Content-Length" in one_line(answer), value
    assert "Traceback" not in caplog.text
    assert request(port, f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}").status == 200


# -- load -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fifty_concurrent_requests_get_200_or_503_never_a_reset(serve):
    port = serve(limits=Limits(read_timeout=10)).port
    body = _frame(224, 224)
    barrier = threading.Barrier(50, timeout=30)

    def one(_):
        barrier.wait()
        return request(port, _analyse_head(port, 224, 224), body, timeout=120)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    assert all(a.status in (200, 503) and not a.reset for a in answers), [(a.status, a.reset) for a in answers]
    assert sum(a.status == 200 for a in answers) >= 8


def test_pixels_in_flight_are_bounded_across_requests(serve):
    server = serve(max_pixels=1_000_000, max_pixels_in_flight=1_000_000)
    port = server.port
    with connect(port) as holder:  # 1000x1000 declared, half sent: its pixels are reserved
        holder.sendall((_analyse_head(port, 1000, 1000) + "\r\n\r\n").encode() + b"\0" * 2_000_000)
        time.sleep(0.3)
        answer = request(port, _analyse_head(port, 600, 600), _frame(600, 600))
        assert answer.status == 503 and answer.headers.get("retry-after") and "pixels" in one_line(answer)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the holder hung up: its reservation is given back
        answer = request(port, _analyse_head(port, 600, 600), _frame(600, 600), timeout=60)
        if answer.status != 503:
            break
        time.sleep(0.2)
    assert answer.status == 200


def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


@pytest.mark.slow
def test_memory_stays_bounded_under_eleven_large_requests(tiny_model_path):
    """Eleven concurrent 2828x2828 requests (32 MB each, NaN so the analysis stops early): the server's
    peak RSS grows by less than 5 bodies (with no budget, all 11 bodies were held at once)."""
    side = 2828
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phototox",
            "serve",
            "--port",
            "0",
            "--device",
            "cpu",
            "--model",
            str(tiny_model_path),
            "--max-pixels",
            str(side * side),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(proc.stdout.readline().split("127.0.0.1:")[1].split("/")[0])
        assert request(port, _analyse_head(port, 224, 224), _frame()).status == 200  # warm up
        base = _vm(proc.pid, "VmRSS")
        body = np.full(side * side, np.nan, "<f4").tobytes()
        barrier = threading.Barrier(11, timeout=30)

        def one(_):
            barrier.wait()
            with connect(port, 60) as sock:
                sock.sendall((_analyse_head(port, side, side, "\r\nExpect: 100-continue") + "\r\n\r\n").encode())
                first = read_answer(sock, timeout=60)
                if first.status != 100:
                    return first.status
                sock.sendall(body)
                return read_answer(sock, timeout=120).status

        with ThreadPoolExecutor(11) as pool:
            statuses = list(pool.map(one, range(11)))
        peak = _vm(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert peak - base < 5 * len(body), f"peak RSS grew by {(peak - base) / 1e6:.0f} MB; answers {statuses}"
    assert set(statuses) <= {400, 503} and 503 in statuses, statuses


# -- one-line errors ---------------------------------------------------------------------------------
def test_port_in_use_is_one_line(tiny_model_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli_main(["serve", "--port", str(port), "--model", str(tiny_model_path), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and f"port {port} is already in use" in err, err
