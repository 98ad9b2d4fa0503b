"""The durable job queue: one SQLite file in WAL mode, every state change one transaction.

A transaction that a kill -9 interrupts leaves no trace (SQLite rolls it back on the next
open), so the queue is consistent after a crash at any moment. Each job's log is a file
`logs/<id>.log` beside the database. The default queue is `$MODELYARD_HOME/jobs/queue.db`;
`$MODELYARD_JOBS_QUEUE` or an explicit path overrides it.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelyard.home import modelyard_home
from modelyard.jobs.errors import JobNotFoundError, JobsError
from modelyard.jobs.spec import (
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    STATES,
    Job,
    JobSpec,
    Resources,
)

QUEUE_ENV = "MODELYARD_JOBS_QUEUE"
# seconds to pause inside every write transaction, so a crash test can kill a worker mid-write
CHAOS_ENV = "MODELYARD_JOBS_CHAOS_DELAY_S"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL, stage TEXT NOT NULL, target TEXT NOT NULL, args TEXT NOT NULL,
    cwd TEXT NOT NULL, cpus REAL NOT NULL, memory INTEGER NOT NULL, gpus INTEGER NOT NULL,
    priority INTEGER NOT NULL, max_retries INTEGER NOT NULL, max_crashes INTEGER NOT NULL,
    state TEXT NOT NULL, submitted_at REAL NOT NULL, queued_at REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0, crashes INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0, worker TEXT, pid INTEGER, pgid INTEGER,
    proc_started REAL, started_at REAL, finished_at REAL, exit_code INTEGER,
    message TEXT NOT NULL DEFAULT '', wall_seconds REAL NOT NULL DEFAULT 0,
    cpu_seconds REAL NOT NULL DEFAULT 0, cost REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, at REAL NOT NULL,
    kind TEXT NOT NULL, attempt INTEGER NOT NULL, worker TEXT, detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, proc_started REAL NOT NULL,
    started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, cpus REAL NOT NULL,
    memory INTEGER NOT NULL, gpus INTEGER NOT NULL, state TEXT NOT NULL
);
"""


def default_queue_path() -> Path:
    """Return the queue used when none is given: $MODELYARD_JOBS_QUEUE, else <home>/jobs/queue.db."""
    env = os.environ.get(QUEUE_ENV)
    return Path(env).expanduser() if env else modelyard_home() / "jobs" / "queue.db"


def chaos_pause() -> None:
    """Sleep for $MODELYARD_JOBS_CHAOS_DELAY_S seconds (a crash-test hook; unset: no pause)."""
    delay = os.environ.get(CHAOS_ENV)
    if delay:
        time.sleep(float(delay))


def tail_lines(path: Path, n: int) -> str:
    """Return the last `n` lines of a text file ('' when it does not exist)."""
    if n <= 0 or not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        block, data = 4096, b""
        while size > 0 and data.count(b"\n") <= n:
            step = min(block, size)
            size -= step
            handle.seek(size)
            data = handle.read(step) + data
    return b"\n".join(data.splitlines()[-n:]).decode("utf-8", errors="replace")


