"""Raw-socket clients for the hostile-load tests of both servers (loopback only, every wait bounded)."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class Answer:
    status: int | None  # None: the connection closed (or reset) before any status line
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    reset: bool = False
    closed: bool = False  # the server closed the connection after answering


def connect(port: int, timeout: float = 5.0, source: str | None = None) -> socket.socket:
    """A connection to the server, from ``source`` (another loopback address: another client) if given."""
    sock = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0) if source else None)
    sock.settimeout(timeout)
    return sock


def read_answer(sock: socket.socket, timeout: float = 10.0, started: float | None = None) -> Answer:
    """Read one HTTP answer (status, headers, Content-Length body); bounded by ``timeout``."""
    started = time.monotonic() if started is None else started
    end = started + timeout
    data, reset = b"", False
    while b"\r\n\r\n" not in data and time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            reset = True
            break
        if not chunk:
            break
        data += chunk
    if b"\r\n\r\n" not in data:
        return Answer(None, seconds=time.monotonic() - started, reset=reset, closed=not reset)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            reset = True
            break
        if not chunk:
            break
        body += chunk
    closed = False
    if headers.get("connection", "").lower() == "close":
        closed = _closed_within(sock, end)
    return Answer(status, headers, body, time.monotonic() - started, reset, closed)


def _closed_within(sock: socket.socket, end: float) -> bool:
    while time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            return False
        try:
            if not sock.recv(65536):
                return True
        except OSError:
            return True
    return False


def request(port: int, head: str, body: bytes = b"", timeout: float = 10.0, source: str | None = None) -> Answer:
    """Send ``head`` (request line + headers, CRLF-joined, without the blank line) and ``body``."""
    started = time.monotonic()
    with connect(port, timeout, source) as sock:
        try:
            sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        except (ConnectionResetError, BrokenPipeError):
            return Answer(None, seconds=time.monotonic() - started, reset=True)
        return read_answer(sock, timeout, started)


def one_line(answer: Answer) -> str:
    """The answer's plain-text body, checked to be exactly one line."""
    text = answer.body.decode("utf-8").strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def threads_named(prefix: str) -> int:
    return sum(t.name.startswith(prefix) for t in threading.enumerate())


def slowloris(port: int, connections: int = 200, drip_seconds: float = 3.0, probe=None) -> dict:
    """Open ``connections`` sockets that send a request line one byte at a time for ``drip_seconds``.

    Returns how many were answered 503 (and when), how many got another answer or were closed,
    and how many stayed open; every socket is closed at the end. ``probe()`` is called once,
    halfway through the drip, and its value returned as ``outcome["probe"]``.
    """
    request_bytes = b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 400
    socks, outcome = [], {"busy": 0, "other": 0, "closed": 0, "open": 0, "first_busy_s": None}
    started = time.monotonic()
    try:
        for _ in range(connections):
            s = connect(port)
            s.setblocking(False)
            socks.append(s)
        position, pending = 0, set(socks)
        end = time.monotonic() + drip_seconds
        probe_at = time.monotonic() + drip_seconds / 2
        while time.monotonic() < end and pending:
            if probe is not None and "probe" not in outcome and time.monotonic() >= probe_at:
                outcome["probe"] = probe()
            for s in list(pending):
                try:
                    s.send(request_bytes[position : position + 1])
                except OSError:
                    pending.discard(s)
            position = min(position + 1, len(request_bytes) - 1)
            ready, _, _ = select.select(list(pending), [], [], 0.1)
            for s in ready:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                pending.discard(s)
                if data.startswith(b"HTTP/1.1 503"):
                    outcome["busy"] += 1
                    if outcome["first_busy_s"] is None:
                        outcome["first_busy_s"] = time.monotonic() - started
                elif data:
                    outcome["other"] += 1
                else:
                    outcome["closed"] += 1
        outcome["open"] = len(pending)
        if probe is not None and "probe" not in outcome:
            outcome["probe"] = probe()
    finally:
        for s in socks:
            s.close()
    return outcome


def trickle_headers(port: int, connections: int, seconds: float, every: float = 0.3) -> dict:
    """``connections`` clients from 127.0.0.1 each sending one header line every ``every`` seconds
    for ``seconds`` (never finishing the head); counts 503 answers and connections the server
    closed. Every socket is closed at the end."""
    socks, outcome = [], {"busy": 0, "closed": 0}
    try:
        for _ in range(connections):
            s = connect(port)
            s.sendall(f"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
            s.setblocking(False)
            socks.append(s)
        pending, end, line = set(socks), time.monotonic() + seconds, 0
        while time.monotonic() < end and pending:
            line += 1
            for s in list(pending):
                try:
                    s.send(f"X-Slow-{line}: a\r\n".encode())
                except OSError:
                    pending.discard(s)
                    outcome["closed"] += 1
            ready, _, _ = select.select(list(pending), [], [], every)
            for s in ready:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                pending.discard(s)
                outcome["busy" if data.startswith(b"HTTP/1.1 503") else "closed"] += 1
    finally:
        for s in socks:
            s.close()
    return outcome


def served_within(port: int, head: str, deadline: float, source: str | None = None) -> float | None:
    """Seconds until ``head`` is answered 200 (retrying 503s), or None when ``deadline`` passes."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        answer = request(port, head, timeout=max(0.5, deadline - (time.monotonic() - started)), source=source)
        if answer.status == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


class Servers:
    """Servers started in background threads by a fixture, all shut down by :meth:`close`."""

    def __init__(self) -> None:
        self.started: list = []

    def run(self, server):
        """Serve ``server`` in a daemon thread; returns it."""
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            server.shutdown()
            server.server_close()
