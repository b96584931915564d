"""``phototox serve``: a small HTTP API so that programs in other processes (Fiji started on its
own, scripts in other languages) can use the same model.

``GET /v1/status`` answers JSON. ``POST /v1/analyse?width=W&height=H[&pixel_size=UM&stride=&mode=&threshold=
&model=&device=&normalisation=]`` takes the frame as W*H little-endian float32 values and answers
the W*H float32 sickness map, with the numbers in the ``X-Phototox-Result`` header
(``key=value;...``, including the pixel size used and where it came from, ``out_of_domain`` and the
quality flags; without ``pixel_size`` the model's is assumed and the header says so). Errors are
plain-text 4xx/5xx answers meant for the user.

It listens on loopback by default. Bound to any other address it requires a bearer token
(``--token``, or one generated and printed at start), and then only serves the models named at
start. Request bodies are bounded (``--max-pixels``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from . import __version__
from .errors import PhototoxError
from .remote import PredictorPool, analyse_pixels

LOGGER = logging.getLogger("phototox.serve")
DEFAULT_PORT = 8765
DEFAULT_MAX_PIXELS = 64_000_000
DRAIN_LIMIT = 1 << 30  # bodies up to 1 GiB are read and discarded before an error answer


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PhototoxServer(ThreadingHTTPServer):
    """HTTP server holding the predictor pool and the access rules."""

    daemon_threads = True

    def __init__(self, host: str, port: int, pool: PredictorPool, token: str | None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__((host, port), _Handler)
        self.pool, self.token, self.max_pixels = pool, token, max_pixels
        self.loopback = is_loopback(host)
        self.analysis_lock = threading.Lock()  # one analysis at a time bounds memory

    def model_allowed(self, model: str | None) -> bool:
        return self.loopback or model in (None, "", "default", self.pool.default_model)


class _Handler(BaseHTTPRequestHandler):
    server: PhototoxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:  # route to logging instead of stderr spam
        LOGGER.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, message.encode("utf-8"))

    def _authorised(self) -> bool:
        if not self.server.token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode())

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if not self._authorised():
            return self._error(401, "phototox server: missing or wrong token")
        if urllib.parse.urlparse(self.path).path != "/v1/status":
            return self._error(404, "phototox server: unknown path (use /v1/status or POST /v1/analyse)")
        body = json.dumps({"phototox": __version__, "model": self.server.pool.default_model,
                           "device": self.server.pool.default_device}).encode()
        self._send(200, body, "application/json")

    def do_POST(self) -> None:  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if not self._authorised():
            return self._refuse(length, 401, "phototox server: missing or wrong token")
        if url.path != "/v1/analyse":
            return self._refuse(length, 404, "phototox server: unknown path (POST /v1/analyse)")
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            width, height = int(params.get("width", "0")), int(params.get("height", "0"))
        except ValueError:
            return self._refuse(length, 400, "phototox server: width and height must be whole numbers")
        if width * height > self.server.max_pixels or length > 4 * self.server.max_pixels:
            return self._refuse(length, 413, f"phototox server: image of {width}x{height} px is larger than "
                                             f"the server's limit of {self.server.max_pixels} pixels (--max-pixels)")
        if length != 4 * width * height:
            return self._refuse(length, 400, f"phototox server: body has {length} bytes, expected "
                                             f"{4 * width * height} (float32 pixels of a {width}x{height} image)")
        if not self.server.model_allowed(params.get("model")):
            return self._refuse(length, 403,
                                "phototox server: this server only serves the model it was started with")
        pixels = np.frombuffer(self._read(length), dtype="<f4")
        try:
            with self.server.analysis_lock:
                line, sick_map = analyse_pixels(self.server.pool, pixels, width, height, params,
                                                source=f"image sent to phototox serve ({width}x{height})")
        except PhototoxError as exc:
            return self._error(400, str(exc))
        except Exception as exc:  # keep serving; report the fault to the client
            LOGGER.exception("analysis failed")
            return self._error(500, f"phototox server: internal error: {type(exc).__name__}: {exc}")
        self._send(200, sick_map.astype("<f4").tobytes(), "application/octet-stream", {"X-Phototox-Result": line})

    def _chunks(self, length: int):
        """The request body in chunks of at most 1 MiB, until ``length`` bytes or the stream ends."""
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                return
            yield chunk
            remaining -= len(chunk)

    def _read(self, length: int) -> bytes:
        return b"".join(self._chunks(length))

    def _refuse(self, length: int, status: int, message: str) -> None:
        """Answer an error after discarding the body, so the client sees the answer.

        Bodies over DRAIN_LIMIT are not read; the connection is closed instead.
        """
        if length > DRAIN_LIMIT:
            self.close_connection = True
        else:
            for _ in self._chunks(length):
                pass
        self._error(status, message)


def serve_until_interrupted(server) -> int:
    """Serve until Ctrl-C, then close the socket; exit status 0."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, model: str = "default", device: str = "auto",
                token: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[PhototoxServer, str | None]:
    """Create the server (model loaded up front so errors show at start); return it and its token."""
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
    pool = PredictorPool(model, device)
    pool.get()
    return PhototoxServer(host, port, pool, token, max_pixels), token


def register(sub) -> None:
    """Add ``phototox serve`` to the CLI."""
    p = sub.add_parser("serve", help="HTTP API for Fiji and other programs (loopback by default)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--model", default="default")
    p.add_argument("--device", default="auto")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (generated when not on loopback)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.set_defaults(func=_run)


def _run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server, token = make_server(args.host, args.port, args.model, args.device, args.token, args.max_pixels)
    predictor = server.pool.get()
    print(f"phototox serve: http://{args.host}:{server.server_address[1]}/v1/ model {predictor.model.source} "
          f"on {predictor.device}", flush=True)
    if token:
        print(f"token: {token}  (clients send 'Authorization: Bearer <token>'; Fiji: token=... option)", flush=True)
    return serve_until_interrupted(server)
