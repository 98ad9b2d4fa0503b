"""A worker's changes to the queue: claim, start, finish, re-queue, and recovery of dead workers.

Every change is one transaction, fenced by (worker, attempt): a worker that lost a job to
recovery cannot overwrite what happened to it since.
"""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import dataclass

from modelyard.jobs.process import is_same_process, kill_stale_group
from modelyard.jobs.queue import JobQueue, add_event, row_to_job, tail_lines
from modelyard.jobs.scheduler import Waiting
from modelyard.jobs.spec import (
    CANCELLED,
    EXIT_RETRYABLE,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    Resources,
)

LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off of retryable failures, and the prices behind each job's cost line."""

    backoff_s: float = 10.0
    max_backoff_s: float = 600.0
    price_per_cpu_hour: float = 0.05
    price_per_gpu_hour: float = 1.0

    def backoff(self, retries: int) -> float:
        """Return the wait before retry number `retries` + 1: doubling, capped."""
        return float(min(self.max_backoff_s, self.backoff_s * 2**retries))

    def cost(self, resources: Resources, wall_seconds: float) -> float:
        """Return the dollars of holding `resources` for `wall_seconds`."""
        hours = wall_seconds / 3600
        return hours * (
            resources.cpus * self.price_per_cpu_hour + resources.gpus * self.price_per_gpu_hour
        )


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: exit code (None: the worker died), times, and a cancel request."""

    exit_code: int | None
    wall_seconds: float
    cpu_seconds: float
    cancelled: bool = False


def register_worker(queue: JobQueue, worker_id: str, pid: int, create_time: float,
                    capacity: Resources, now: float) -> None:  # fmt: skip
    """Record a worker that has started on this host."""
    with queue.write() as conn:
        conn.execute(
            "INSERT INTO workers (id, host, pid, proc_started, started_at, heartbeat_at, cpus,"
            " memory, gpus, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'alive')",
            (worker_id, socket.gethostname(), pid, create_time, now, now,
             capacity.cpus, capacity.memory, capacity.gpus),
        )  # fmt: skip


def heartbeat(queue: JobQueue, worker_id: str, now: float) -> None:
    """Say the worker is alive now."""
    with queue.write() as conn:
        conn.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (now, worker_id))


def stop_worker(queue: JobQueue, worker_id: str) -> None:
    """Record that the worker stopped in order (its jobs were re-queued first)."""
    with queue.write() as conn:
        conn.execute("UPDATE workers SET state = 'stopped' WHERE id = ?", (worker_id,))


def waiting(queue: JobQueue, now: float) -> list[Waiting]:
    """Return the queued jobs whose back-off is over."""
    with queue.read() as conn:
        rows = conn.execute(
            "SELECT id, priority, queued_at, not_before, cpus, memory, gpus FROM jobs"
            " WHERE state = ? AND not_before <= ?",
            (QUEUED, now),
        ).fetchall()
    return [
        Waiting(r["id"], r["priority"], max(r["queued_at"], r["not_before"]),
                Resources(r["cpus"], r["memory"], r["gpus"]))
        for r in rows
    ]  # fmt: skip


def runnable(queue: JobQueue, capacity: Resources) -> bool:
    """Return True when a queued job (in back-off or not) could run within `capacity`."""
    with queue.read() as conn:
        rows = conn.execute("SELECT cpus, memory, gpus FROM jobs WHERE state = ?", (QUEUED,))
        return any(Resources(r[0], r[1], r[2]).fits_in(capacity) for r in rows)


def claim(queue: JobQueue, job_id: int, worker_id: str, now: float) -> Job | None:
    """Mark a queued job running on `worker_id` and count the attempt; None if it was taken."""
    with queue.write() as conn:
        cursor = conn.execute(
            "UPDATE jobs SET state = ?, worker = ?, attempts = attempts + 1, started_at = ?,"
            " pid = NULL, pgid = NULL, proc_started = NULL WHERE id = ? AND state = ?",
            (RUNNING, worker_id, now, job_id, QUEUED),
        )
        if cursor.rowcount != 1:
            return None
        job = row_to_job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        add_event(conn, job_id, "started", job.attempts, worker_id, now=now)
        return job


def record_process(queue: JobQueue, job: Job, pid: int, create_time: float) -> None:
    """Remember the process group of a started attempt, so recovery can kill it."""
    with queue.write() as conn:
        conn.execute(
            "UPDATE jobs SET pid = ?, pgid = ?, proc_started = ? WHERE id = ? AND worker = ?"
            " AND attempts = ? AND state = ?",
            (pid, pid, create_time, int(job.id), job.worker, job.attempts, RUNNING),
        )


def cancel_requests(queue: JobQueue, worker_id: str) -> set[int]:
    """Return the ids of this worker's running jobs whose cancellation was asked for."""
    with queue.read() as conn:
        rows = conn.execute(
            "SELECT id FROM jobs WHERE worker = ? AND state = ? AND cancel_requested = 1",
            (worker_id, RUNNING),
        )
        return {row[0] for row in rows}


