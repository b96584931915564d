"""The annotation web app: server-rendered pages, keyboard voting, every 5th item an overlap.

Annotators sign in with a name; a new name gets a random token (shown once) that it needs to
sign in again. Items come in a random order per annotator (seeded, so a reload shows the same
item); every ``overlap_every``-th item is one already labelled by someone else, so agreement
can be measured (Richmond et al., 2017). Keys: ``h`` healthy, ``s`` sick, ``u`` unsure,
``k``/space skip. Everything user-supplied is HTML-escaped; pages carry a strict CSP.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import random
import re
import secrets
import sqlite3
import threading
import urllib.parse
from dataclasses import dataclass
from http.cookies import SimpleCookie

from phototox.apps.annotate.db import LABELS, AnnotationDB, Annotator, Item
from phototox.apps.annotate.items import frame_png
from phototox.apps.httpserve import BoundedHTTPServer, GuardedHandler, Limits

COOKIE = "phototox_annotator"
MAX_NAME = 80
MAX_BODY = 4096
MAX_ID_DIGITS = 18  # SQLite integers are 64-bit; longer ids cannot exist
FORM_TYPE = "application/x-www-form-urlencoded"
ANNOTATION_LIMITS = Limits(workers=16, queue=64, read_timeout=10.0)
KEYS = {"h": "healthy", "s": "sick", "u": "unsure", "k": "skip"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
.frames { display: flex; gap: 1rem; align-items: flex-start; flex-wrap: wrap; }
.movie { width: 384px; height: 384px; image-rendering: auto; border: 1px solid #999; }
.context { max-width: 384px; border: 1px solid #999; }
.strip img { width: 72px; height: 72px; margin: 1px; border: 1px solid #ccc; }
button { font-size: 1.1rem; margin: 0.2rem; padding: 0.4rem 1rem; }
kbd { border: 1px solid #888; border-radius: 3px; padding: 0 0.3rem; }
.error { color: #a00; } .muted { color: #666; } table td, table th { padding: 0.2rem 0.8rem; }
"""


@dataclass
class AppConfig:
    overlap_every: int = 5
    seed: int = 0
    title: str = "phototox expert annotation"
    guided: object = None
    """A :class:`~phototox.apps.annotate.guided.GuidedState` in ``--suggest`` mode, else None."""


def next_item(db: AnnotationDB, annotator: Annotator, config: AppConfig) -> tuple[Item | None, bool]:
    """The item to show next and whether it is an overlap item (see module docstring)."""
    if config.guided is not None:  # --suggest: test fields, random and suggested windows
        from phototox.apps.annotate.guided import next_guided_item

        item, kind = next_guided_item(db, annotator, config.guided, config.overlap_every)  # type: ignore[arg-type]
        return item, kind == "overlap"
    n = db.count_votes(annotator.id)
    seen = db.seen_items(annotator.id)
    rng = random.Random(f"{config.seed}:{annotator.id}:{n}")
    if config.overlap_every > 0 and (n + 1) % config.overlap_every == 0:
        overlap_pool = sorted(db.items_scored_by_others(annotator.id) - seen)
        if overlap_pool:
            return db.item(rng.choice(overlap_pool)), True
    all_ids = {item.id for item in db.items()}
    fresh = sorted(all_ids - seen - db.items_scored_by_anyone())
    pool = fresh or sorted(all_ids - seen)
    if not pool:
        return None, False
    return db.item(rng.choice(pool)), False


