"""Read-only job routes for the dashboard: GET /v1/jobs, /v1/jobs/{id}, /v1/jobs/{id}/logs.

`jobs_router(queue)` returns the routes; `modelyard.serve.app.create_app` mounts them
when the server's settings name a queue, behind the server's key check (an admin key:
logs and paths are operator data). Nothing here changes the queue.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from modelyard.jobs.errors import JobNotFoundError, JobsError
from modelyard.jobs.local import LocalJobs
from modelyard.jobs.spec import Job

MAX_LOG_LINES = 10_000


class JobView(BaseModel):
    """One job as the dashboard shows it."""

    id: str
    name: str
    stage: str
    target: str
    args: list[str]
    state: str = Field(description="queued, running, succeeded, failed or cancelled.")
    cpus: float
    memory: int = Field(description="Bytes of memory the job holds.")
    gpus: int
    priority: int
    attempts: int
    retries: int
    crashes: int
    max_retries: int
    max_crashes: int
    submitted_at: float = Field(description="Unix seconds.")
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    message: str
    wall_seconds: float
    cpu_seconds: float
    cpu_hours: float
    gpu_hours: float
    cost: float = Field(description="Dollars: held CPU and GPU hours times the worker's prices.")
    cost_line: str


class JobList(BaseModel):
    """Jobs, newest first, and how many are in each state."""

    jobs: list[JobView]
    counts: dict[str, int]


def _view(job: Job) -> JobView:
    return JobView.model_validate(
        {k: v for k, v in job.to_dict().items() if k in JobView.model_fields}
    )


def _get(jobs: LocalJobs, job_id: str) -> Job:
    try:
        return jobs.get(job_id)
    except JobNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


def jobs_router(queue: str | Path | None = None) -> APIRouter:
    """Return the read-only routes over the queue at `queue` (default: the user's queue)."""
    jobs = LocalJobs(queue)
    router = APIRouter(tags=["jobs"])

    @router.get("/v1/jobs", response_model=JobList)
    def list_jobs(
        state: str | None = Query(None, description="Only jobs in this state."),
        limit: int = Query(50, ge=1, le=1000, description="At most this many, newest first."),
    ) -> JobList:
        """List jobs, newest first."""
        try:
            found = jobs.list(state, limit)
        except JobsError as exc:
            raise HTTPException(422, str(exc)) from None
        return JobList(jobs=[_view(job) for job in found], counts=jobs.queue.counts())

    @router.get("/v1/jobs/{job_id}", response_model=JobView)
    def show_job(job_id: str) -> JobView:
        """One job: what it runs, what it holds, its attempts and its cost line."""
        return _view(_get(jobs, job_id))

    @router.get("/v1/jobs/{job_id}/logs", response_class=PlainTextResponse)
    def job_logs(
        job_id: str,
        tail: int = Query(200, ge=1, le=MAX_LOG_LINES, description="The last N lines."),
    ) -> str:
        """The last lines of a job's log (every attempt, each after a === header)."""
        _get(jobs, job_id)
        return jobs.logs(job_id, tail)

    return router
