"""The job queue as Python functions; `modelyard jobs ...` maps onto these one to one.

Every function takes the same connection options: `queue` (the local queue file; default
$MODELYARD_JOBS_QUEUE or <home>/jobs/queue.db), or `backend="ray"` with the cluster's
jobs `address`, a `token_file`, and `insecure` to allow a remote cluster with no token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from modelyard.jobs.errors import JobsError
from modelyard.jobs.local import LocalJobs
from modelyard.jobs.queue import JobQueue
from modelyard.jobs.scheduler import Policy
from modelyard.jobs.spec import Job, JobSpec, Resources, parse_memory
from modelyard.jobs.transitions import RetryPolicy
from modelyard.jobs.worker import Worker, WorkerOptions

BACKENDS = ("local", "ray")


class JobBackend(Protocol):
    """Where jobs run: the local queue or a Ray cluster."""

    def submit(self, spec: JobSpec) -> Job: ...
    def get(self, job_id: str) -> Job: ...
    def list(self, state: str | None = None, limit: int | None = None) -> list[Job]: ...
    def logs(self, job_id: str, tail: int | None = None) -> str: ...
    def cancel(self, job_id: str) -> Job: ...
    def retry(self, job_id: str) -> Job: ...


def connect(
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> JobBackend:
    """Return the backend the options name; raise JobsError for a bad combination."""
    if backend == "local":
        if address is not None:
            raise JobsError("--address is for --backend ray; the local backend takes --queue PATH")
        return LocalJobs(queue)
    if backend == "ray":
        if address is None:
            raise JobsError("--backend ray needs --address http://HOST:8265 (the Ray dashboard)")
        from modelyard.jobs.ray_backend import RayJobs

        return RayJobs(address, token_file, insecure)
    raise JobsError(f"unknown jobs backend '{backend}'; use one of: {', '.join(BACKENDS)}")


def submit(
    target: str | Path,
    args: list[str] | None = None,
    stage: str = "train",
    cpus: float = 1.0,
    memory: str | int = "1G",
    gpus: int = 0,
    priority: int = 0,
    name: str | None = None,
    max_retries: int = 3,
    max_crashes: int = 3,
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> Job:
    """Queue `stage` on `target` (a recipe, a run folder, or a program for `command`); return the job.

    `args` are the stage's own arguments (overrides, options). Raises JobsError,
    RecipeError or UnknownPluginError when the job could not run as given.
    """
    spec = JobSpec(
        stage=stage,
        target=str(target),
        args=tuple(args or ()),
        cwd=os.getcwd(),
        resources=Resources(float(cpus), parse_memory(memory), int(gpus)),
        priority=int(priority),
        name=name or f"{stage} {Path(str(target)).name}",
        max_retries=max_retries,
        max_crashes=max_crashes,
    )
    return connect(queue, backend, address, token_file, insecure).submit(spec)


def list_jobs(
    state: str | None = None,
    limit: int | None = 50,
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> list[Job]:
    """Return jobs, newest first: only those in `state` if given, at most `limit`."""
    return connect(queue, backend, address, token_file, insecure).list(state, limit)


def show(
    job_id: str,
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> Job:
    """Return one job; raise JobNotFoundError when there is none with that id."""
    return connect(queue, backend, address, token_file, insecure).get(job_id)


def history(job_id: str, queue: str | Path | None = None) -> list[dict[str, Any]]:
    """Return what happened to a local job (submitted, started, requeued, ...), oldest first."""
    return JobQueue(queue).events(job_id)


def logs(
    job_id: str,
    tail: int | None = None,
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> str:
    """Return a job's output, every attempt (the last `tail` lines if given)."""
    return connect(queue, backend, address, token_file, insecure).logs(job_id, tail)


def cancel(
    job_id: str,
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> Job:
    """Cancel a job; a running one has its whole process group stopped. Returns the job.

    Raises JobsError when the job has already finished.
    """
    return connect(queue, backend, address, token_file, insecure).cancel(job_id)


def retry(
    job_id: str,
    queue: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    token_file: str | Path | None = None,
    insecure: bool = False,
) -> Job:
    """Run a failed or cancelled job again; return it (on Ray, the new job).

    Raises JobsError for a job that is queued, running or succeeded.
    """
    return connect(queue, backend, address, token_file, insecure).retry(job_id)


def run_worker(
    queue: str | Path | None = None,
    cpus: float | None = None,
    memory: str | int | None = None,
    gpus: int | None = None,
    poll_s: float = 0.5,
    lease_s: float = 30.0,
    grace_s: float = 10.0,
    aging_s: float = 60.0,
    reserve_after_s: float = 300.0,
    backoff_s: float = 10.0,
    price_per_cpu_hour: float = 0.05,
    price_per_gpu_hour: float = 1.0,
    exit_when_idle: bool = False,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Run queued jobs on this machine until stopped (SIGTERM, Ctrl-C), or idle if asked.

    `cpus`, `memory` and `gpus` cap what the worker hands out (default: the machine's).
    Returns counts of what the worker did.
    """
    options = WorkerOptions(
        cpus=cpus,
        memory=None if memory is None else parse_memory(memory),
        gpus=gpus,
        poll_s=poll_s,
        lease_s=lease_s,
        grace_s=grace_s,
        exit_when_idle=exit_when_idle,
        max_seconds=max_seconds,
        schedule=Policy(aging_s=aging_s, reserve_after_s=reserve_after_s),
        retry=RetryPolicy(
            backoff_s=backoff_s,
            price_per_cpu_hour=price_per_cpu_hour,
            price_per_gpu_hour=price_per_gpu_hour,
        ),
    )
    return Worker(JobQueue(queue), options).run()