class AnnotationServer(BoundedHTTPServer):
    """The app's server: bounded threads, queue and read deadlines (see :mod:`phototox.apps.httpserve`)."""

    busy_message = "annotation app busy; reload the page in a moment"

    def __init__(
        self,
        address: tuple[str, int],
        db: AnnotationDB | None,
        config: AppConfig,
        limits: Limits | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        super().__init__(address, _Handler, limits or ANNOTATION_LIMITS, allowed_hosts)
        self.db: AnnotationDB = db  # type: ignore[assignment]  # None only until set after binding
        self.config = config
        self.secret = secrets.token_bytes(32)
        self.lock = threading.Lock()

    def csrf_for(self, token: str) -> str:
        return hmac.new(self.secret, token.encode(), hashlib.sha256).hexdigest()[:32]


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


class _Handler(GuardedHandler):
    server: AnnotationServer
    error_prefix = "annotation app"

    def log_message(self, fmt, *args) -> None:
        pass

    # -- plumbing -----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None, nonce: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")  # "no-referrer" makes browsers send Origin: null
        script = f"'nonce-{nonce}'" if nonce else "'none'"
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
            f"script-src {script}; form-action 'self'; frame-ancestors 'none'",
        )
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser moved on (e.g. animation frames)
            self.close_connection = True

    def _html(self, status: int, title: str, body: str, headers: dict | None = None, nonce: str = "") -> None:
        self._send(status, _page(title, body).encode("utf-8"), "text/html; charset=utf-8", headers, nonce)

    def _redirect(self, location: str, headers: dict | None = None) -> None:
        self._send(303, b"", "text/plain", {"Location": location, **(headers or {})})

    def _error(self, status: int, message: str, close: bool = False) -> None:
        if close:
            self.close_connection = True
        self._html(
            status,
            "error",
            f"<h1>Sorry</h1><p class='error'>{html.escape(message)}</p><p><a href='/'>back</a></p>",
            {"Connection": "close"} if close else None,
        )

    def _token(self) -> str:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return cookie[COOKIE].value if COOKIE in cookie else ""

    def _annotator(self) -> Annotator | None:
        token = self._token()
        return self.server.db.annotator_by_token(token) if token else None

    def _form(self) -> dict[str, str] | None:
        """The posted form, or None after answering (too large, wrong type, body not arriving)."""
        length = self.content_length
        if length > MAX_BODY:
            self._error(413, "request too large", close=True)
            return None
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if length and content_type != FORM_TYPE:
            self._error(415, f"only HTML forms are accepted (Content-Type {FORM_TYPE})", close=True)
            return None
        data = self.read_body(length)
        if data is None:
            return None
        return {
            k: v[-1]
            for k, v in urllib.parse.parse_qs(data.decode("utf-8", errors="replace"), keep_blank_values=True).items()
        }

    # -- GET ----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urllib.parse.urlparse(self.path).path
        if path == "/":
            return self._signin_page()
        if path == "/annotate":
            return self._annotate_page()
        if path == "/progress":
            return self._progress_page()
        context = re.fullmatch(rf"/item/(\d{{1,{MAX_ID_DIGITS}}})/context\.png", path)
        if context and self.server.config.guided is not None:
            return self._context(int(context.group(1)))
        match = re.fullmatch(rf"/item/(\d{{1,{MAX_ID_DIGITS}}})/(\d{{1,6}})\.png", path)
        if match:
            return self._frame(int(match.group(1)), int(match.group(2)))
        self._error(404, "no such page")

    def _signin_page(self, message: str = "", status: int = 200) -> None:
        error = f"<p class='error'>{html.escape(message)}</p>" if message else ""
        self._html(
            status,
            self.server.config.title,
            f"""
<h1>{html.escape(self.server.config.title)}</h1>
<p>Label short phase-contrast sequences as <b>healthy</b>, <b>sick</b> or <b>unsure</b>.
New here? Enter a name and leave the token empty: you will get a token to sign in again.</p>
{error}
<form method="post" action="/signin" id="signin">
  <label>Name <input name="name" id="name" maxlength="{MAX_NAME}" required autofocus></label>
  <label>Token <input name="token" id="token" autocomplete="off"></label>
  <button type="submit" id="go">Sign in</button>
</form>""",
        )

    def _annotate_page(self) -> None:
        annotator = self._annotator()
        if annotator is None:
            return self._redirect("/")
        db, config = self.server.db, self.server.config
        item, overlap = next_item(db, annotator, config)
        done = db.count_votes(annotator.id)
        total = len(db.items())
        header = (
            f"<p>Signed in as <b id='who'>{html.escape(annotator.name)}</b> &middot; "
            f"<span id='progress'>{done}</span> votes &middot; {total} items &middot; <a href='/progress'>progress</a></p>"
        )
        if item is None:
            return self._html(200, "all done", header + "<h1 id='done'>All items are labelled. Thank you!</h1>")
        frames = list(range(item.last_frame - item.first_frame + 1))
        csrf = self.server.csrf_for(self._token())
        nonce = secrets.token_urlsafe(12)
        strip = "".join(f"<img src='/item/{item.id}/{k}.png' alt='frame {k + 1}'>" for k in frames)
        buttons = "".join(
            f"<button type='submit' name='label' value='{label}' id='btn-{label}'>{label} <kbd>{key}</kbd></button>"
            for key, label in KEYS.items()
        )
        context = (
            f"<img class='context' id='context' src='/item/{item.id}/context.png' alt='the whole field, "
            "window outlined'><div>the whole field: the window outlined in yellow; the white bar (when the pixel size "
            "is known) is 50 µm</div>"
            if config.guided is not None
            else ""
        )
        body = f"""{header}
<div class="frames">
  <img class="movie" id="movie" src="/item/{item.id}/0.png" alt="item" data-item="{item.id}" data-overlap="{int(overlap)}">
  {context}
  <div><p>Item <span id="item-id">{item.id}</span> &middot; {len(frames)} frame(s)</p>
  <div class="strip">{strip}</div>
  <p class="muted">Keys: <kbd>h</kbd> healthy, <kbd>s</kbd> sick, <kbd>u</kbd> unsure, <kbd>k</kbd> or space: skip</p></div>
</div>
<form method="post" action="/vote" id="vote">
  <input type="hidden" name="item" value="{item.id}"><input type="hidden" name="csrf" value="{csrf}">
  <input type="hidden" name="label" id="label" value="">
  {buttons}
</form>
<script nonce="{nonce}">
const n = {len(frames)}, movie = document.getElementById('movie'); let k = 0;
if (n > 1) setInterval(() => {{ k = (k + 1) % n; movie.src = '/item/{item.id}/' + k + '.png'; }}, 300);
const keys = {{h: 'healthy', s: 'sick', u: 'unsure', k: 'skip', ' ': 'skip'}};
let sent = false;
document.addEventListener('keydown', (e) => {{
  const label = keys[e.key.toLowerCase()];
  if (!label || sent || e.ctrlKey || e.metaKey || e.altKey) return;
  e.preventDefault(); sent = true;
  document.getElementById('label').value = label; document.getElementById('vote').submit();
}});
document.getElementById('vote').addEventListener('submit', () => {{ sent = true; }});
</script>"""
        self._html(200, config.title, body, nonce=nonce)

    def _progress_page(self) -> None:
        if self._annotator() is None:
            return self._redirect("/")
        db = self.server.db
        latest = db.latest_labels()
        rows = []
        for annotator in db.annotators():
            mine = {item for (item, who) in latest if who == annotator.id}
            others = {item for (item, who) in latest if who != annotator.id}
            rows.append(
                f"<tr><td>{html.escape(annotator.name)}</td><td>{db.count_votes(annotator.id)}</td>"
                f"<td>{len(mine)}</td><td>{len(mine & others)}</td></tr>"
            )
        self._html(
            200,
            "progress",
            "<h1>Progress</h1><table><tr><th>annotator</th><th>votes</th><th>items labelled"
            "</th><th>overlaps</th></tr>" + "".join(rows) + "</table><p><a href='/annotate'>"
            "back</a></p>",
        )

    def _context(self, item_id: int) -> None:
        """The guided item's whole field with the window outlined and a scale bar."""
        from phototox.apps.annotate.guided import context_png

        if self._annotator() is None:
            return self._error(403, "sign in first")
        item = self.server.db.item(item_id)
        if item is None:
            return self._error(404, "no such item")
        um = self.server.config.guided.settings.get("image_um_per_px")  # type: ignore[attr-defined]
        with self.server.lock:
            data = context_png(item, um)
        self._send(200, data, "image/png", {"Cache-Control": "private, max-age=3600"})

    def _frame(self, item_id: int, k: int) -> None:
        if self._annotator() is None:
            return self._error(403, "sign in first")
        item = self.server.db.item(item_id)
        if item is None or not 0 <= k <= item.last_frame - item.first_frame:
            return self._error(404, "no such item or frame")
        with self.server.lock:
            data = frame_png(item.path, item.first_frame + k, item.y, item.x, item.size)
        self._send(200, data, "image/png", {"Cache-Control": "private, max-age=3600"})

    # -- POST ---------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urllib.parse.urlparse(self.path).path
        if path not in ("/signin", "/vote", "/signout"):
            return self._error(404, "no such page", close=self.content_length > 0)
        if path == "/vote" and self._annotator() is None:  # refuse before reading the body
            return self._error(403, "sign in first (missing or unknown token)", close=self.content_length > 0)
        form = self._form()
        if form is None:
            return None
        if path == "/signin":
            return self._signin(form)
        if path == "/vote":
            return self._vote(form)
        if path == "/signout":
            return self._redirect("/", {"Set-Cookie": f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"})
        self._error(404, "no such page")

    def _signin(self, form: dict[str, str]) -> None:
        name = " ".join(form.get("name", "").split())
        token = form.get("token", "").strip()
        if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            return self._signin_page(f"Please give a name of 1 to {MAX_NAME} printable characters.", 400)
        db = self.server.db
        if db.annotator_exists(name):
            annotator = db.authenticate(name, token)
            if annotator is None:
                return self._signin_page("That name is taken and the token does not match it.", 403)
            return self._redirect("/annotate", {"Set-Cookie": self._cookie(token)})
        if token:
            return self._signin_page("Unknown name: leave the token empty to register it.", 403)
        try:
            annotator, token = db.create_annotator(name)
        except sqlite3.IntegrityError:  # a race on the same new name
            return self._signin_page("That name was just taken; choose another.", 409)
        self._html(
            200,
            "welcome",
            f"""<h1>Welcome, {html.escape(annotator.name)}</h1>
<p>Your token is <code id="new-token">{html.escape(token)}</code>. Keep it: you need your name and this token
to sign in again.</p><p><a href="/annotate" id="start">Start annotating</a></p>""",
            {"Set-Cookie": self._cookie(token)},
        )

    @staticmethod
    def _cookie(token: str) -> str:
        return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"

    def _vote(self, form: dict[str, str]) -> None:
        annotator = self._annotator()
        if annotator is None:
            return self._error(403, "sign in first (missing or unknown token)")
        if not hmac.compare_digest(form.get("csrf", ""), self.server.csrf_for(self._token())):
            return self._error(403, "stale or forged form; reload the page")
        label = form.get("label", "")
        if label not in LABELS:
            return self._error(400, "unknown label")
        item_text = form.get("item", "").strip()
        if not re.fullmatch(rf"\d{{1,{MAX_ID_DIGITS}}}", item_text):
            return self._error(404, "unknown item")
        try:
            self.server.db.add_vote(int(item_text), annotator.id, label)
        except ValueError:
            return self._error(404, "unknown item")
        self._redirect("/annotate")


def make_server(
    db: AnnotationDB | None,
    host: str = "127.0.0.1",
    port: int = 8780,
    config: AppConfig | None = None,
    limits: Limits | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> AnnotationServer:
    """The app's server bound to ``host:port`` (a port in use is a one-line PhototoxError).

    ``db`` may be set after binding (``server.db = ...``), before serving."""
    return AnnotationServer((host, port), db, config or AppConfig(), limits, allowed_hosts)
