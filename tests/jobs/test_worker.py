"""The worker: placement by resources, retries with back-off, crashes, logs, cost, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from modelyard.jobs.local import LocalJobs
from modelyard.jobs.queue import JobQueue
from modelyard.jobs.transitions import RetryPolicy
from modelyard.jobs.worker import Worker
from tests.jobs.conftest import MB, child_env, fast_options, py_job, run_until_idle, wait_until

# a job that notes when it ran (start, end) in the file named by its first argument
SPAN = (
    "import sys, time; start = time.time(); time.sleep(float(sys.argv[2]));"
    "open(sys.argv[1], 'w').write(f'{start} {time.time()}')"
)


Spawn = Callable[..., subprocess.Popen[bytes]]


def span(path: Path) -> tuple[float, float]:
    start, end = path.read_text().split()
    return float(start), float(end)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_jobs_share_the_cores_they_fit_in(queue: JobQueue, tmp_path: Path) -> None:
    for name, cpus, priority in (("a", 1, 0), ("b", 1, 0), ("c", 2, 9)):
        queue.submit(py_job(SPAN, tmp_path, cpus, priority, str(tmp_path / name), "1.5"))
    run_until_idle(queue)
    a, b, c = (span(tmp_path / n) for n in "abc")
    assert all(job.state == "succeeded" for job in queue.list())
    assert c[1] <= min(a[0], b[0]) + 0.05  # the 2-core, high priority job ran first and alone
    assert overlap(a, b)  # the two 1-core jobs ran side by side


def test_a_retryable_exit_is_retried_after_a_back_off(queue: JobQueue, tmp_path: Path) -> None:
    code = (
        "import os, sys; p = sys.argv[1]; n = int(open(p).read()) if os.path.exists(p) else 0;"
        "open(p, 'w').write(str(n + 1)); print('attempt', n + 1); sys.exit(75 if n < 2 else 0)"
    )
    job = queue.submit(py_job(code, tmp_path, 1, 0, str(tmp_path / "count")))
    run_until_idle(queue, retry=RetryPolicy(backoff_s=0.3))
    done = queue.get(job.id)
    assert done.state == "succeeded" and done.attempts == 3 and done.retries == 2
    starts = [e["at"] for e in queue.events(job.id) if e["kind"] == "started"]
    assert starts[1] - starts[0] >= 0.3 and starts[2] - starts[1] >= 0.6  # doubling back-off
    assert "attempt 3" in LocalJobs(queue.path).logs(job.id)


def test_retries_stop_at_the_limit(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("import sys; sys.exit(75)", tmp_path, max_retries=1))
    run_until_idle(queue, retry=RetryPolicy(backoff_s=0.05))
    done = queue.get(job.id)
    assert done.state == "failed" and done.attempts == 2 and "gave up" in done.message


def test_a_job_that_keeps_crashing_fails_with_its_last_log_lines(
    queue: JobQueue, tmp_path: Path
) -> None:
    code = "import os; print('about to crash', flush=True); os.kill(os.getpid(), 9)"
    job = queue.submit(py_job(code, tmp_path, max_crashes=2))
    run_until_idle(queue)
    done = queue.get(job.id)
    assert done.state == "failed" and done.attempts == 3 and done.crashes == 3
    assert "killed by signal 9" in done.message and "about to crash" in done.message
    assert done.exit_code == -9


def test_an_ordinary_failure_is_not_retried(queue: JobQueue, tmp_path: Path) -> None:
    code = "import sys; print('boom: the recipe is wrong'); sys.exit(2)"
    job = queue.submit(py_job(code, tmp_path))
    run_until_idle(queue)
    done = queue.get(job.id)
    assert done.state == "failed" and done.attempts == 1 and done.exit_code == 2
    assert "exited with code 2" in done.message and "boom: the recipe is wrong" in done.message


def test_logs_keep_every_attempt_and_tail(queue: JobQueue, tmp_path: Path) -> None:
    code = (
        "import os, sys; n = os.environ['MODELYARD_JOB_ATTEMPT']; print('out', n);"
        "print('err', n, file=sys.stderr); sys.exit(75 if n == '1' else 0)"
    )
    job = queue.submit(py_job(code, tmp_path))
    run_until_idle(queue, retry=RetryPolicy(backoff_s=0.05))
    text = LocalJobs(queue.path).logs(job.id)
    assert text.count("=== attempt") == 2
    assert text.index("out 1") < text.index("=== attempt 2") < text.index("err 2")
    assert LocalJobs(queue.path).logs(job.id, tail=1).strip() in ("out 2", "err 2")


def test_the_cost_line_uses_the_configured_price(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("import time; time.sleep(0.3)", tmp_path, cpus=2))
    prices = RetryPolicy(price_per_cpu_hour=3600.0)  # one dollar per CPU-second
    run_until_idle(queue, retry=prices)
    done = queue.get(job.id)
    assert done.wall_seconds >= 0.3 and done.cpu_seconds > 0
    assert done.cost == pytest.approx(2 * done.wall_seconds)
    assert f"${done.cost:.4f}" in done.cost_line()


def test_jobs_get_thread_limits_and_their_ids(
    queue: JobQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_JOBS_CHAOS_DELAY_S", "0")
    code = (
        "import json, os, sys; keys = ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'MODELYARD_JOB_ID',"
        "'CUDA_VISIBLE_DEVICES', 'MODELYARD_JOBS_CHAOS_DELAY_S'];"
        "json.dump({k: os.environ.get(k) for k in keys}, open(sys.argv[1], 'w'))"
    )
    job = queue.submit(py_job(code, tmp_path, 1.5, 0, str(tmp_path / "env.json")))
    run_until_idle(queue)
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["MODELYARD_JOB_ID"] == job.id and env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["MODELYARD_JOBS_CHAOS_DELAY_S"] is None


def test_a_job_waits_while_memory_is_short(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("pass", tmp_path))
    Worker(queue, fast_options(max_seconds=0.5), free_memory=lambda: MB // 2).run()
    assert queue.get(job.id).state == "queued"
    run_until_idle(queue)
    assert queue.get(job.id).state == "succeeded"


def test_an_idle_worker_stops_even_if_a_job_is_too_big_for_it(
    queue: JobQueue, tmp_path: Path
) -> None:
    big = queue.submit(py_job("pass", tmp_path, cpus=2))
    small = queue.submit(py_job("pass", tmp_path, cpus=1))
    run_until_idle(queue, cpus=1.0, max_seconds=30.0)
    assert queue.get(small.id).state == "succeeded" and queue.get(big.id).state == "queued"


def test_a_program_that_cannot_start_fails_clearly(queue: JobQueue, tmp_path: Path) -> None:
    program = tmp_path / "tool.sh"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    spec = py_job("", tmp_path)
    job = queue.submit(spec.__class__(**{**spec.__dict__, "target": str(program), "args": ()}))
    program.unlink()
    run_until_idle(queue)
    done = queue.get(job.id)
    assert done.state == "failed" and done.exit_code == 127
    assert "could not start" in LocalJobs(queue.path).logs(job.id)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# a job that starts a grandchild which ignores SIGTERM, notes both pids, then waits
FAMILY = (
    "import os, signal, subprocess, sys, time;"
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time;"
    " signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)']);"
    "open(sys.argv[1], 'w').write(f'{os.getpid()} {child.pid}'); time.sleep(120)"
)


def test_leftover_processes_of_a_finished_job_are_killed(queue: JobQueue, tmp_path: Path) -> None:
    code = (
        "import subprocess, sys; child = subprocess.Popen([sys.executable, '-c',"
        " 'import time; time.sleep(120)']); open(sys.argv[1], 'w').write(str(child.pid))"
    )
    queue.submit(py_job(code, tmp_path, 1, 0, str(tmp_path / "pid")))
    run_until_idle(queue)
    orphan = int((tmp_path / "pid").read_text())
    wait_until(lambda: not _alive(orphan), 10, "the job's leftover process to be killed")


def test_cancel_stops_the_whole_process_group(
    queue: JobQueue, tmp_path: Path, spawn_worker: Spawn
) -> None:
    pids_file = tmp_path / "pids"
    job = queue.submit(py_job(FAMILY, tmp_path, 1, 0, str(pids_file)))
    spawn_worker()
    wait_until(pids_file.exists, 30, "the job to start")
    parent, child = (int(p) for p in pids_file.read_text().split())
    assert _alive(parent) and _alive(child)
    assert LocalJobs(queue.path).cancel(job.id).extra["cancel_requested"]
    wait_until(lambda: queue.get(job.id).state == "cancelled", 30, "the job to be cancelled")
    wait_until(lambda: not (_alive(parent) or _alive(child)), 10, "the job's processes to end")
    assert queue.get(job.id).crashes == 0


def test_sigterm_stops_the_worker_and_requeues_its_jobs(
    queue: JobQueue, tmp_path: Path, spawn_worker: Spawn
) -> None:
    code = (
        "import os, sys, time; print('attempt', os.environ['MODELYARD_JOB_ATTEMPT'], flush=True);"
        "open(sys.argv[1], 'a').write('x');"
        "time.sleep(120 if os.environ['MODELYARD_JOB_ATTEMPT'] == '1' else 0)"
    )
    marker = tmp_path / "ran"
    job = queue.submit(py_job(code, tmp_path, 1, 0, str(marker)))
    worker = spawn_worker()
    wait_until(marker.exists, 30, "the job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    requeued = queue.get(job.id)
    assert requeued.state == "queued" and requeued.crashes == 0 and requeued.attempts == 1
    run_until_idle(queue)
    assert queue.get(job.id).state == "succeeded" and marker.read_text() == "xx"


def test_the_worker_runs_from_the_command_line(queue: JobQueue, tmp_path: Path) -> None:
    job = queue.submit(py_job("print('hi')", tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.jobs", "worker", "--queue", str(queue.path),
         "--exit-when-idle", "--poll-s", "0.05", "--max-seconds", "60"],
        env=child_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 attempts started" in done.stdout and queue.get(job.id).state == "succeeded"
    assert os.stat(queue.path.parent).st_mode & 0o077 == 0  # only the owner reads the logs
