"""`--backend ray`: submit, list, logs, cancel and retry against a local Ray head with token auth.

The head runs in a process of its own on 127.0.0.1 with RAY_AUTH_MODE=token, so a client
without the token is refused, and the one with it gets through.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.jobs import api
from modelyard.jobs.errors import JobsError
from modelyard.jobs.spec import FINISHED
from tests.jobs.conftest import child_env, wait_until

pytestmark = pytest.mark.ray
pytest.importorskip("ray.job_submission")

HEAD = """
import signal, sys, time
import ray
ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
         dashboard_port=int(sys.argv[1]), _node_ip_address="127.0.0.1", log_to_driver=False)
print("ready", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while True:
        time.sleep(0.5)
finally:
    ray.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local Ray head with token auth; yields its jobs address and a file with its token."""
    folder = tmp_path_factory.mktemp("ray")
    token = secrets.token_hex(16)
    token_file = folder / "token"
    token_file.write_text(token)
    port = _free_port()
    env = child_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, HOME=str(folder))
    log = open(folder / "head.log", "w+b")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD, str(port)], env=env, stdout=log, stderr=log
    )
    try:
        wait_until(lambda: b"ready" in (folder / "head.log").read_bytes() or head.poll() is not None,
                   120, "the Ray head to start")  # fmt: skip
        assert head.poll() is None, (folder / "head.log").read_text(errors="replace")[-3000:]
        yield f"http://127.0.0.1:{port}", token_file
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
        log.close()


def _settled(job_id: str, address: str, token: Path, states: frozenset[str]) -> bool:
    return api.show(job_id, backend="ray", address=address, token_file=token).state in states


def test_jobs_on_a_ray_cluster(
    ray_head: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, token = ray_head
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no default token file either
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobsError, match="refused the token"):
        api.list_jobs(backend="ray", address=address)
    ray: dict[str, Any] = {"backend": "ray", "address": address, "token_file": token}
    code = "import os; print('hello from ray', os.environ['OMP_NUM_THREADS'])"
    job = api.submit(sys.executable, ["-c", code], stage="command", cpus=1, memory="64M",
                     priority=2, name="hello", **ray)  # fmt: skip
    assert job.id.startswith("modelyard-") and job.backend == "ray"
    wait_until(lambda: _settled(job.id, address, token, FINISHED), 90, "the Ray job to finish")
    done = api.show(job.id, **ray)
    assert done.state == "succeeded" and done.spec.name == "hello" and done.spec.priority == 2
    assert done.spec.resources.cpus == 1 and done.spec.resources.memory == 64 * 1024**2
    assert "hello from ray 1" in api.logs(job.id, **ray)
    assert job.id in [j.id for j in api.list_jobs(**ray)]

    slow = api.submit(sys.executable, ["-c", "import time; print('waiting', flush=True); time.sleep(120)"],
                      stage="command", **ray)  # fmt: skip
    wait_until(lambda: _settled(slow.id, address, token, frozenset({"running"})), 60, "it to run")
    api.cancel(slow.id, **ray)
    wait_until(lambda: _settled(slow.id, address, token, frozenset({"cancelled"})), 60, "the stop")
    again = api.retry(slow.id, **ray)
    assert again.id != slow.id and again.spec.args == slow.spec.args
    api.cancel(again.id, **ray)
    with pytest.raises(JobsError, match="already"):
        api.cancel(job.id, **ray)
    assert os.environ.get("RAY_AUTH_TOKEN") is None  # the token never leaked into this process
