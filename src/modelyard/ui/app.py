"""`create_ui_app(settings) -> Starlette`: the dashboard, behind the API's keys.

Server-rendered pages (Jinja2) with a little JavaScript: uPlot draws the line charts and htmx
swaps table rows and results in place; both are shipped in `static/vendor/`, so the
dashboard works offline. `modelyard ui` serves it alone; `modelyard serve --ui` mounts the
same app under `/ui` of the HTTP service.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelyard.serve.auth import Authenticator, KeyStore
from modelyard.serve.errors import RateLimitedError
from modelyard.ui import jobs, labelling, pages, tools
from modelyard.ui.models import ModelCache
from modelyard.ui.render import STATIC, base_url, page
from modelyard.ui.runs import RunIndex
from modelyard.ui.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SessionMiddleware,
    SessionStore,
    cookies,
)
from modelyard.ui.settings import UiSettings


def _cookie_path(request: Request) -> str:
    return base_url(request) or "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _local_target(target: str) -> str:
    """Return `target` if it is a path inside this app, else "/runs" (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/runs"
    return target


async def login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    """The login page: an API key field; sets the cookie its double-submit token is bound to."""
    token = cookies(request.headers).get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        status=status,
        title="Log in",
        login_token=token,
        next=_local_target(request.query_params.get("next", "/runs")),
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", path=_cookie_path(request),
        secure=_secure(request),
    )  # fmt: skip
    return response


async def login(request: Request) -> Response:
    """Check the API key; on success start a session and go where the person was headed."""
    sessions: SessionStore = request.app.state.sessions
    client = f"addr:{request.client.host if request.client else '?'}"
    form = await request.form()
    try:
        sessions.failures.check(client, cost=0)
    except RateLimitedError as exc:
        return await login_form(request, str(exc), 429)
    session = sessions.login(str(form.get("key", "")))
    if session is None:
        sessions.failures.charge(client)
        return await login_form(
            request, "That key is not valid (unknown, revoked or mistyped).", 401
        )
    target = base_url(request) + _local_target(str(form.get("next", "/runs")))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session.token, httponly=True, samesite="strict",
        path=_cookie_path(request), secure=_secure(request),
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    """End the session and return to the login page."""
    sessions: SessionStore = request.app.state.sessions
    token = cookies(request.headers).get(SESSION_COOKIE)
    if token:
        sessions.logout(token)
    response = RedirectResponse(base_url(request) + "/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request))
    return response


async def home(request: Request) -> Response:
    """The start page is the run list."""
    return RedirectResponse(base_url(request) + "/runs", status_code=303)


def routes() -> list[Route | Mount]:
    """Return the dashboard's routes; more specific run paths come before the run page."""
    return [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/runs", pages.runs_list),
        Route("/runs/{ref:path}/history.json", pages.run_history),
        Route("/runs/{ref:path}/compression", pages.compression_page),
        Route("/runs/{ref:path}/explain", tools.explain_page),
        Route("/runs/{ref:path}", pages.run_page),
        Route("/compare", pages.compare_page),
        Route("/playground", tools.playground_page),
        Route("/labels", labelling.labels_page),
        Route("/labels/audit/{name}", labelling.audit_page),
        Route("/labels/audit/{name}/decide", labelling.decide, methods=["POST"]),
        Route("/labels/audit/{name}/undo", labelling.undo, methods=["POST"]),
        Route("/labels/batches", labelling.new_batch, methods=["POST"]),
        Route("/labels/batch/{run}/{file}", labelling.batch_page),
        Route("/labels/batch/{run}/{file}/save", labelling.save_label, methods=["POST"]),
        Route("/labels/batch/{run}/{file}/undo", labelling.undo, methods=["POST"]),
        Route("/labels/batch/{run}/{file}/import", labelling.import_batch, methods=["POST"]),
        Route("/jobs", jobs.jobs_page),
        Route("/jobs/{job_id}", jobs.job_page),
        Route("/jobs/{job_id}/{action}", jobs.job_action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_ui_app(
    settings: UiSettings,
    keys: KeyStore | None = None,
    index: RunIndex | None = None,
) -> Starlette:
    """Return the dashboard app for `settings`; `keys` defaults to the settings' key file.

    Raises nothing here: missing folders show as empty pages.
    """
    app = Starlette(routes=routes())
    store = keys or KeyStore(settings.keys_file)
    app.state.settings = settings
    app.state.index = index or RunIndex(Path(settings.runs), settings.registry)
    app.state.models = ModelCache()
    app.state.sessions = SessionStore(Authenticator(store), idle_s=settings.idle_hours * 3600)
    app.add_middleware(SessionMiddleware, sessions=app.state.sessions)
    return app
