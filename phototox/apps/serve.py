"""``phototox serve``: a small HTTP API so that programs in other processes (Fiji started on its
own, scripts in other languages) can use the same model.

``GET /v1/status`` answers JSON. ``POST /v1/analyse?width=W&height=H[&pixel_size=UM&stride=&mode=&threshold=
&model=&device=&normalisation=]`` takes the frame as W*H little-endian float32 values
(``Content-Type: application/octet-stream``), or as a PNG or TIFF file (``image/png``, ``image/tiff``;
no width and height: the file's header gives them, checked against ``--max-pixels`` before decoding),
and answers the W*H float32 sickness map (``X-Phototox-Width``/``-Height``), with the numbers in the ``X-Phototox-Result`` header
(``key=value;...``, including the pixel size used and where it came from, ``out_of_domain`` and the
quality flags; without ``pixel_size`` the model's is assumed and the header says so). Errors are
plain-text 4xx/5xx answers meant for the user.

Who can use it (see SECURITY.md): it listens on loopback by default; bound to any other address it
requires a bearer token (``--token``, or one generated and printed at start). The ``Host`` header
must name the server and browsers on other sites are refused (``Origin``), so web pages cannot
drive it. Only the models given at start (``--model``, repeatable, and ``--allow-model``) are
served; the predictor cache holds at most ``--max-models``. Resources are bounded by
:mod:`phototox.apps.httpserve` (worker pool, queue, read deadlines), ``--max-pixels`` per request and
``--max-pixels-in-flight`` across requests (beyond: ``503`` with ``Retry-After``).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from phototox import __version__
from phototox.apps.httpserve import (
    BoundedHTTPServer,
    GuardedHandler,
    Limits,
    is_loopback,
    serve_until_interrupted,
)
from phototox.errors import PhototoxError
from phototox.io.images import BODY_KINDS

__all__ = ["PhototoxServer", "is_loopback", "make_server", "model_key", "serve_until_interrupted"]

LOGGER = logging.getLogger("phototox.serve")
DEFAULT_PORT = 8765
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_MODELS = 4
DRAIN_LIMIT = 16 << 20  # refused bodies up to 16 MiB are read and discarded (clean answer); larger: closed unread
BODY_TYPES = ("", "application/octet-stream")
"""Raw float32 bodies (``width`` and ``height`` in the query)."""
IMAGE_HEADER_SLACK = 1 << 20
"""Bytes an image body may exceed ``4 * --max-pixels`` by (headers, tags, uncompressed PNG rows)."""
BUSY_PIXELS = "phototox server: busy (too many pixels being analysed); try again shortly"

if TYPE_CHECKING:  # the parser (phototox --help) must not import torch
    from phototox.results.analysis_requests import PredictorPool


def model_key(spec: str | None) -> str:
    """The identity of a model argument, for the allow-list: aliases folded, local paths resolved."""
    from phototox.models.loader import SHIPPED_ALIASES

    text = (spec or "").strip()
    if text in SHIPPED_ALIASES:
        return "shipped"
    if text.startswith(("http://", "https://", "shipped:")):
        return text
    path = Path(text).expanduser()
    try:
        return str(path.resolve()) if path.exists() else text
    except (OSError, RuntimeError):
        return text


class PixelBudget:
    """Pixels of request bodies held at once across all requests (non-blocking take/give)."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self._lock = threading.Lock()

    def take(self, pixels: int) -> bool:
        with self._lock:
            if self.used + pixels > self.total:
                return False
            self.used += pixels
            return True

    def give(self, pixels: int) -> None:
        with self._lock:
            self.used -= pixels


