"""The jobs page: the queue, running and finished jobs, a job's log, cancel and retry.

It reads and changes the local job queue through `modelyard.jobs.api`, the same functions
`modelyard jobs ...` calls. Cancelling and retrying need an admin key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import ModelyardError
from modelyard.ui.pages import not_found
from modelyard.ui.render import page
from modelyard.ui.settings import UiSettings

GROUPS = (("Running", ("running",)), ("Queued", ("queued",)),
          ("Finished", ("succeeded", "failed", "cancelled")))  # fmt: skip
LOG_TAIL = 400


def _queue(request: Request) -> Path | None:
    settings: UiSettings = request.app.state.settings
    if settings.jobs_queue is not None:
        return settings.jobs_queue
    from modelyard.jobs.queue import default_queue_path

    path = default_queue_path()
    return path if path.is_file() else None


def _admin(request: Request) -> bool:
    return bool(request.scope["state"]["session"].key.allows("admin"))


def _grouped(jobs: list[Any]) -> list[tuple[str, list[Any]]]:
    return [(title, [j for j in jobs if j.state in states]) for title, states in GROUPS]


async def jobs_page(request: Request) -> Response:
    """Jobs by state, newest first; each links to its log."""
    from modelyard.jobs import api as jobs_api

    queue = _queue(request)
    jobs: list[Any] = []
    error = None
    if queue is not None:
        try:
            jobs = await run_in_threadpool(jobs_api.list_jobs, None, 200, queue)
        except ModelyardError as exc:
            error = str(exc)
    return page(
        request, "jobs.html", title="Jobs", groups=_grouped(jobs), queue=queue, error=error,
        message=request.query_params.get("message"),
    )  # fmt: skip


async def job_page(request: Request) -> Response:
    """One job: what it runs, its attempts and cost, its history and the end of its log."""
    from modelyard.jobs import api as jobs_api

    queue = _queue(request)
    job_id = request.path_params["job_id"]
    if queue is None:
        return not_found(request, "no job queue is configured")
    try:
        job = await run_in_threadpool(jobs_api.show, job_id, queue)
        log = await run_in_threadpool(jobs_api.logs, job_id, LOG_TAIL, queue)
        events = await run_in_threadpool(jobs_api.history, job_id, queue)
    except ModelyardError as exc:
        return not_found(request, str(exc))
    template = "_job_log.html" if request.headers.get("hx-request") else "job.html"
    return page(
        request, template, title=f"Job {job.id}", job=job, log=log, events=events,
        admin=_admin(request), message=request.query_params.get("message"),
    )  # fmt: skip


async def job_action(request: Request) -> Response:
    """Cancel or retry a job (admin keys only); return to its page with what happened."""
    from urllib.parse import quote

    from starlette.responses import RedirectResponse

    from modelyard.jobs import api as jobs_api
    from modelyard.ui.render import base_url

    queue = _queue(request)
    job_id, action = request.path_params["job_id"], request.path_params["action"]
    if queue is None or action not in ("cancel", "retry"):
        return not_found(request, "no such job action")
    if not _admin(request):
        return page(request, "error.html", 403, title="Forbidden",
                    message=f"{action} needs an admin key; this session's key has scope predict")  # fmt: skip
    call = jobs_api.cancel if action == "cancel" else jobs_api.retry
    try:
        job = await run_in_threadpool(call, job_id, queue)
        message = f"job {job.id} is {job.state}"
    except ModelyardError as exc:
        job_id, message = job_id, str(exc)
    url = f"{base_url(request)}/jobs/{quote(job_id)}?message={quote(message)}"
    return RedirectResponse(url, status_code=303)
