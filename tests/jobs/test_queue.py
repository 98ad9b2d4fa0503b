"""The queue file: durable states, transactions, cancel and retry rules, history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from modelyard.jobs import transitions as tx
from modelyard.jobs.errors import JobNotFoundError, JobsError
from modelyard.jobs.queue import JobQueue, default_queue_path, tail_lines
from modelyard.jobs.spec import Resources
from tests.jobs.conftest import py_job


def test_submit_then_read_back_from_a_new_handle(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("print(1)", tmp_path, cpus=2, priority=4, name="one"))
    again = JobQueue(queue.path).get(job.id)
    assert again.state == "queued" and again.spec == job.spec and again.spec.priority == 4
    assert [j.id for j in queue.list()] == [job.id]
    assert queue.list(state="running") == []
    assert queue.counts()["queued"] == 1


def test_the_database_is_in_wal_mode(queue: JobQueue, tmp_path: Path) -> None:
    queue.submit(py_job("pass", tmp_path))
    with queue.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_default_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELYARD_JOBS_QUEUE", raising=False)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    assert default_queue_path() == tmp_path / "home" / "jobs" / "queue.db"
    monkeypatch.setenv("MODELYARD_JOBS_QUEUE", str(tmp_path / "q.db"))
    assert default_queue_path() == tmp_path / "q.db"


def test_unknown_ids_and_states_are_clear_errors(queue: JobQueue) -> None:
    with pytest.raises(JobNotFoundError, match="no job 7"):
        queue.get("7")
    with pytest.raises(JobNotFoundError, match="numbers"):
        queue.get("abc")
    with pytest.raises(JobsError, match="unknown job state 'done'"):
        queue.list(state="done")


def test_a_corrupt_or_newer_queue_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JobsError, match="not a readable job queue"):
        JobQueue(bad).list()
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(JobsError, match="newer modelyard"):
        JobQueue(newer).list()


def test_cancel_a_queued_job_and_refuse_to_cancel_twice(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path))
    assert queue.cancel(job.id).state == "cancelled"
    with pytest.raises(JobsError, match="already cancelled"):
        queue.cancel(job.id)


def test_cancel_a_running_job_asks_its_worker(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path))
    claimed = tx.claim(queue, int(job.id), "w1", 1.0)
    assert claimed is not None and claimed.attempts == 1
    after = queue.cancel(job.id)
    assert after.state == "running" and after.extra["cancel_requested"]
    assert tx.cancel_requests(queue, "w1") == {int(job.id)}


def test_claim_is_exclusive(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path))
    assert tx.claim(queue, int(job.id), "w1", 1.0) is not None
    assert tx.claim(queue, int(job.id), "w2", 1.0) is None


def test_retry_only_failed_or_cancelled_jobs(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path))
    with pytest.raises(JobsError, match="only failed or cancelled"):
        queue.retry(job.id)
    claimed = tx.claim(queue, int(job.id), "w1", 1.0)
    assert claimed is not None
    failed = tx.finish(queue, claimed, tx.Outcome(1, 0.5, 0.1), tx.RetryPolicy(), 2.0)
    assert failed is not None and failed.state == "failed" and failed.exit_code == 1
    again = queue.retry(job.id)
    assert again.state == "queued" and again.exit_code is None and again.attempts == 1
    kinds = [e["kind"] for e in queue.events(job.id)]
    assert kinds == ["submitted", "started", "failed", "retried"]


def test_finish_is_fenced_by_worker_and_attempt(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path))
    first = tx.claim(queue, int(job.id), "w1", 1.0)
    assert first is not None
    # the attempt was taken away (e.g. recovered) and started again elsewhere
    assert tx.finish(queue, first, tx.Outcome(None, 0, 0), tx.RetryPolicy(), 2.0) is not None
    second = tx.claim(queue, int(job.id), "w2", 3.0)
    assert second is not None and second.attempts == 2
    assert tx.finish(queue, first, tx.Outcome(0, 1, 1), tx.RetryPolicy(), 4.0) is None
    assert queue.get(job.id).state == "running" and queue.get(job.id).worker == "w2"


def test_decide_covers_every_ending(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path, max_retries=1, max_crashes=1))
    policy = tx.RetryPolicy(backoff_s=5, max_backoff_s=60)
    assert tx.decide(job, tx.Outcome(0, 1, 1), policy, 100)[0] == "succeeded"
    assert tx.decide(job, tx.Outcome(75, 1, 1), policy, 100)[:2] == ("queued", 105.0)
    assert tx.decide(job, tx.Outcome(-9, 1, 1), policy, 100)[0] == "queued"
    assert tx.decide(job, tx.Outcome(None, 1, 1), policy, 100)[0] == "queued"
    assert tx.decide(job, tx.Outcome(2, 1, 1), policy, 100)[0] == "failed"
    assert tx.decide(job, tx.Outcome(-15, 1, 1, cancelled=True), policy, 100)[0] == "cancelled"
    assert [policy.backoff(n) for n in range(6)] == [5, 10, 20, 40, 60, 60]


def test_tail_lines_reads_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("".join(f"line {i}\n" for i in range(10_000)))
    assert tail_lines(path, 3).splitlines() == ["line 9997", "line 9998", "line 9999"]
    assert tail_lines(tmp_path / "missing", 3) == ""


def test_waiting_skips_jobs_in_back_off(queue: JobQueue, tmp_path: Path) -> None:
    a = queue.submit(py_job("pass", tmp_path), now=10.0)
    b = queue.submit(py_job("pass", tmp_path, cpus=2), now=11.0)
    claimed = tx.claim(queue, int(a.id), "w1", 12.0)
    assert claimed is not None
    tx.finish(queue, claimed, tx.Outcome(75, 1, 0), tx.RetryPolicy(backoff_s=30), 13.0)
    assert [w.id for w in tx.waiting(queue, 20.0)] == [int(b.id)]
    ready = {w.id: w for w in tx.waiting(queue, 44.0)}
    assert set(ready) == {int(a.id), int(b.id)}
    assert ready[int(a.id)].since == 43.0 and ready[int(b.id)].resources == Resources(2, 1024**2, 0)
