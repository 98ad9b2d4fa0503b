"""Jinja2 templates of the dashboard and what every page is rendered with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from modelyard._version import __version__

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def markdown(text: str) -> Markup:
    """Return `text` rendered from Markdown (CommonMark and tables) with raw HTML escaped."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def as_json(value: Any) -> Markup:
    """Return `value` as JSON safe to place inside a <script type="application/json"> element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def number(value: Any, digits: int = 3) -> str:
    """Return a figure for a table: rounded floats, thousands separators, an en dash for none."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(markdown=markdown, as_json=as_json, number=number)
    env.globals["version"] = __version__
    return env


ENV = _environment()


def base_url(request: Request) -> str:
    """Return the prefix the app is mounted under ("" at the root, "/ui" under `serve --ui`)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with the request's base URL, session and CSRF token; return it."""
    session = request.scope.get("state", {}).get("session")
    html = ENV.get_template(template).render(
        request=request,
        base=base_url(request),
        session=session,
        csrf=session.csrf if session is not None else "",
        htmx=bool(request.headers.get("hx-request")),
        **context,
    )
    return HTMLResponse(html, status_code=status)
