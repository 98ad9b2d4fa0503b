"""Crash safety: kill -9 the worker (and submitters) at many moments; nothing is lost or doubled.

Every write transaction of the killed processes pauses 20 ms before committing
($MODELYARD_JOBS_CHAOS_DELAY_S), so many of the kills land inside a transaction.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelyard.jobs.queue import CHAOS_ENV, JobQueue
from tests.jobs.conftest import child_env, py_job, run_until_idle, wait_until

Spawn = Callable[..., subprocess.Popen[bytes]]
# a job that must never run twice at once: it holds a lock on its own file while it works
GUARDED = """
import fcntl, os, random, sys, time
job = os.environ["MODELYARD_JOB_ID"]
lock = open(os.path.join(sys.argv[1], job + ".lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    open(os.path.join(sys.argv[1], job + ".overlap"), "w").close()
time.sleep(random.uniform(0.05, 0.4))
open(os.path.join(sys.argv[1], job + ".done"), "a").write("x")
"""


def _consistent_history(kinds: list[str]) -> bool:
    """submitted, then (started, requeued)* and one started, succeeded: nothing else."""
    if kinds[:1] != ["submitted"] or kinds[-2:] != ["started", "succeeded"]:
        return False
    middle = kinds[1:-2]
    return middle == ["started", "requeued"] * (len(middle) // 2)


def _integrity(queue: JobQueue) -> str:
    with sqlite3.connect(queue.path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _writing(queue: JobQueue) -> bool:
    """Return True while another process holds the queue's write lock (is inside a transaction)."""
    conn = sqlite3.connect(queue.path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def _kill_inside_a_transaction(queue: JobQueue, worker: subprocess.Popen[bytes], skip: int) -> bool:
    """Kill the worker while it is in its `skip`+1-th observed write transaction (8 s at most).

    An idle worker still writes its heartbeat every 2 s, so 4 transactions come within 8 s.
    """
    deadline, seen, was = time.monotonic() + 8, 0, False
    while time.monotonic() < deadline and worker.poll() is None:
        now = _writing(queue)
        if now and not was:
            seen += 1
            if seen > skip:
                worker.send_signal(signal.SIGKILL)
                return True
        was = now
        time.sleep(0.002)
    return False


@pytest.mark.slow  # a process of its own
def test_kill_9_of_the_worker_at_many_moments_loses_nothing(
    queue: JobQueue, tmp_path: Path, spawn_worker: Spawn
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = [queue.submit(py_job(GUARDED, tmp_path, 1, i % 3, str(marks), max_crashes=100))
            for i in range(16)]  # fmt: skip
    rng = random.Random(25)
    env = child_env(**{CHAOS_ENV: "0.03"})
    inside = 0
    for i in range(14):
        worker = spawn_worker(env=env)
        if i % 2:  # at a random moment
            time.sleep(rng.uniform(0.05, 1.2))
            worker.send_signal(signal.SIGKILL)
        else:  # inside a write transaction: registering, claiming, recording, finishing...
            inside += _kill_inside_a_transaction(queue, worker, skip=rng.randrange(4))
            worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    assert inside >= 5 and _integrity(queue) == "ok"
    run_until_idle(queue)
    for job in jobs:
        done = queue.get(job.id)
        kinds = [e["kind"] for e in queue.events(job.id)]
        assert done.state == "succeeded", (job.id, done.state, kinds)
        assert _consistent_history(kinds), (job.id, kinds)
        assert (marks / f"{job.id}.done").exists()
    assert list(marks.glob("*.overlap")) == []  # no job ever ran twice at the same time
    assert len(queue.list(limit=None)) == 16
    assert sum(queue.get(j.id).attempts for j in jobs) > 16  # the kills did interrupt jobs


def test_a_dead_workers_jobs_are_requeued_when_a_worker_starts(
    queue: JobQueue, tmp_path: Path, spawn_worker: Spawn
) -> None:
    code = (
        "import os, sys, time; open(sys.argv[1], 'a').write(os.environ['MODELYARD_JOB_ATTEMPT']);"
        "time.sleep(120 if os.environ['MODELYARD_JOB_ATTEMPT'] == '1' else 0)"
    )
    seen = tmp_path / "attempts"
    job = queue.submit(py_job(code, tmp_path, 1, 0, str(seen)))
    worker = spawn_worker()
    wait_until(seen.exists, 30, "the first attempt to start")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert queue.get(job.id).state == "running"  # nobody has noticed yet
    run_until_idle(queue)
    done = queue.get(job.id)
    assert done.state == "succeeded" and done.attempts == 2 and done.crashes == 1
    assert seen.read_text() == "12"
    assert "worker running it died" in queue.events(job.id)[2]["detail"]


def test_kill_9_of_submitters_mid_transaction_leaves_a_sound_queue(
    queue: JobQueue, tmp_path: Path
) -> None:
    queue.submit(py_job("pass", tmp_path))  # create the file first
    rng = random.Random(3)
    env = child_env(**{CHAOS_ENV: "0.3"})
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli.jobs", "submit", "--queue", str(queue.path),
             "--stage", "command", sys.executable, "--", "-c", "pass"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _integrity(queue) == "ok"
    for job in queue.list(limit=None):  # each job is whole: a row and its submitted event
        assert [e["kind"] for e in queue.events(job.id)] == ["submitted"]
    run_until_idle(queue)
    assert {j.state for j in queue.list(limit=None)} == {"succeeded"}
