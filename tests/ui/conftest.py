"""Fixtures of the dashboard tests: a real workspace, the app, a live server and a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import LiveServer, keys, start_server, stop_server, store, tiny_runs  # noqa: F401  (the serve fixtures)
from tests.ui.workspace import Workspace, build_workspace

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
AXE = Path(__file__).parent / "assets" / "axe.min.js"


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Workspace:
    """The workspace, built once per session (about a minute)."""
    return build_workspace(tmp_path_factory.mktemp("ui-workspace"), tiny_backbone)


@pytest.fixture(scope="session")
def workspace(built_workspace: Workspace) -> Workspace:
    """The workspace the browser tests share (labelling tests write to its data files)."""
    return built_workspace


def ui_app(ws: Workspace) -> Any:
    """Return the dashboard app over a workspace."""
    from modelyard.ui import UiSettings, create_ui_app

    settings = UiSettings(
        runs=ws.runs, keys_file=ws.keys_file, data=ws.data, jobs_queue=ws.jobs_queue
    )
    return create_ui_app(settings)


@pytest.fixture(scope="session")
def ui_server(workspace: Workspace) -> Iterator[LiveServer]:
    """The dashboard on 127.0.0.1 (a free port), for the browser."""
    live = start_server(ui_app(workspace))
    yield live
    stop_server(live)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (skipped when it is not installed)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def log_in(page: Any, url: str, key: str) -> None:
    """Log in through the login form and wait for the page it leads to."""
    page.goto(f"{url}/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/runs")


@pytest.fixture()
def page(browser: Any, ui_server: LiveServer, workspace: Workspace) -> Iterator[Any]:
    """A logged-in page at 1280x800 that fails the test on any console error (CSP included)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, ui_server.url, workspace.admin_key)
    yield page
    context.close()
    assert errors == [], f"browser console errors: {errors}"