def decide(job: Job, outcome: Outcome, policy: RetryPolicy, now: float) -> tuple[str, float, str]:
    """Return (next state, not-before time, message) for the attempt that ended as `outcome`."""
    code = outcome.exit_code
    if outcome.cancelled:
        return CANCELLED, 0.0, "cancelled while running; its process group was stopped"
    if code == 0:
        return SUCCEEDED, 0.0, ""
    if code == EXIT_RETRYABLE:
        if job.retries < job.spec.max_retries:
            wait = policy.backoff(job.retries)
            return QUEUED, now + wait, f"asked to be retried (exit {code}); retry in {wait:g} s"
        return FAILED, 0.0, f"asked to be retried (exit {code}) {job.retries + 1} times; gave up"
    if code is None or code < 0:
        how = "the worker running it died" if code is None else f"killed by signal {-code}"
        if job.crashes < job.spec.max_crashes:
            return QUEUED, 0.0, f"{how}; queued again to resume"
        return FAILED, 0.0, f"{how}; crashed {job.crashes + 1} times, gave up"
    return FAILED, 0.0, f"exited with code {code}"


def finish(
    queue: JobQueue, job: Job, outcome: Outcome, policy: RetryPolicy, now: float
) -> Job | None:
    """Record how attempt `job.attempts` ended and move the job on; None if it was not ours."""
    state, not_before, message = decide(job, outcome, policy, now)
    if state == FAILED:
        tail = tail_lines(queue.log_path(job.id), LOG_TAIL_LINES)
        message = f"{message}\n--- last log lines ---\n{tail}" if tail else message
    code = outcome.exit_code
    crashed = not outcome.cancelled and (code is None or code < 0)
    retried = outcome.exit_code == EXIT_RETRYABLE and state == QUEUED
    with queue.write() as conn:
        cursor = conn.execute(
            "UPDATE jobs SET state = ?, not_before = ?, message = ?, exit_code = ?,"
            " finished_at = ?, crashes = crashes + ?, retries = retries + ?, wall_seconds ="
            " wall_seconds + ?, cpu_seconds = cpu_seconds + ?, cost = cost + ?, worker = ?,"
            " pid = NULL, pgid = NULL WHERE id = ? AND state = ? AND worker = ? AND attempts = ?",
            (state, not_before, message, outcome.exit_code,
             None if state == QUEUED else now, int(crashed), int(retried),
             outcome.wall_seconds, outcome.cpu_seconds,
             policy.cost(job.spec.resources, outcome.wall_seconds),
             None if state == QUEUED else job.worker,
             int(job.id), RUNNING, job.worker, job.attempts),
        )  # fmt: skip
        if cursor.rowcount != 1:
            return None
        add_event(conn, int(job.id), state if state != QUEUED else "requeued", job.attempts,
                  job.worker, message.split("\n", 1)[0], now=now)  # fmt: skip
        return row_to_job(
            conn.execute("SELECT * FROM jobs WHERE id = ?", (int(job.id),)).fetchone()
        )


def interrupt(queue: JobQueue, job: Job, wall_seconds: float, cpu_seconds: float,
              policy: RetryPolicy, now: float) -> None:  # fmt: skip
    """Queue a job again because its worker is stopping in order (not counted as a crash)."""
    with queue.write() as conn:
        cursor = conn.execute(
            "UPDATE jobs SET state = ?, worker = NULL, pid = NULL, pgid = NULL,"
            " message = 'its worker stopped; queued again to resume', wall_seconds ="
            " wall_seconds + ?, cpu_seconds = cpu_seconds + ?, cost = cost + ?"
            " WHERE id = ? AND state = ? AND worker = ? AND attempts = ?",
            (QUEUED, wall_seconds, cpu_seconds, policy.cost(job.spec.resources, wall_seconds),
             int(job.id), RUNNING, job.worker, job.attempts),
        )  # fmt: skip
        if cursor.rowcount == 1:
            add_event(conn, int(job.id), "requeued", job.attempts, job.worker,
                      "worker stopped", now=now)  # fmt: skip


def _worker_alive(row: sqlite3.Row, host: str, now: float, lease_s: float) -> bool:
    if row["host"] == host:
        return is_same_process(row["pid"], row["proc_started"])
    return bool(now - row["heartbeat_at"] < lease_s)


def recover(queue: JobQueue, policy: RetryPolicy, now: float, lease_s: float) -> list[str]:
    """Re-queue (or fail, past their crash limit) the running jobs of workers that died.

    What is left of their process groups is killed first. Returns the ids of those jobs.
    """
    host = socket.gethostname()
    with queue.read() as conn:
        conn.execute("BEGIN")  # one snapshot of workers and jobs
        workers = conn.execute("SELECT * FROM workers WHERE state = 'alive'").fetchall()
        running = conn.execute("SELECT * FROM jobs WHERE state = ?", (RUNNING,)).fetchall()
        conn.execute("COMMIT")
    alive = {w["id"] for w in workers if _worker_alive(w, host, now, lease_s)}
    dead = {w["id"]: w["heartbeat_at"] for w in workers if w["id"] not in alive}
    stale = [row for row in running if row["worker"] not in alive]
    for row in stale:
        kill_stale_group(row["pgid"], row["proc_started"])
    recovered = []
    for row in stale:
        job = row_to_job(row)
        last_seen = dead.get(job.worker or "", now)
        wall = max(0.0, min(now, last_seen) - (job.started_at or now))
        outcome = Outcome(None, wall, 0.0, cancelled=bool(row["cancel_requested"]))
        if finish(queue, job, outcome, policy, now) is not None:
            recovered.append(job.id)
    if dead:
        with queue.write() as conn:
            conn.executemany("UPDATE workers SET state = 'dead' WHERE id = ?", [(w,) for w in dead])
    return recovered
