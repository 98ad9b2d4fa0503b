"""The read-only job routes on their own: list, show, logs, and the errors they answer."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.jobs.http import jobs_router
from modelyard.jobs.queue import JobQueue
from tests.jobs.conftest import py_job, run_until_idle


def _client(queue: JobQueue) -> TestClient:
    app = FastAPI()
    app.include_router(jobs_router(queue.path))
    return TestClient(app)


def test_routes_show_jobs_and_logs_without_changing_them(queue: JobQueue, tmp_path: Path) -> None:
    done = queue.submit(py_job("print('line one'); print('line two')", tmp_path, name="first"))
    run_until_idle(queue)
    waiting = queue.submit(py_job("pass", tmp_path, cpus=2, priority=3, name="second"))
    client = _client(queue)
    listing = client.get("/v1/jobs").json()
    assert [j["id"] for j in listing["jobs"]] == [waiting.id, done.id]
    assert listing["counts"]["succeeded"] == 1 and listing["counts"]["queued"] == 1
    assert client.get("/v1/jobs", params={"state": "queued"}).json()["jobs"][0]["name"] == "second"
    one = client.get(f"/v1/jobs/{done.id}").json()
    assert one["state"] == "succeeded" and one["cost_line"].endswith("$0.0000") and one["cpus"] == 1
    logs = client.get(f"/v1/jobs/{done.id}/logs", params={"tail": 1})
    assert logs.status_code == 200 and logs.text == "line two"
    assert "line one" in client.get(f"/v1/jobs/{done.id}/logs").text
    assert queue.get(waiting.id).state == "queued"  # reading changed nothing


def test_routes_answer_404_and_422(queue: JobQueue) -> None:
    client = _client(queue)
    assert client.get("/v1/jobs/99").status_code == 404
    assert client.get("/v1/jobs/99/logs").status_code == 404
    assert client.get("/v1/jobs/not-a-number").status_code == 404
    assert client.get("/v1/jobs", params={"state": "done"}).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422
