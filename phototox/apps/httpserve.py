"""A bounded HTTP server shared by ``phototox serve`` and ``phototox annotate serve``.

What it guarantees, whatever the clients do:

* **threads**: ``workers`` handler threads (a fixed pool) plus one thread closing refused
  connections; up to ``queue`` accepted connections wait for a worker; any connection beyond
  that is answered ``503`` with ``Retry-After`` straight away and closed after at most a second
  (never reset under the answer, never left to time out);
* **one client**: at most ``per_address`` connections from one client address are accepted at
  once (waiting or served); beyond that its connections are answered ``503`` at once;
* **time**: the request line and headers of a connection's first request must arrive within
  ``read_timeout`` seconds of its acceptance (time spent waiting for a worker counts; the
  deadline is absolute, not per line), ``idle_timeout`` for the next request on a kept-alive
  connection. A head still incomplete ``head_grace`` seconds after a worker took it is *slow*:
  at most ``slow_heads`` workers (half of them by default) may wait on slow heads at once, and a
  slow head beyond that budget is dropped, so clients trickling header lines never hold the
  whole pool. A declared body must arrive within ``read_timeout`` plus one
  second per MiB (:data:`BODY_SECONDS_PER_MIB`), counted across reads, so a client sending a
  byte at a time (slowloris) or declaring a body it never sends frees its worker in bounded time;
* **what it accepts**: the request target must be a path (absolute-form ``GET http://...``
  targets are refused, 400); the ``Host`` header must name the bound address, a loopback name or an
  allowed host, with the bound port (DNS rebinding); a request carrying an ``Origin`` other
  than the server's own, or ``Sec-Fetch-Site: cross-site``, is refused (browsers on other sites);
  ``Content-Length`` must be a plain non-negative number and ``Transfer-Encoding`` is refused;
* **errors**: one plain-text line per refusal; a port in use is a :class:`PhototoxError`
  naming the port; dropped connections and timeouts are logged in one line, not as tracebacks.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import logging
import select
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phototox.errors import PhototoxError

LOGGER = logging.getLogger("phototox.http")
BODY_SECONDS_PER_MIB = 1.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class Limits:
    """Bounds on threads, waiting connections and time (see module docstring)."""

    workers: int = 8
    queue: int = 64
    read_timeout: float = 10.0
    idle_timeout: float = 2.0  # a kept-alive connection waiting for its next request
    write_timeout: float = 60.0
    backlog: int = 256
    overflow_slots: int = 256
    per_address: int = 16  # connections from one client address at once (waiting or served)
    head_grace: float = 0.5  # a request head taking longer than this is slow
    slow_heads: int = 0  # workers that may wait on slow heads at once (0: half the workers)

    @property
    def slow_head_budget(self) -> int:
        """Workers that may wait on slow request heads at once."""
        return self.slow_heads or max(1, self.workers // 2)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _busy_answer(message: str) -> bytes:
    body = message.encode("utf-8")
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _DeadlineSocketReader(io.RawIOBase):
    """Raw reads from a socket that fail with TimeoutError once the handler's deadline passes, or
    once its request head turns slow while the server's slow-head budget is spent."""

    def __init__(self, sock: socket.socket, handler: GuardedHandler) -> None:
        self.sock, self.handler = sock, handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        handler = self.handler
        while True:
            now = time.monotonic()
            wait = handler.deadline - now
            if wait <= 0:  # only what has already arrived (a request that waited for a worker)
                wait = 0.0
                handler.grace_end = None
            elif handler.grace_end is not None:  # a head not yet counted as slow
                if now >= handler.grace_end:
                    handler.count_slow_head()
                else:
                    wait = min(wait, handler.grace_end - now)
            self.sock.settimeout(wait)
            try:
                return self.sock.recv_into(buffer)
            except (TimeoutError, BlockingIOError):
                if handler.grace_end is None or time.monotonic() >= handler.deadline:
                    raise TimeoutError("request not received in time") from None
            finally:
                self.sock.settimeout(handler.server.limits.write_timeout)


