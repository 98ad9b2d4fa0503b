"""Fixtures for the job queue: a queue in a temporary folder, tiny Python jobs, workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelyard.jobs.queue import JobQueue
from modelyard.jobs.spec import JobSpec, Resources
from modelyard.jobs.transitions import RetryPolicy, recover
from modelyard.jobs.worker import Worker, WorkerOptions

SRC = Path(__file__).resolve().parents[2] / "src"
MB = 1024**2


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms; fail the test if it is still false after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def py_job(
    code: str, cwd: Path, cpus: float = 1, priority: int = 0, *extra: str, **kw: object
) -> JobSpec:
    """A `command` job running `python -c code [extra...]` in `cwd`, holding `cpus` cores and 1 MB."""
    return JobSpec(
        stage="command",
        target=sys.executable,
        args=("-c", code, *extra),
        cwd=str(cwd),
        resources=Resources(float(cpus), MB, 0),
        priority=priority,
        name=str(kw.pop("name", "test job")),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture()
def queue(tmp_path: Path) -> JobQueue:
    """An empty queue in a folder of its own."""
    return JobQueue(tmp_path / "jobs" / "queue.db")


def fast_options(**kw: object) -> WorkerOptions:
    """Worker options for tests: 2 CPUs, quick polling, stop when idle or after 60 s."""
    values: dict[str, object] = {
        "cpus": 2.0, "memory": 1024 * MB, "gpus": 0, "poll_s": 0.05, "heartbeat_s": 0.2,
        "recover_s": 0.2, "grace_s": 2.0, "exit_when_idle": True, "max_seconds": 60.0,
    }  # fmt: skip
    values.update(kw)
    return WorkerOptions(**values)  # type: ignore[arg-type]


def run_until_idle(queue: JobQueue, **kw: object) -> Worker:
    """Run a worker in this process until the queue is idle (at most 60 s); return it."""
    worker = Worker(queue, fast_options(**kw))
    worker.run()
    return worker


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a worker subprocess: this checkout's sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


@pytest.fixture()
def spawn_worker(queue: JobQueue) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `python -m modelyard.jobs worker` on the queue; every one is killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "modelyard.jobs", "worker", "--queue", str(queue.path),
               "--cpus", "2", "--memory", "1G", "--gpus", "0", "--poll-s", "0.05",
               "--grace-s", "2", *args]  # fmt: skip
        proc = subprocess.Popen(
            cmd, env=env or child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    # what the killed workers' jobs left behind
    recover(queue, RetryPolicy(), time.time(), lease_s=30.0)
