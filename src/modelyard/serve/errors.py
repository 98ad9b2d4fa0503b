"""Errors of the serving layer, each with the HTTP status it answers with.

Messages are written for the caller: they say what was expected and how to fix the
request, and never carry file paths, stack traces or keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelyard.errors import ModelyardError


class ServeError(ModelyardError):
    """An error answered over HTTP with `status` and a JSON body `{"error": message}`."""

    status = 500
    code = "internal"
    headers: Mapping[str, str] | None = None


class BadRequestError(ServeError):
    """The request body is malformed (not the protocol's framing or JSON)."""

    status = 400
    code = "bad_request"


class UnauthorizedError(ServeError):
    """No API key, or one that is unknown or revoked."""

    status = 401
    code = "unauthorized"
    headers: Mapping[str, str] | None = MappingProxyType({"WWW-Authenticate": "Bearer"})


class ForbiddenError(ServeError):
    """The API key is valid but its scope does not allow this route."""

    status = 403
    code = "forbidden"


class NotFoundError(ServeError):
    """The model or version named in the request is not served."""

    status = 404
    code = "not_found"


class ConflictError(ServeError):
    """The request cannot be done in the server's present state (a version failed to load)."""

    status = 409
    code = "conflict"


class PayloadTooLargeError(ServeError):
    """The request body is larger than the server accepts."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaError(ServeError):
    """The request body is compressed or encoded in a way the server refuses."""

    status = 415
    code = "unsupported_media_type"


class InvalidRequestError(ServeError):
    """The request is well-formed but breaks a limit or the schema."""

    status = 422
    code = "invalid_request"


class RateLimitedError(ServeError):
    """The key (or client) sent more requests than its token bucket allows."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class OverloadedError(ServeError):
    """The model's queue is full, or the server is shutting down."""

    status = 503
    code = "overloaded"
    headers = MappingProxyType({"Retry-After": "1"})


class DeadlineExceededError(ServeError):
    """The answer was not ready within the per-request deadline."""

    status = 504
    code = "deadline_exceeded"
