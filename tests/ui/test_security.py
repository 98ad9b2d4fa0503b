"""Login by API key into a session cookie, CSRF on every write, headers, no open redirects."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from modelyard.serve.auth import KeyStore
from modelyard.ui.security import CSP, LOGIN_COOKIE, SESSION_COOKIE
from tests.ui.conftest import ui_app
from tests.ui.workspace import Workspace

# the shared workspace takes about a minute to build: out of the quick tier
pytestmark = pytest.mark.slow


@pytest.fixture()
def client(workspace: Workspace) -> TestClient:
    return TestClient(ui_app(workspace), base_url="http://127.0.0.1")


def login(client: TestClient, key: str, next_url: str = "/runs") -> Any:
    client.get("/login")
    token = client.cookies.get(LOGIN_COOKIE)
    return client.post(
        "/login", data={"key": key, "csrf_token": token, "next": next_url}, follow_redirects=False
    )


def csrf_of(client: TestClient) -> str:
    html = client.get("/runs").text
    marker = '"X-CSRF-Token": "'
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]


@pytest.mark.parametrize(
    "path", ["/runs", "/runs/tiny", "/labels", "/playground", "/compare", "/jobs", "/jobs/1"]
)
def test_every_page_without_a_session_redirects_to_login(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_htmx_requests_without_a_session_are_sent_to_login(client: TestClient) -> None:
    answer = client.get("/runs", headers={"HX-Request": "true"}, follow_redirects=False)
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"].startswith("/login")


def test_login_with_a_valid_key_sets_a_strict_http_only_cookie(
    client: TestClient, workspace: Workspace
) -> None:
    answer = login(client, workspace.predict_key, "/runs/tiny")
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/tiny"
    cookie = answer.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert workspace.predict_key not in cookie
    assert client.get("/runs").status_code == 200


def test_a_wrong_key_is_refused_and_says_so(client: TestClient, workspace: Workspace) -> None:
    answer = login(client, workspace.predict_key + "x")
    assert answer.status_code == 401
    assert "not valid" in answer.text
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_login_without_its_form_token_is_refused(client: TestClient, workspace: Workspace) -> None:
    answer = client.post("/login", data={"key": workspace.admin_key}, follow_redirects=False)
    assert answer.status_code == 403


def test_next_cannot_leave_the_dashboard(client: TestClient, workspace: Workspace) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        answer = login(client, workspace.admin_key, target)
        assert answer.headers["location"] == "/runs"


def test_a_write_without_the_csrf_token_is_refused(
    client: TestClient, workspace: Workspace
) -> None:
    login(client, workspace.admin_key)
    for data in ({"issue": "0", "action": "reject", "expected": "x"}, {"csrf_token": "wrong"}):
        answer = client.post("/labels/audit/tiny/decide", data=data)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    answer = client.post("/logout", data={}, follow_redirects=False)
    assert answer.status_code == 403


def test_logout_with_the_token_ends_the_session(client: TestClient, workspace: Workspace) -> None:
    login(client, workspace.admin_key)
    token = csrf_of(client)
    answer = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_a_revoked_key_ends_its_sessions(client: TestClient, workspace: Workspace) -> None:
    store = KeyStore(workspace.keys_file)
    info, key = store.create("predict", "short-lived")
    login(client, key)
    assert client.get("/runs").status_code == 200
    store.revoke(info.id)
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_pages_carry_a_strict_content_security_policy(
    client: TestClient, workspace: Workspace
) -> None:
    login(client, workspace.admin_key)
    answer = client.get("/runs/tiny")
    assert answer.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert answer.headers["x-frame-options"] == "DENY"
    assert "<script>" not in answer.text  # every script is a file; data is application/json


def test_a_run_outside_the_runs_folder_is_not_found(
    client: TestClient, workspace: Workspace
) -> None:
    from modelyard.ui.runs import RunIndex, UnknownRunError

    index = RunIndex(workspace.runs)
    for ref in ("..", "../data", "tiny/../../data", "/etc", "audit", ""):
        with pytest.raises(UnknownRunError):
            index.resolve(ref)
    assert index.resolve("tiny") == workspace.run.resolve()
    login(client, workspace.admin_key)
    for ref in ("%2e%2e/keys.json", "tiny%2F..%2F..%2Fdata", "audit"):
        assert client.get(f"/runs/{ref}").status_code == 404


def test_cancelling_a_job_needs_an_admin_key(client: TestClient, workspace: Workspace) -> None:
    from modelyard.jobs import api as jobs

    waiting = next(j for j in jobs.list_jobs(queue=workspace.jobs_queue) if j.state == "queued")
    login(client, workspace.predict_key)
    answer = client.post(f"/jobs/{waiting.id}/cancel", data={"csrf_token": csrf_of(client)})
    assert answer.status_code == 403
    assert "admin key" in answer.text
    assert jobs.show(waiting.id, queue=workspace.jobs_queue).state == "queued"
