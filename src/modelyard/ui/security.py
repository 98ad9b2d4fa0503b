"""Login by API key into a server-side session, CSRF tokens on every write, safe headers.

The session cookie holds only a random token; the session (key id, scope, CSRF token)
lives in this process's memory, so a stolen cookie dies with the server, a logout or the
idle timeout. Each request re-checks that the key still exists: revoking a key with
`modelyard keys revoke` logs its sessions out. Keys are verified by the serve layer's
`Authenticator` (scrypt hashes, constant-time comparison), the same keys as the HTTP API.

The middleware denies by default: every path except the login page and static files needs
a session, and every request that is not GET/HEAD/OPTIONS must carry the session's CSRF
token (form field `csrf_token` or header `X-CSRF-Token`); the login form itself carries a
double-submit token bound to a cookie.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.serve.auth import Authenticator, KeyInfo
from modelyard.serve.limits import RateLimiter

SESSION_COOKIE = "modelyard_session"
LOGIN_COOKIE = "modelyard_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/login"})
PUBLIC_PREFIXES = ("/static/",)
MAX_FORM_BYTES = 1 << 20
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@dataclass
class Session:
    """One logged-in browser: the key it logged in with and its CSRF token."""

    token: str
    key: KeyInfo
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)

    @property
    def who(self) -> str:
        """Return how logs name this person: the key's note, or its id."""
        return self.key.name or f"key {self.key.id}"


class SessionStore:
    """Sessions of one dashboard process, by cookie token; they expire after `idle_s`."""

    def __init__(self, auth: Authenticator, idle_s: float = 8 * 3600) -> None:
        self.auth, self.idle_s = auth, idle_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.failures = RateLimiter(5.0, 20)

    def login(self, key: str) -> Session | None:
        """Return a new session for a valid API key, or None."""
        info = self.auth.verify(key.strip())
        if info is None:
            return None
        session = Session(secrets.token_urlsafe(32), info)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """Return the live session of `token`; None when unknown, idle too long or revoked."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > self.idle_s or not self._key_exists(session.key.id):
            self.logout(token)
            return None
        session.seen = now
        return session

    def _key_exists(self, key_id: str) -> bool:
        return any(info.id == key_id for info in self.auth.store.list())

    def logout(self, token: str) -> None:
        """Forget the session of `token` (nothing happens when it is unknown)."""
        with self._lock:
            self._sessions.pop(token, None)


def route_path(scope: Scope) -> str:
    """Return the request path inside this app (without the prefix it is mounted under)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def cookies(headers: Headers) -> dict[str, str]:
    """Return the request's cookies by name."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header counts as none
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def same(a: str | None, b: str | None) -> bool:
    """Return True when two tokens are present and equal (constant-time)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


class SessionMiddleware:
    """Admits a request with a live session (and, for writes, its CSRF token) or answers itself."""

    def __init__(self, app: ASGIApp, sessions: SessionStore) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        path, method = route_path(scope), scope["method"]
        headers = Headers(scope=scope)
        jar = cookies(headers)
        session = self.sessions.get(jar.get(SESSION_COOKIE))
        scope.setdefault("state", {})["session"] = session
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            if method not in SAFE_METHODS:
                receive, token = await _form_token(scope, receive, headers)
                if token is None or not same(token, jar.get(LOGIN_COOKIE)):
                    await _refuse("the login form expired; reload the page")(scope, receive, send)
                    return
            await self.app(scope, receive, send)
            return
        if session is None:
            await _to_login(scope, headers)(scope, receive, send)
            return
        if method not in SAFE_METHODS:
            receive, token = await _form_token(scope, receive, headers)
            if not same(token, session.csrf):
                await _refuse("missing or wrong CSRF token; reload the page")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw = list(message.get("headers", []))
            present = {k.decode("latin-1").lower() for k, _ in raw}
            for name, value in SECURITY_HEADERS.items():
                if name not in present:
                    raw.append((name.encode("latin-1"), value.encode("latin-1")))
            message = {**message, "headers": raw}
        await send(message)

    return wrapped


def _refuse(reason: str) -> Response:
    return PlainTextResponse(f"403 Forbidden: {reason}", status_code=403)


def _to_login(scope: Scope, headers: Headers) -> Response:
    root = scope.get("root_path", "")
    target = route_path(scope)
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    url = f"{root}/login?next={quote(target, safe='')}"
    if headers.get("hx-request"):
        # htmx follows HX-Redirect with a full page load instead of swapping a login form in
        return Response(status_code=401, headers={"HX-Redirect": url})
    if scope["method"] not in SAFE_METHODS:
        return PlainTextResponse("401 Unauthorized: log in first", status_code=401)
    return RedirectResponse(url, status_code=303)


async def _form_token(
    scope: Scope, receive: Receive, headers: Headers
) -> tuple[Receive, str | None]:
    """Return a receive that replays the body, and the CSRF token of the header or form."""
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return receive, None
        more = message.get("more_body", False)
    token = headers.get(CSRF_HEADER)
    if token is None and headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD)
        token = values[0] if values else None
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, token
