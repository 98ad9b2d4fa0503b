"""Which waiting jobs to start now: priority with aging, placed by the resources they ask for.

A waiting job's effective priority grows by one level every `aging_s` seconds, so a low
priority job overtakes newer high priority ones in the end. Jobs are taken in that order
and started when they fit in what is free; a job that does not fit lets smaller ones past
(backfill), until it has waited `reserve_after_s`: then nothing behind it starts before it
does, so a large job is not starved by a stream of small ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelyard.jobs.spec import Resources


@dataclass(frozen=True)
class Policy:
    """How the scheduler orders and holds back jobs."""

    aging_s: float = 60.0
    reserve_after_s: float = 300.0


@dataclass(frozen=True)
class Waiting:
    """A queued job as the scheduler sees it: `since` is when it became eligible to run."""

    id: int
    priority: int
    since: float
    resources: Resources


def effective_priority(job: Waiting, now: float, aging_s: float) -> float:
    """Return the job's priority plus one level for every `aging_s` seconds it has waited."""
    return job.priority + max(0.0, now - job.since) / aging_s


def plan(
    waiting: Sequence[Waiting], free: Resources, capacity: Resources, now: float, policy: Policy
) -> list[Waiting]:
    """Return the jobs to start now, in order; their resources together fit in `free`.

    Jobs that could never fit in `capacity` are skipped (they stay queued for a larger
    worker) and never hold others back.
    """
    order = sorted(
        (job for job in waiting if job.resources.fits_in(capacity)),
        key=lambda job: (-effective_priority(job, now, policy.aging_s), job.since, job.id),
    )
    chosen: list[Waiting] = []
    for job in order:
        if job.resources.fits_in(free):
            chosen.append(job)
            free = free - job.resources
        elif now - job.since >= policy.reserve_after_s:
            break
    return chosen
