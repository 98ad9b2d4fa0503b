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


NAMES = {
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "weighted_f1": "Weighted F1",
    "ece": "ECE",
    "log_loss": "Log loss",
    "latency_p50_ms": "p50 latency (ms)",
    "throughput_b32_per_s": "Texts/s (batch 32)",
    "steps": "Steps",
    "epochs_run": "Epochs",
    "train_seconds": "Training seconds",
    "samples_per_s": "Samples/s",
    "best_metric": "Best dev metric",
    "stopped_early": "Stopped early",
    "device": "Device",
    "precision": "Precision",
    "parameters": "Parameters",
    "trainable_parameters": "Trainable parameters",
    "peak_rss_mb": "Peak memory (MB)",
}


def name_of(key: str) -> str:
    """Return the display name of a metric or training figure."""
    return NAMES.get(key, key.replace("_", " "))


def number(value: Any, digits: int | None = None) -> str:
    """Return a figure for a table: floats to `digits` decimals (by default 3 below 100, 1
    below 1,000, none above), thousands separators, an en dash for none."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if digits is None:
            digits = 3 if abs(value) < 100 else 1 if abs(value) < 1000 else 0
        return f"{value:,.{digits}f}"
    return str(value)


def when(seconds: float | None) -> str:
    """Return a Unix time as UTC `YYYY-MM-DD HH:MM:SS`, or an en dash for none."""
    if seconds is None:
        return "–"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(markdown=markdown, as_json=as_json, number=number, name=name_of, when=when)
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
