"""The Python functions and the `modelyard jobs` commands: one map, clear errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelyard.cli.jobs import main
from modelyard.errors import UnknownPluginError
from modelyard.jobs import api
from modelyard.jobs.errors import JobsError
from modelyard.jobs.queue import JobQueue

Spawn = Callable[..., subprocess.Popen[bytes]]


def jobs_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["modelyard jobs", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_commands_round_trip(
    queue: JobQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    q = ["--queue", str(queue.path)]
    code, out, _ = jobs_cli(
        ["submit", "--stage", "command", sys.executable, "--cpus", "2", "--memory", "64M",
         "--priority", "3", "--name", "hello", *q, "--", "-c", "print('hi')"],
        monkeypatch, capsys,
    )  # fmt: skip
    assert code == 0 and "job 1 queued: hello" in out
    code, out, _ = jobs_cli(["list", "--json", *q], monkeypatch, capsys)
    listed = json.loads(out)
    assert code == 0 and listed[0]["cpus"] == 2 and listed[0]["memory"] == 64 * 1024**2
    assert listed[0]["args"] == ["-c", "print('hi')"] and listed[0]["cwd"] == str(tmp_path)
    code, out, _ = jobs_cli(["show", "1", *q], monkeypatch, capsys)
    assert code == 0 and "job 1 (local): queued" in out and "submitted attempt 0" in out
    code, out, _ = jobs_cli(["cancel", "1", *q], monkeypatch, capsys)
    assert code == 0 and "job 1: cancelled" in out
    code, _, err = jobs_cli(["cancel", "1", *q], monkeypatch, capsys)
    assert code == 2 and "already cancelled" in err and "Traceback" not in err
    code, out, _ = jobs_cli(["retry", "1", *q], monkeypatch, capsys)
    assert code == 0 and "queued again" in out
    code, out, _ = jobs_cli(
        ["worker", *q, "--exit-when-idle", "--poll-s", "0.05"], monkeypatch, capsys
    )
    assert code == 0 and "1 attempts started" in out
    code, out, _ = jobs_cli(["logs", "1", *q, "--tail", "1"], monkeypatch, capsys)
    assert code == 0 and out == "hi\n"
    code, out, _ = jobs_cli(["show", "1", "--json", *q], monkeypatch, capsys)
    shown = json.loads(out)
    assert (
        shown["state"] == "succeeded" and [e["kind"] for e in shown["history"]][-1] == "succeeded"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "r.yaml", "--stage", "sweep"], "unknown job stage 'sweep'"),
        (["submit", "missing.yaml"], "recipe file not found"),
        (["submit", "--stage", "command", "true", "--cpus", "512"], "this machine has"),
        (["submit", "--stage", "command", "true", "--memory", "lots"], "memory must look like"),
        (["list", "--backend", "ray"], "needs --address"),
        (["list", "--address", "http://127.0.0.1:8265"], "--address is for --backend ray"),
        (["list", "--backend", "slurm"], "unknown jobs backend 'slurm'"),
        (
            ["list", "--backend", "ray", "--address", "http://10.1.2.3:8265"],
            "refusing to send jobs",
        ),
        (["show", "12"], "no job 12"),
        (["logs", "x"], "local job ids are numbers"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    args: list[str], message: str, queue: JobQueue, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELYARD_JOBS_QUEUE", str(queue.path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    code, _, err = jobs_cli(args, monkeypatch, capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_the_functions_match_the_commands(queue: JobQueue, tmp_path: Path) -> None:
    job = api.submit(sys.executable, ["-c", "print(1)"], stage="command", queue=queue.path)
    assert api.show(job.id, queue=queue.path).state == "queued"
    assert [j.id for j in api.list_jobs(state="queued", queue=queue.path)] == [job.id]
    assert api.cancel(job.id, queue=queue.path).state == "cancelled"
    assert api.retry(job.id, queue=queue.path).state == "queued"
    summary = api.run_worker(
        queue=queue.path, cpus=1, memory="2G", exit_when_idle=True, poll_s=0.05
    )
    assert summary["started"] == 1 and summary["finished"] == 1
    assert api.logs(job.id, tail=1, queue=queue.path) == "1"
    assert [e["kind"] for e in api.history(job.id, queue=queue.path)][-1] == "succeeded"
    with pytest.raises(UnknownPluginError):
        api.submit("r.yaml", stage="nope", queue=queue.path)
    with pytest.raises(JobsError, match="cpus must be more than 0"):
        api.submit(sys.executable, stage="command", cpus=0, queue=queue.path)


def test_logs_follow_prints_until_the_job_ends(
    queue: JobQueue, tmp_path: Path, spawn_worker: Spawn,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = "import time\nfor i in range(4):\n    print('tick', i, flush=True); time.sleep(0.4)"
    job = api.submit(sys.executable, ["-c", code], stage="command", queue=queue.path)
    spawn_worker()
    status, out, _ = jobs_cli(
        ["logs", job.id, "--follow", "--queue", str(queue.path)], monkeypatch, capsys
    )
    assert status == 0 and all(f"tick {i}" in out for i in range(4))
    assert api.show(job.id, queue=queue.path).state == "succeeded"


def test_the_main_command_line_has_the_jobs_group(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelyard.cli import main as modelyard_main

    monkeypatch.setattr(sys, "argv", ["modelyard", "jobs", "--help"])
    with pytest.raises(SystemExit) as exit_:
        modelyard_main()
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert all(
        word in out for word in ("submit", "list", "show", "logs", "cancel", "retry", "worker")
    )