class PhototoxServer(BoundedHTTPServer):
    """HTTP server holding the predictor pool and the access rules."""

    busy_message = "phototox server: busy (too many connections); try again shortly"

    def __init__(
        self,
        host: str,
        port: int,
        pool: PredictorPool,
        token: str | None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        allowed_models: tuple[str, ...] = (),
        max_pixels_in_flight: int | None = None,
        limits: Limits | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        super().__init__((host, port), _Handler, limits, allowed_hosts)
        self.pool, self.token, self.max_pixels = pool, token, max_pixels
        self.loopback = is_loopback(host)
        self.allowed = {model_key(spec): spec for spec in (pool.default_model, *allowed_models)}
        self.budget = PixelBudget(max_pixels_in_flight or max_pixels)
        self.analysis_lock = threading.Lock()  # one analysis at a time bounds memory

    def resolve_model(self, requested: str | None) -> str | None:
        """The start-up spec a request's ``model`` names, or None when it is not allowed."""
        if not (requested or "").strip():
            return self.pool.default_model
        return self.allowed.get(model_key(requested))


class _Handler(GuardedHandler):
    server: PhototoxServer
    error_prefix = "phototox server"

    def log_message(self, fmt: str, *args) -> None:  # route to logging instead of stderr spam
        LOGGER.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        if not self.server.token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode())

    def do_GET(self) -> None:
        if not self._authorised():
            return self.send_text(401, "phototox server: missing or wrong token")
        if self.content_length:
            return self._refuse(400, "phototox server: GET requests carry no body")
        if urllib.parse.urlparse(self.path).path != "/v1/status":
            return self.send_text(404, "phototox server: unknown path (use GET /v1/status or POST /v1/analyse)")
        server = self.server
        body = json.dumps(
            {
                "phototox": __version__,
                "model": server.pool.default_model,
                "device": server.pool.default_device,
                "allowed_models": sorted(server.allowed.values()),
                "max_pixels": server.max_pixels,
                "max_pixels_in_flight": server.budget.total,
            }
        ).encode()
        self._send(200, body, "application/json")

    def do_POST(self) -> None:
        url = urllib.parse.urlparse(self.path)
        if not self._authorised():
            return self._refuse(401, "phototox server: missing or wrong token")
        if url.path != "/v1/analyse":
            return self._refuse(404, "phototox server: unknown path (POST /v1/analyse)")
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in BODY_TYPES and content_type not in BODY_KINDS:
            return self._refuse(
                415,
                f"phototox server: Content-Type {content_type!r} refused; send image/png, image/tiff, "
                "or the pixels as application/octet-stream (float32, with width and height)",
            )
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        model = self.server.resolve_model(params.get("model"))
        if model is None:
            return self._refuse(
                403,
                f"phototox server: model {params['model']!r} is not one this server was "
                "started with (--model / --allow-model)",
            )
        params["model"] = model
        if content_type in BODY_KINDS:
            return self._post_image(BODY_KINDS[content_type], params)
        try:
            width, height = int(params.get("width", "0")), int(params.get("height", "0"))
        except ValueError:
            return self._refuse(400, "phototox server: width and height must be whole numbers")
        if width < 1 or height < 1:
            return self._refuse(
                400,
                f"phototox server: width and height must be at least 1, got {width}x{height} "
                "(needed for raw float32 bodies; PNG and TIFF bodies carry their own size: send them with "
                "Content-Type: image/png or image/tiff)",
            )
        length, pixels = self.content_length, width * height
        if pixels > self.server.max_pixels or length > 4 * self.server.max_pixels:
            return self._refuse(413, self._too_large(f"{width}x{height} px"))
        if length != 4 * pixels:
            return self._refuse(
                400,
                f"phototox server: body has {length} bytes, expected "
                f"{4 * pixels} (float32 pixels of a {width}x{height} image)",
            )
        if not self.server.budget.take(pixels):
            return self._refuse(503, BUSY_PIXELS, {"Retry-After": "2"})
        release = self._releaser(pixels)
        try:
            data = self.read_body(4 * pixels)
            if data is not None:
                self._analyse(np.frombuffer(data, dtype="<f4"), width, height, params, release)
        finally:
            release()

    def _releaser(self, pixels: int) -> Callable[[], None]:
        """Give ``pixels`` back to the budget once: before the answer is sent (a client's next request
        must not find them still held), or at the latest when the request ends."""
        held = [pixels]

        def release() -> None:
            if held:
                self.server.budget.give(held.pop())

        return release

    def _too_large(self, what: str) -> str:
        return (
            f"phototox server: image of {what} is larger than the server's limit of "
            f"{self.server.max_pixels} pixels (--max-pixels)"
        )

    def _post_image(self, kind: str, params: dict) -> None:
        """A PNG or TIFF body: size-checked before reading, its header's pixel count before decoding."""
        from phototox.io.images import as_grey_frames, declared_pixels, read_image_bytes

        length = self.content_length
        if length < 1:
            return self._refuse(400, f"phototox server: empty body; send the {kind} file's bytes")
        if length > 4 * self.server.max_pixels + IMAGE_HEADER_SLACK:
            return self._refuse(413, self._too_large(f"{length} bytes"))
        held = min(-(-length // 4), self.server.max_pixels)  # the body, counted as float32 pixels
        if not self.server.budget.take(held):
            return self._refuse(503, BUSY_PIXELS, {"Retry-After": "2"})
        release = self._releaser(held)
        try:
            data = self.read_body(length)
            if data is None:
                return
            source = f"{kind} image sent to phototox serve"
            try:
                pixels = declared_pixels(data, kind, source)
                if pixels > self.server.max_pixels:
                    return self.send_text(413, self._too_large(f"{pixels} declared pixels"))
                extra = max(0, pixels - held)  # held in all: the larger of body and image, <= --max-pixels
                if not self.server.budget.take(extra):
                    return self.send_text(503, BUSY_PIXELS, headers={"Retry-After": "2"})
                try:
                    image = read_image_bytes(data, kind, source)
                    frames = as_grey_frames(image, source, min_size=1, colour_hint="")
                finally:
                    self.server.budget.give(extra)
            except PhototoxError as exc:
                return self.send_text(400, str(exc).replace("\n", " "))
            if len(frames) != 1:
                return self.send_text(400, f"phototox server: {source} holds {len(frames)} frames; send one frame")
            height, width = frames.shape[1:]
            self._analyse(frames[0].ravel(), width, height, params, release)
        finally:
            release()

    def _analyse(self, pixels: np.ndarray, width: int, height: int, params: dict, release: Callable[[], None]) -> None:
        """Analyse, ``release`` the request's pixel budget, then answer."""
        from phototox.results.analysis_requests import analyse_pixels

        try:
            with self.server.analysis_lock:
                line, sick_map = analyse_pixels(
                    self.server.pool,
                    pixels,
                    width,
                    height,
                    params,
                    source=f"image sent to phototox serve ({width}x{height})",
                )
        except PhototoxError as exc:
            release()
            return self.send_text(400, str(exc).replace("\n", " "))
        except Exception as exc:  # keep serving; report the fault to the client
            release()
            LOGGER.exception("analysis failed")
            return self.send_text(500, f"phototox server: internal error: {type(exc).__name__}: {exc}")
        release()
        headers = {"X-Phototox-Result": line, "X-Phototox-Width": str(width), "X-Phototox-Height": str(height)}
        self._send(200, sick_map.astype("<f4").tobytes(), "application/octet-stream", headers)

    def _refuse(self, status: int, message: str, headers: dict | None = None) -> None:
        """Answer an error without using the body: small bodies are discarded (within the read
        deadline) so the client sees the answer; larger ones are never read and the connection closes."""
        length = self.content_length
        if 0 < length <= DRAIN_LIMIT and self.discard_body(length):
            return self.send_text(status, message, headers=headers)
        self.send_text(status, message, close=length > 0, headers=headers)


def make_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    model: str | list[str] = "default",
    device: str = "auto",
    token: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    allowed_models: tuple[str, ...] = (),
    max_models: int = DEFAULT_MAX_MODELS,
    max_pixels_in_flight: int | None = None,
    limits: Limits | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> tuple[PhototoxServer, str | None]:
    """Create the server (the start-up models loaded up front so errors show at start); return it and its token.

    ``model`` may be several specs: the first is the default, all are allowed and preloaded;
    ``allowed_models`` are allowed too but loaded on first use.
    """
    models = [model] if isinstance(model, str) else list(model) or ["default"]
    if max_pixels < 1:
        raise PhototoxError(f"--max-pixels must be at least 1, got {max_pixels}")
    if max_pixels_in_flight is not None and max_pixels_in_flight < max_pixels:
        raise PhototoxError(
            f"--max-pixels-in-flight ({max_pixels_in_flight}) must be at least --max-pixels ({max_pixels})"
        )
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
    from phototox.results.analysis_requests import PredictorPool

    pool = PredictorPool(models[0], device, max(max_models, len(models)))
    server = PhototoxServer(
        host, port, pool, token, max_pixels, (*models[1:], *allowed_models), max_pixels_in_flight, limits, allowed_hosts
    )  # the port first: fail fast
    try:
        for spec in models:
            pool.get(spec)
    except BaseException:
        server.server_close()
        raise
    return server, token


def register(sub) -> None:
    """Add ``phototox serve`` to the CLI."""
    p = sub.add_parser("serve", help="HTTP API for Fiji and other programs (loopback by default)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument(
        "--model",
        action="append",
        help="model to serve (repeatable; the first is the default; default: the shipped model); only these are served",
    )
    p.add_argument(
        "--allow-model",
        action="append",
        default=[],
        metavar="SPEC",
        help="also allow requests to name this model (loaded on first use; repeatable)",
    )
    p.add_argument("--max-models", type=int, default=DEFAULT_MAX_MODELS, help="models kept loaded at once (LRU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (generated when not on loopback)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest image per request (pixels)")
    p.add_argument(
        "--max-pixels-in-flight",
        type=int,
        help="pixels held across concurrent requests (default: --max-pixels); beyond: 503",
    )
    p.add_argument("--workers", type=int, default=Limits.workers, help="request threads")
    p.add_argument(
        "--queue",
        type=int,
        default=Limits.queue,
        help="connections that may wait for a worker; beyond them: 503 at once",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=Limits.read_timeout,
        help="seconds a request's headers may take to arrive (its body: plus 1 s per MiB)",
    )
    p.add_argument(
        "--per-address",
        type=int,
        default=Limits.per_address,
        help="connections one client address may hold at once (waiting or served); beyond: 503 at once. "
        "Behind a proxy every client has the proxy's address: raise it there",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this name in the Host header (e.g. the machine's DNS name)",
    )
    p.add_argument(
        "--reference",
        metavar="REF.npz",
        help="an 'unlike your controls' reference (phototox reference) for the default model: results carry "
        "unlike_controls_* (Fiji: UnlikeControlsFraction, UnlikeControlsPValue)",
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise PhototoxError(f"--port must be 0-65535, got {args.port}")
    if args.workers < 1 or args.max_models < 1 or args.queue < 0 or args.per_address < 1:
        raise PhototoxError("--workers, --max-models and --per-address must be at least 1, --queue at least 0")
    if not 0 < args.read_timeout <= 3600:
        raise PhototoxError(f"--read-timeout must be between 0 and 3600 seconds, got {args.read_timeout}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server, token = make_server(
        args.host,
        args.port,
        args.model or ["default"],
        args.device,
        args.token,
        args.max_pixels,
        allowed_models=tuple(args.allow_model),
        max_models=args.max_models,
        max_pixels_in_flight=args.max_pixels_in_flight,
        limits=Limits(
            workers=args.workers, queue=args.queue, read_timeout=args.read_timeout, per_address=args.per_address
        ),
        allowed_hosts=tuple(args.allow_host),
    )
    predictor = server.pool.get()
    if args.reference:  # 'unlike your controls' for the default model (phototox reference)
        from phototox.trust.novelty import NoveltyReference

        reference = NoveltyReference.load(args.reference)
        reference.check_model(predictor.model)
        server.pool.reference = reference
    print(
        f"phototox serve: http://{args.host}:{server.port}/v1/ model {predictor.model.source} on {predictor.device}",
        flush=True,
    )
    if token:
        print(f"token: {token}  (clients send 'Authorization: Bearer <token>'; Fiji: token=... option)", flush=True)
    return serve_until_interrupted(server)
