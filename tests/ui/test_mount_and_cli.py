"""`modelyard serve --ui` mounts the dashboard beside the API; `modelyard ui` checks first."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from modelyard.cli import app as cli_app
from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from modelyard.ui import UiSettings, create_ui_app
from modelyard.ui.security import LOGIN_COOKIE
from tests.serve.conftest import Keys
from tests.ui.workspace import Workspace


@pytest.mark.slow  # the shared workspace
def test_serve_mounts_the_dashboard_under_ui_behind_the_same_keys(
    store: ModelStore, keys: Keys, workspace: Workspace
) -> None:
    ui = create_ui_app(UiSettings(runs=workspace.runs, keys_file=keys.store.path))
    settings = ServeSettings.model_validate(
        {"models": ["tiny:production"], "watch_aliases_s": None}
    )
    app = create_app(settings, store=store, keys=keys.store, mounts={"/ui": ui})
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.get("/ui/runs", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/login?next=%2Fruns"
        assert client.get("/v1/models").status_code == 401  # the API still wants its key
        client.get("/ui/login")
        token = client.cookies.get(LOGIN_COOKIE)
        login = {"key": keys.predict, "csrf_token": token, "next": "/runs"}
        answer = client.post("/ui/login", data=login, follow_redirects=False)
        assert answer.headers["location"] == "/ui/runs"
        page = client.get("/ui/runs")
        assert page.status_code == 200 and 'href="/ui/runs/tiny"' in page.text
        assert client.get("/ui/static/vendor/uPlot.iife.min.js").status_code == 200
        assert client.post("/ui/logout", data={}).status_code == 403  # no CSRF token
        assert client.get("/v1/models", headers=keys.headers()).status_code == 200


def test_ui_refuses_to_start_without_keys(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    result = CliRunner().invoke(
        cli_app,
        ["ui", "--runs", str(tmp_path / "runs"), "--keys-file", str(tmp_path / "keys.json")],
    )
    assert result.exit_code != 0
    assert "holds none" in str(result.exception) or "holds none" in result.output


def test_ui_refuses_a_public_address_and_a_missing_runs_folder(tmp_path: Path) -> None:
    from modelyard.serve.auth import KeyStore
    from modelyard.ui.server import preflight
    from modelyard.ui.settings import UiSettingsError

    key_store = KeyStore(tmp_path / "keys.json")
    key_store.create("admin")
    (tmp_path / "runs").mkdir()
    public = UiSettings(runs=tmp_path / "runs", keys_file=key_store.path, host="0.0.0.0")
    try:
        preflight(public)
    except UiSettingsError as exc:
        assert "refusing to bind 0.0.0.0" in str(exc)
    else:
        raise AssertionError("a public bind was accepted")
    missing = UiSettings(runs=tmp_path / "nope", keys_file=key_store.path)
    try:
        preflight(missing)
    except UiSettingsError as exc:
        assert "does not exist" in str(exc)
    else:
        raise AssertionError("a missing runs folder was accepted")
