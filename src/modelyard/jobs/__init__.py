"""Compute pooling: a durable job queue and scheduler on one machine, Ray when a team outgrows it.

`modelyard jobs submit` queues a stage (train, compress, audit, evaluate) or a command;
`modelyard jobs worker` runs what fits in the machine's cores, memory and GPUs. The
Python functions are in `modelyard.jobs.api`.
"""

from __future__ import annotations

from modelyard.jobs.errors import JobNotFoundError, JobsError
from modelyard.jobs.spec import EXIT_RETRYABLE, Job, JobSpec, Resources

__all__ = ["EXIT_RETRYABLE", "Job", "JobNotFoundError", "JobSpec", "JobsError", "Resources"]
