"""A deadline over the whole request: past it, the client gets 504 and the work is cancelled.

The queue deadline alone let answered requests take four times the setting: auth, body
reading, parsing and the answer's encoding were not covered. This middleware wraps all of
it, up to the start of the answer (a stream, once begun, runs on). Cancelling the handler cancels what it awaits: a request waiting in a predictor's
queue is dropped before its forward pass, and an explanation stops at its next step.
"""

from __future__ import annotations

import math

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.serve.errors import DeadlineExceededError
from modelyard.serve.guard import error_response

DEADLINE_KEY = "deadline"


def deadline_of(scope: Scope) -> float | None:
    """Return the anyio clock time at which this request's deadline passes, or None."""
    value = scope.get("state", {}).get(DEADLINE_KEY)
    return float(value) if value is not None else None


class DeadlineMiddleware:
    """ASGI middleware answering 504 when a request is not answered within `timeout_s`."""

    def __init__(self, app: ASGIApp, timeout_s: float, exempt: tuple[str, ...] = ()) -> None:
        self.app, self.timeout_s = app, timeout_s
        # prefixes of mounted apps with their own long-lived pages (the dashboard)
        self.exempt = tuple(p.rstrip("/") for p in exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or any(
            path == p or path.startswith(p + "/") for p in self.exempt
        ):
            await self.app(scope, receive, send)
            return
        started = False
        deadline = anyio.current_time() + self.timeout_s
        guard = anyio.CancelScope(deadline=deadline)

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                guard.deadline = math.inf  # the answer has begun: a stream, once begun, runs on
            await send(message)

        scope.setdefault("state", {})[DEADLINE_KEY] = deadline
        with guard:
            await self.app(scope, receive, tracked)
        if guard.cancelled_caught and not started:
            exc = DeadlineExceededError(
                f"no answer within the {self.timeout_s:g} s deadline; the server is busy, "
                "retry later or send less work"
            )
            await error_response(exc)(scope, receive, send)
