"""The gate every HTTP request passes before routing: key, scope, rate, body size.

It denies by default: every path needs a valid key except the health probes listed in
PUBLIC_PATHS, so a route added later is protected without anyone remembering to. Paths
under ADMIN_PREFIXES (admin routes, job listings and logs) need an admin key. All checks run
before the body is parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.registry.store import is_number
from modelyard.serve.auth import Authenticator, KeyInfo
from modelyard.serve.auth import Scope as KeyScope
from modelyard.serve.errors import (
    ForbiddenError,
    OverloadedError,
    PayloadTooLargeError,
    ServeError,
    UnauthorizedError,
    UnsupportedMediaError,
)
from modelyard.serve.limits import RateLimiter

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
ADMIN_PREFIX = "/v1/admin/"
# job listings and logs name data, paths and errors: operator data, not for prediction keys
ADMIN_PREFIXES = (ADMIN_PREFIX, "/v1/jobs")
# concurrent key hashes (16 MiB and ~50 ms of CPU each): more would only queue on the cores
HASH_SLOTS = 2
KEY_HINT = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


# the OpenAI-compatible routes answer errors in OpenAI's shape, which its clients parse
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions")
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(message: str, code: str, status: int, path: str = "") -> dict[str, Any]:
    """Return an error body: `{"error": message, "code": code}`, or on the OpenAI routes
    `{"error": {"message", "type", "param", "code"}}`."""
    if path in OPENAI_PATHS:
        kind = _OPENAI_TYPES.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"error": message, "code": code}


def error_response(exc: ServeError, path: str = "") -> JSONResponse:
    """Return the JSON answer for `exc` (shaped for `path`, see error_body) and its headers."""
    return JSONResponse(
        error_body(str(exc), exc.code, exc.status, path), exc.status, headers=exc.headers
    )


def presented_key(headers: Headers) -> str | None:
    """Return the API key of a request (Bearer token or X-API-Key header), or None."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def needed_scope(path: str) -> KeyScope:
    """Return the key scope a path needs: admin under ADMIN_PREFIXES, predict elsewhere."""
    return "admin" if path.startswith(ADMIN_PREFIXES) else "predict"


class GuardMiddleware:
    """ASGI middleware that admits a request or answers 401/403/413/415/429 itself."""

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator | None,
        limiter: RateLimiter,
        unverified: RateLimiter,
        max_body_bytes: int,
        self_guarded: tuple[str, ...] = (),
        saturated: Callable[[str], bool] | None = None,
    ) -> None:
        self.app, self.auth = app, auth
        # prefixes of mounted apps that check their own sessions (the dashboard)
        self.self_guarded = tuple(p.rstrip("/") for p in self_guarded)
        self.limiter, self.unverified = limiter, unverified
        self.max_body_bytes = max_body_bytes
        self._hash_slots = anyio.CapacityLimiter(HASH_SLOTS)
        # asked with the path before the body is read: True refuses at once (503), so an
        # overloaded server spends no body reading, parsing or validation on what it refuses
        self.saturated = saturated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._self_guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            key = await self._admit(scope)
            if self.saturated is not None and self.saturated(scope["path"]):
                raise OverloadedError("every model's queue is full; retry later")
            receive = await self._read_body(scope, receive)
        except ServeError as exc:
            await error_response(exc, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)

    def _self_guarded(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.self_guarded)

    async def _admit(self, scope: Scope) -> KeyInfo | None:
        if scope["path"] in PUBLIC_PATHS:
            return None
        client = f"addr:{(scope.get('client') or ('?', 0))[0]}"
        if self.auth is None:
            self.limiter.check(client)
            return None
        info = await self._verify(Headers(scope=scope), client)
        if not info.allows(needed_scope(scope["path"])):
            raise ForbiddenError(
                f"this route needs an admin key; key '{info.id}' has scope '{info.scope}'"
            )
        self.limiter.check(f"key:{info.id}")
        return info

    async def _verify(self, headers: Headers, client: str) -> KeyInfo:
        assert self.auth is not None
        key = presented_key(headers)
        if key is None:
            raise UnauthorizedError(
                f"this route needs an API key; {KEY_HINT} (create one with `modelyard keys create`)"
            )
        info = self.auth.cached(key)
        if info is not None:
            return info
        self.unverified.check(client, cost=0)
        key_id = self.auth.known_id(key)
        # hashing a key is slow on purpose, so it is rationed: an unknown id costs no hash,
        # and each hash takes a token from its key id's bucket and from one shared by all
        # callers (whatever address they come from), with at most HASH_SLOTS at once
        if key_id is not None:
            self.unverified.check(f"id:{key_id}")
            self.unverified.check("hashing")
            info = await anyio.to_thread.run_sync(self.auth.verify, key, limiter=self._hash_slots)
        if info is None:
            self.unverified.charge(client)
            raise UnauthorizedError(
                f"the API key is not valid (unknown, revoked or mistyped); {KEY_HINT}"
            )
        return info

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        headers = Headers(scope=scope)
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise UnsupportedMediaError(
                f"compressed request bodies ({encoding}) are not accepted; send them uncompressed"
            )
        declared = headers.get("content-length")
        if declared is not None and is_number(declared) and int(declared) > self.max_body_bytes:
            raise self._too_large(int(declared))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"", receive, message)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                raise self._too_large(size)
            more = message.get("more_body", False)
        return _replay(b"".join(chunks), receive)

    def _too_large(self, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the request body has {size} bytes or more; at most {self.max_body_bytes} are accepted, "
            "split the request"
        )


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    pending: list[Message] = [
        first if first is not None else {"type": "http.request", "body": body, "more_body": False}
    ]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
