"""The local backend: the queue file on this machine, worked by `modelyard jobs worker`."""

from __future__ import annotations

import time
from pathlib import Path

from modelyard.jobs.errors import JobsError
from modelyard.jobs.queue import JobQueue, tail_lines
from modelyard.jobs.resources import machine_capacity
from modelyard.jobs.spec import RUNNING, Job, JobSpec, format_memory
from modelyard.jobs.stages import check_target
from modelyard.jobs.transitions import RetryPolicy, recover


class LocalJobs:
    """Jobs in the queue at `path` (default: $MODELYARD_JOBS_QUEUE or <home>/jobs/queue.db)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.queue = JobQueue(path)

    def submit(self, spec: JobSpec) -> Job:
        """Check `spec` against its stage and this machine, queue it, and return the job.

        Raises JobsError (or the stage's RecipeError) when it could never run here.
        """
        spec.check()
        check_target(spec)
        have, want = machine_capacity(), spec.resources
        if not want.fits_in(have):
            raise JobsError(
                f"the job asks for {want.cpus:g} CPUs, {format_memory(want.memory)} and "
                f"{want.gpus} GPUs; this machine has {have.cpus:g} CPUs, "
                f"{format_memory(have.memory)} and {have.gpus} GPUs"
            )
        return self.queue.submit(spec)

    def get(self, job_id: str) -> Job:
        """Return the job `job_id`; raise JobNotFoundError if there is none."""
        return self.queue.get(job_id)

    def list(self, state: str | None = None, limit: int | None = None) -> list[Job]:
        """Return jobs, newest first (only `state`, at most `limit`, if given)."""
        return self.queue.list(state, limit)

    def logs(self, job_id: str, tail: int | None = None) -> str:
        """Return the job's log, every attempt (its last `tail` lines if given)."""
        self.queue.get(job_id)
        path = self.queue.log_path(job_id)
        if tail is not None:
            return tail_lines(path, tail)
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def cancel(self, job_id: str) -> Job:
        """Cancel the job; a running one is stopped by its worker (or here, if that worker died)."""
        job = self.queue.cancel(job_id)
        if job.state == RUNNING:
            recover(self.queue, RetryPolicy(), time.time(), lease_s=30.0)
            job = self.queue.get(job_id)
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again and return it."""
        return self.queue.retry(job_id)
