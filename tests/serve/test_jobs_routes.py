"""The job routes mounted on the server: only when a queue is configured, and only for admin keys."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.jobs.queue import JobQueue
from modelyard.jobs.spec import JobSpec
from tests.serve.conftest import Keys


def test_job_routes_need_an_admin_key(
    make_app: Callable[..., FastAPI], keys: Keys, tmp_path: Path
) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    job = queue.submit(JobSpec("command", sys.executable, ("-c", "pass"), str(tmp_path)))
    with TestClient(make_app(jobs_queue=queue.path), raise_server_exceptions=False) as client:
        anonymous = client.get("/v1/jobs")
        predict = client.get("/v1/jobs", headers=keys.headers("predict"))
        admin = client.get("/v1/jobs", headers=keys.headers("admin"))
        one = client.get(f"/v1/jobs/{job.id}", headers=keys.headers("admin"))
        logs = client.get(f"/v1/jobs/{job.id}/logs", headers=keys.headers("predict"))
        missing = client.get("/v1/jobs/42", headers=keys.headers("admin"))
        paths = client.get("/openapi.json", headers=keys.headers()).json()["paths"]
    assert anonymous.status_code == 401 and predict.status_code == 403 and logs.status_code == 403
    assert admin.status_code == 200 and admin.json()["jobs"][0]["id"] == job.id
    assert one.status_code == 200 and one.json()["state"] == "queued"
    assert missing.status_code == 404 and missing.json()["code"] == "http_404"
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/logs"} <= set(paths)


def test_no_job_routes_without_a_queue(make_app: Callable[..., FastAPI], keys: Keys) -> None:
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        answer = client.get("/v1/jobs", headers=keys.headers("admin"))
    assert answer.status_code == 404
