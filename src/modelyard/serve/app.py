"""`create_app(settings) -> FastAPI`: the HTTP service around the registry's models.

Layers, outermost first: metrics (times and counts every answer) → deadline (504 past
the request timeout) → guard (API key, scope, rate limit, body size) → FastAPI routes. Every error is answered as JSON
`{"error": message, "code": code}`; an unexpected one as a bare "internal server error"
(the details go to the server log, never to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp

from modelyard._version import __version__
from modelyard.backends import load_backend
from modelyard.jobs.http import jobs_router
from modelyard.registry.store import ModelStore
from modelyard.serve.auth import Authenticator, KeyStore
from modelyard.serve.deadline import DeadlineMiddleware
from modelyard.serve.errors import ServeError
from modelyard.serve.explain_routes import router as explain_router
from modelyard.serve.guard import (
    OPENAI_PATHS,
    PUBLIC_PATHS,
    GuardMiddleware,
    error_body,
    error_response,
)
from modelyard.serve.limits import RateLimiter
from modelyard.serve.metrics import MetricsMiddleware, ServeMetrics
from modelyard.serve.models import Loader, ModelSet
from modelyard.serve.oip import InferRequest
from modelyard.serve.openai_routes import router as openai_router
from modelyard.serve.routes import router
from modelyard.serve.settings import ServeSettings
from modelyard.serve.state import ServerState

log = logging.getLogger("modelyard.serve")
# hashing a key that is not cached yet costs ~50 ms of CPU: a client gets a few tries per second
_UNVERIFIED_RATE, _UNVERIFIED_BURST = 5.0, 20
_SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `modelyard keys create`.",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def is_prediction_path(path: str) -> bool:
    """Return True for the routes that queue texts on a classifier (v1 predict, v2 infer)."""
    return path == "/v1/predict" or (path.startswith("/v2/models/") and path.endswith("/infer"))


def create_app(
    settings: ServeSettings,
    store: ModelStore | None = None,
    keys: KeyStore | None = None,
    loader: Loader = load_backend,
    mounts: Mapping[str, ASGIApp] | None = None,
) -> FastAPI:
    """Return the FastAPI app serving `settings.models`; models load when the app starts.

    `store` and `keys` default to the registry and key file the settings name. `mounts`
    adds apps under path prefixes (the dashboard under `/ui`); each authenticates its own
    requests (the dashboard by session cookie, with the same keys), so the API-key guard
    lets their paths through. The app raises nothing here; loading errors surface when its
    lifespan starts.
    """
    metrics = ServeMetrics()
    models = ModelSet(settings, store or ModelStore(settings.registry), metrics, loader)
    state = ServerState(settings, models, metrics)
    app = FastAPI(
        title="modelyard",
        version=__version__,
        description=(
            "Text classification: a simple `/v1` API and the Open Inference Protocol `/v2`; "
            "text generation: OpenAI-compatible `/v1/chat/completions` and `/v1/completions`."
        ),
        lifespan=_lifespan,
        routes=[
            *router.routes,
            *explain_router.routes,
            *openai_router.routes,
            *(jobs_router(settings.jobs_queue).routes if settings.jobs_queue else []),
            *(Mount(prefix, app=sub) for prefix, sub in (mounts or {}).items()),
        ],  # flat, so route templates can be matched and enumerated
    )
    app.state.serve = state
    _add_error_handlers(app)
    auth = Authenticator(keys or KeyStore(settings.keys_file)) if settings.auth else None
    app.add_middleware(
        GuardMiddleware,
        auth=auth,
        limiter=RateLimiter(settings.rate_limit, settings.rate_burst),
        unverified=RateLimiter(_UNVERIFIED_RATE, _UNVERIFIED_BURST),
        max_body_bytes=settings.max_body_bytes,
        self_guarded=tuple(mounts or ()),
        saturated=lambda path: is_prediction_path(path) and models.saturated(),
    )
    app.add_middleware(
        DeadlineMiddleware,
        timeout_s=settings.request_timeout_s,
        # generation routes stop at their own generation_timeout_s, also mid-stream
        exempt=(*(mounts or ()), *OPENAI_PATHS),
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, router=app.router)
    app.openapi = _openapi(app, secured=settings.auth)  # type: ignore[method-assign]
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.serve
    await anyio.to_thread.run_sync(state.start)
    state.install_drain_hook()
    watcher = asyncio.create_task(state.watch_aliases())
    try:
        yield
    finally:
        state.begin_drain()
        watcher.cancel()
        await anyio.to_thread.run_sync(state.models.close)


def _add_error_handlers(app: FastAPI) -> None:
    async def serve_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServeError)
        return error_response(exc, request.url.path)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # field locations and messages only: pydantic's `input` would echo the request back
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:5]
        )
        # OpenAI's clients expect 400 for a bad request body
        status = 400 if request.url.path in OPENAI_PATHS else 422
        body = error_body(
            f"invalid request: {problems}", "invalid_request", status, request.url.path
        )
        return JSONResponse(body, status)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            error_body(
                str(exc.detail), f"http_{exc.status_code}", exc.status_code, request.url.path
            ),
            exc.status_code,
            exc.headers,
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error answering a request", exc_info=exc)
        return JSONResponse(
            error_body("internal server error", "internal", 500, request.url.path), 500
        )

    app.add_exception_handler(ServeError, serve_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _infer_schemas() -> dict[str, Any]:
    schema = InferRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"InferRequest": schema, **defs}


def _openapi(app: FastAPI, secured: bool) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(_infer_schemas())
        if secured:
            components["securitySchemes"] = _SECURITY_SCHEMES
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            for path in PUBLIC_PATHS:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
        app.openapi_schema = schema
        return schema

    return build