def row_to_job(row: sqlite3.Row) -> Job:
    """Return the Job a `jobs` row describes."""
    spec = JobSpec(
        stage=row["stage"],
        target=row["target"],
        args=tuple(json.loads(row["args"])),
        cwd=row["cwd"],
        resources=Resources(row["cpus"], row["memory"], row["gpus"]),
        priority=row["priority"],
        name=row["name"],
        max_retries=row["max_retries"],
        max_crashes=row["max_crashes"],
    )
    return Job(
        id=str(row["id"]),
        spec=spec,
        state=row["state"],
        submitted_at=row["submitted_at"],
        attempts=row["attempts"],
        retries=row["retries"],
        crashes=row["crashes"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        worker=row["worker"],
        message=row["message"],
        wall_seconds=row["wall_seconds"],
        cpu_seconds=row["cpu_seconds"],
        cost=row["cost"],
        extra={"cancel_requested": bool(row["cancel_requested"]), "not_before": row["not_before"]},
    )


def parse_id(job_id: str | int) -> int:
    """Return a local job id as an int; raise JobNotFoundError for anything else."""
    try:
        return int(job_id)
    except (TypeError, ValueError):
        raise JobNotFoundError(
            f"local job ids are numbers (see `modelyard jobs list`); got '{job_id}'"
        ) from None


class JobQueue:
    """The queue database at `path` (created with its folder on first use)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_queue_path()
        self.logs = self.path.parent / "logs"
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self._create()
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _create(self) -> None:
        # the folder holds job logs, which may name data and paths: only the owner reads it
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.logs.mkdir(exist_ok=True, mode=0o700)
        try:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise JobsError(f"cannot open the job queue {self.path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise JobsError(
                    f"the job queue {self.path} was written by a newer modelyard "
                    f"(schema {version}, this one reads {SCHEMA_VERSION}); upgrade modelyard"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise JobsError(f"{self.path} is not a readable job queue: {exc}") from None
        finally:
            conn.close()
        self._ready = True

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection for reading (each statement sees a consistent snapshot)."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside `BEGIN IMMEDIATE`; commit at the end, roll back on error."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                chaos_pause()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    def log_path(self, job_id: str | int) -> Path:
        """Return the log file of a job (it exists once the job has started)."""
        return self.logs / f"{parse_id(job_id)}.log"

    def submit(self, spec: JobSpec, now: float | None = None) -> Job:
        """Add a queued job for `spec` and return it."""
        now = time.time() if now is None else now
        r = spec.resources
        with self.write() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (name, stage, target, args, cwd, cpus, memory, gpus, priority,"
                " max_retries, max_crashes, state, submitted_at, queued_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (spec.name, spec.stage, spec.target, json.dumps(list(spec.args)), spec.cwd,
                 r.cpus, r.memory, r.gpus, spec.priority, spec.max_retries, spec.max_crashes,
                 QUEUED, now, now),
            )  # fmt: skip
            job_id = int(cursor.lastrowid or 0)
            add_event(conn, job_id, "submitted", 0, None, now=now)
            return self._get(conn, job_id)

    def _get(self, conn: sqlite3.Connection, job_id: int) -> Job:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(
                f"no job {job_id} in the queue {self.path}; see `modelyard jobs list`"
            )
        return row_to_job(row)

    def get(self, job_id: str | int) -> Job:
        """Return the job `job_id`; raise JobNotFoundError if the queue has none."""
        with self.read() as conn:
            return self._get(conn, parse_id(job_id))

    def list(self, state: str | None = None, limit: int | None = None) -> list[Job]:
        """Return jobs, newest first, optionally only those in `state`; raise JobsError for an unknown state."""
        if state is not None and state not in STATES:
            raise JobsError(f"unknown job state '{state}'; use one of: {', '.join(STATES)}")
        sql = "SELECT * FROM jobs" + (" WHERE state = ?" if state else "") + " ORDER BY id DESC"
        params: tuple[Any, ...] = (state,) if state else ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (*params, int(limit))
        with self.read() as conn:
            return [row_to_job(row) for row in conn.execute(sql, params)]

    def events(self, job_id: str | int) -> builtins.list[dict[str, Any]]:
        """Return the history of a job (submitted, started, requeued, finished...), oldest first."""
        with self.read() as conn:
            self._get(conn, parse_id(job_id))
            rows = conn.execute(
                "SELECT at, kind, attempt, worker, detail FROM events WHERE job_id = ? ORDER BY id",
                (parse_id(job_id),),
            )
            return [dict(row) for row in rows]

    def cancel(self, job_id: str | int, now: float | None = None) -> Job:
        """Cancel a queued job now, or ask the worker running it to stop its process group.

        Returns the job; raises JobsError when it has already finished.
        """
        now = time.time() if now is None else now
        with self.write() as conn:
            job = self._get(conn, parse_id(job_id))
            if job.state in FINISHED:
                raise JobsError(f"job {job.id} has already {job.state}; there is nothing to cancel")
            if job.state == QUEUED:
                conn.execute(
                    "UPDATE jobs SET state = ?, finished_at = ?, message = ? WHERE id = ?",
                    (CANCELLED, now, "cancelled before it started", job.id),
                )
                add_event(conn, int(job.id), "cancelled", job.attempts, None, now=now)
            else:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
                add_event(conn, int(job.id), "cancel-requested", job.attempts, job.worker, now=now)
            return self._get(conn, int(job.id))

    def retry(self, job_id: str | int, now: float | None = None) -> Job:
        """Queue a failed or cancelled job again, with fresh retry and crash counts; return it.

        Raises JobsError when the job is queued, running or succeeded.
        """
        now = time.time() if now is None else now
        with self.write() as conn:
            job = self._get(conn, parse_id(job_id))
            if job.state not in (FAILED, CANCELLED):
                raise JobsError(
                    f"job {job.id} is {job.state}; only failed or cancelled jobs can be retried"
                )
            conn.execute(
                "UPDATE jobs SET state = ?, queued_at = ?, not_before = 0, retries = 0, crashes = 0,"
                " cancel_requested = 0, exit_code = NULL, finished_at = NULL, worker = NULL,"
                " message = 'queued again by retry' WHERE id = ?",
                (QUEUED, now, job.id),
            )
            add_event(conn, int(job.id), "retried", job.attempts, None, now=now)
            return self._get(conn, int(job.id))

    def counts(self) -> dict[str, int]:
        """Return how many jobs are in each state."""
        with self.read() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: 0 for state in STATES} | {row[0]: row[1] for row in rows}


def add_event(
    conn: sqlite3.Connection,
    job_id: int,
    kind: str,
    attempt: int,
    worker: str | None,
    detail: str = "",
    now: float | None = None,
) -> None:
    """Append one line to a job's history (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO events (job_id, at, kind, attempt, worker, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (job_id, time.time() if now is None else now, kind, attempt, worker, detail),
    )