class _Linger:
    """Refused connections, already answered: read and drop what the client still sends for up to
    LINGER_SECONDS (so closing does not reset the connection under the answer), then close.
    One thread for all of them; at most ``capacity`` at once (beyond: closed at once)."""

    LINGER_SECONDS = 1.0

    def __init__(self, capacity: int) -> None:
        self.capacity, self._lock = capacity, threading.Lock()
        self._socks: dict[socket.socket, float] = {}
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="http-linger", daemon=True).start()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._socks) < self.capacity:
                self._socks[sock] = time.monotonic() + self.LINGER_SECONDS
                return
        sock.close()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                socks = list(self._socks)
            if not socks:
                self._stopped.wait(0.05)
                continue
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                ready = socks
            now = time.monotonic()
            for sock in socks:
                done = self._socks[sock] < now
                if sock in ready:
                    try:
                        done = done or not sock.recv(65536)
                    except OSError:
                        done = True
                if done:
                    with self._lock:
                        del self._socks[sock]
                    sock.close()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a fixed worker pool, a bounded queue and a 503 for overflow."""

    daemon_threads = True
    busy_message = "server busy: too many connections; try again shortly"

    def __init__(
        self, address: tuple[str, int], handler, limits: Limits | None = None, allowed_hosts: tuple[str, ...] = ()
    ) -> None:
        self.limits = limits or Limits()
        self.request_queue_size = self.limits.backlog
        host, port = address
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.extra_hosts = {h.lower() for h in allowed_hosts}
        self._slots = threading.BoundedSemaphore(self.limits.workers + self.limits.queue)
        self.slow_heads = threading.BoundedSemaphore(self.limits.slow_head_budget)
        self._in_flight = 0
        self._per_address: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self._accepted = threading.local()
        try:
            super().__init__(address, handler)
        except OSError as exc:
            raise PhototoxError(_bind_error(host, port, exc)) from None
        except (OverflowError, socket.gaierror) as exc:
            raise PhototoxError(f"cannot listen on {host}:{port}: {exc}") from None
        self._linger = _Linger(self.limits.overflow_slots)
        self._workers = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="http-worker")

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def waiting(self) -> int:
        """Connections accepted but not yet given a worker."""
        return max(0, self._in_flight - self.limits.workers)

    @property
    def accepted_at(self) -> float:
        """When the connection the calling worker serves was accepted (monotonic seconds)."""
        return getattr(self._accepted, "at", time.monotonic())

    # -- admission ----------------------------------------------------------------------------
    def process_request(self, request, client_address) -> None:
        address = str(client_address[0])
        with self._count_lock:
            if self._per_address.get(address, 0) >= self.limits.per_address:
                return self._refuse_busy(request, "server busy: too many connections from your address")
            self._per_address[address] = self._per_address.get(address, 0) + 1
        if not self._slots.acquire(blocking=False):
            self._forget(address)
            return self._refuse_busy(request)
        with self._count_lock:
            self._in_flight += 1
        try:
            self._workers.submit(self._work, request, client_address, time.monotonic())
        except RuntimeError:  # shutting down
            self._release(address)
            self.shutdown_request(request)

    def _forget(self, address: str) -> None:
        with self._count_lock:
            left = self._per_address.pop(address, 1) - 1
            if left > 0:
                self._per_address[address] = left

    def _release(self, address: str) -> None:
        with self._count_lock:
            self._in_flight -= 1
        self._forget(address)
        self._slots.release()

    def _work(self, request, client_address, accepted: float) -> None:
        self._accepted.at = accepted
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._release(str(client_address[0]))

    def _refuse_busy(self, request, message: str | None = None) -> None:
        """503 at once (a small write never blocks a fresh socket), then linger: the close is clean."""
        try:
            request.setblocking(False)
            request.send(_busy_answer(message or self.busy_message))
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        self._linger.add(request)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            LOGGER.info("%s: connection dropped (%s)", client_address[0], type(exc).__name__)
        else:
            LOGGER.exception("internal error while answering %s", client_address[0])

    def server_close(self) -> None:
        super().server_close()
        if hasattr(self, "_workers"):  # not when binding failed
            self._workers.shutdown(wait=False, cancel_futures=True)
            self._linger.stop()

    # -- host and origin rules ---------------------------------------------------------------
    def host_allowed(self, host_header: str) -> bool:
        """Whether a ``Host`` header names this server (DNS rebinding protection)."""
        text = host_header.strip().lower()
        if text.startswith("["):  # [v6 address]:port
            name, _, rest = text.partition("]")
            name += "]"
            if rest and not rest.startswith(":"):
                return False
            port = rest[1:]
        elif text.count(":") == 1:
            name, port = text.split(":")
        elif ":" in text:  # a bare IPv6 address is not a valid Host
            return False
        else:
            name, port = text, ""
        if (port or "80") != str(self.port):
            return False
        bound = str(self.server_address[0]).lower()
        bound = f"[{bound}]" if ":" in bound else bound
        if name in LOOPBACK_NAMES or name == bound or name.strip("[]") in self.extra_hosts:
            return True
        if bound.strip("[]") in WILDCARD_HOSTS:  # listening everywhere: any address literal of the machine
            try:
                ipaddress.ip_address(name.strip("[]"))
                return True
            except ValueError:
                return False
        return False


def _bind_error(host: str, port: int, exc: OSError) -> str:
    where = f"{host or '0.0.0.0'}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host or 'all addresses'} (choose another with --port)"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where} (ports below 1024 need privileges; choose another --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine (--host)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


class GuardedHandler(BaseHTTPRequestHandler):
    """Request handler with deadlines, Host/Origin checks and a strict ``Content-Length``."""

    server: BoundedHTTPServer
    protocol_version = "HTTP/1.1"
    deadline = 0.0
    grace_end: float | None = None  # while a head is read and not yet counted as slow
    holds_slow_head = False
    error_prefix = "server"
    expect_continue = False  # the client waits for "100 Continue" before sending the body

    def setup(self) -> None:
        super().setup()
        self.requests_on_connection = 0
        self.connection.settimeout(self.server.limits.write_timeout)
        self.rfile = io.BufferedReader(_DeadlineSocketReader(self.connection, self), 65536)

    def handle_one_request(self) -> None:
        limits = self.server.limits
        now = time.monotonic()
        if self.requests_on_connection:
            self.deadline = now + min(limits.read_timeout, limits.idle_timeout)
        else:  # absolute from acceptance: time spent waiting for a worker counts
            self.deadline = self.server.accepted_at + limits.read_timeout
        self.grace_end = now + limits.head_grace
        self.requests_on_connection += 1
        self.expect_continue = False
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
        finally:
            self.head_done()
        if self.server.waiting:  # others are waiting for a worker: do not hold this one for keep-alive
            self.close_connection = True

    def count_slow_head(self) -> None:
        """Count this head as slow; TimeoutError when the server's slow-head budget is spent."""
        self.grace_end = None
        if not self.server.slow_heads.acquire(blocking=False):
            raise TimeoutError("slow request head while the slow-head budget is spent")
        self.holds_slow_head = True

    def head_done(self) -> None:
        """The head is read (or abandoned): leave the slow-head budget."""
        self.grace_end = None
        if self.holds_slow_head:
            self.holds_slow_head = False
            self.server.slow_heads.release()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.head_done()
        problem = self.request_problem()
        if problem:
            status, message = problem
            self.send_text(status, message, close=True)
            return False
        return True

    def request_problem(self) -> tuple[int, str] | None:
        """(status, message) when the request must be refused before any handler runs."""
        if not self.path.startswith("/"):  # absolute-form (http://host/...), authority-form or *
            return (
                400,
                f"{self.error_prefix}: the request target must be a path such as /v1/status (got {self.path[:80]!r})",
            )
        host = self.headers.get("Host")
        if host is None or len(self.headers.get_all("Host") or []) != 1:
            return 400, f"{self.error_prefix}: a request needs exactly one Host header"
        if not self.server.host_allowed(host):
            return 403, (
                f"{self.error_prefix}: Host {host!r} does not name this server "
                f"(use 127.0.0.1:{self.server.port}, or start it with --allow-host)"
            )
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != f"http://{host.strip().lower()}":
            return 403, f"{self.error_prefix}: cross-origin requests are refused (Origin {origin!r})"
        if self.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return 403, f"{self.error_prefix}: cross-site requests are refused"
        if self.headers.get("Transfer-Encoding") is not None:
            return 501, f"{self.error_prefix}: Transfer-Encoding is not supported; send Content-Length"
        lengths = self.headers.get_all("Content-Length") or []
        if len(set(lengths)) > 1 or any(not v.strip().isdigit() or len(v.strip()) > 15 for v in lengths):
            return 400, f"{self.error_prefix}: Content-Length must be one non-negative whole number"
        return None

    def handle_expect_100(self) -> bool:
        """Defer "100 Continue" until the body is wanted, so refusals cost the client no upload."""
        self.expect_continue = True
        return True

    def _start_body(self, length: int) -> None:
        self.deadline = time.monotonic() + self.server.limits.read_timeout + BODY_SECONDS_PER_MIB * length / (1 << 20)
        if self.expect_continue:
            self.send_response_only(100)
            self.end_headers()
            self.expect_continue = False

    @property
    def content_length(self) -> int:
        """The declared body size (validated in :meth:`request_problem`)."""
        return int((self.headers.get("Content-Length") or "0").strip())

    def read_body(self, length: int) -> bytes | None:
        """The body, or None (after answering 408 and closing) when it does not arrive in time."""
        self._start_body(length)
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            data = b""
        if len(data) != length:
            self.send_text(
                408, f"{self.error_prefix}: the request body ({length} bytes) did not arrive in time", close=True
            )
            return None
        return data

    def discard_body(self, length: int) -> bool:
        """Read and drop ``length`` bytes in small chunks within the body deadline; False (and the
        connection marked for closing) when they do not all arrive. A client waiting for
        "100 Continue" sends nothing: there is nothing to discard, the connection just closes."""
        if self.expect_continue:
            self.close_connection = True
            return False
        self._start_body(length)
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except TimeoutError:
            pass
        if remaining:
            self.close_connection = True
        return remaining == 0

    def send_text(self, status: int, message: str, close: bool = False, headers: dict | None = None) -> None:
        """A one-line plain-text answer; ``close`` ends the connection (body left unread)."""
        body = (message.rstrip("\n") + "\n").encode("utf-8")
        if close:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if close:
            self.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, unknown method) as one plain line."""
        try:
            short = self.responses[code][0]
        except KeyError:
            short = "error"
        self.send_text(code, f"{self.error_prefix}: {message or short}", close=True)


def serve_until_interrupted(server) -> int:
    """Serve until Ctrl-C, then close the socket; exit status 0."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
