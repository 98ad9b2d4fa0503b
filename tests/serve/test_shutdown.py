"""A real `modelyard serve` process: SIGTERM with requests in flight finishes them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modelyard.registry.store import ModelStore
from modelyard.serve.auth import KeyStore
from tests.serve.conftest import wait_until

# the serve command alone, so the test does not pay for importing every other command
SERVE = "import typer; from modelyard.cli.serve import serve; typer.run(serve)"


class Output:
    """Collects a process's stderr lines in a background thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        stream = proc.stderr
        threading.Thread(
            target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True
        ).start()

    def port(self) -> int | None:
        for line in self.lines:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                return int(found.group(1))
        return None


def _depth(client: httpx.Client) -> float:
    found = re.search(
        r'modelyard_queue_depth\{model="tiny"\} ([0-9.]+)', client.get("/metrics").text
    )
    return float(found.group(1)) if found else -1.0


def _start(
    home: Path, tiny_run: Path, args: list[str]
) -> tuple[subprocess.Popen[str], Output, str]:
    ModelStore(home / "registry").push(tiny_run, "tiny")
    _, key = KeyStore(home / "keys.json").create("predict")
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    command = [sys.executable, "-c", SERVE, "tiny", "--port", "0", *args]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    output = Output(proc)
    wait_until(lambda: output.port() is not None or proc.poll() is not None, 120, "the port")
    assert proc.poll() is None, "".join(output.lines)
    return proc, output, key


@pytest.mark.slow  # a process of its own
def test_sigterm_turns_readiness_off_and_finishes_requests_in_flight(
    tmp_path: Path, tiny_runs: list[Path]
) -> None:
    proc, output, key = _start(
        tmp_path, tiny_runs[0], ["--max-wait-ms", "10000", "--max-batch-size", "64"]
    )
    try:
        url = f"http://127.0.0.1:{output.port()}"
        headers = {"Authorization": f"Bearer {key}"}
        with (
            ThreadPoolExecutor(3) as pool,
            httpx.Client(base_url=url, headers=headers, timeout=60) as client,
        ):
            in_flight = [
                pool.submit(client.post, "/v1/predict", json={"texts": [f"my parcel {i}"]})
                for i in range(3)
            ]
            wait_until(
                lambda: _depth(client) == 3.0, 30, "three requests waiting in the batch window"
            )
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            answers = [f.result(timeout=30) for f in in_flight]
            answered_s = time.monotonic() - signalled
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert code == 0
    log = "".join(output.lines)
    assert "readiness is off, finishing requests in flight" in log
    assert "Finished server process" in log
    assert answered_s < 8, "the drain should cut the 10 s batch window short"


@pytest.mark.slow  # a supervisor and two workers, each importing torch: about 30 s
def test_workers_share_the_port_and_all_stop_on_sigterm(
    tmp_path: Path, tiny_runs: list[Path]
) -> None:
    proc, output, key = _start(tmp_path, tiny_runs[0], ["--workers", "2"])
    try:
        url = f"http://127.0.0.1:{output.port()}"
        wait_until(
            lambda: sum("Application startup complete" in line for line in output.lines) == 2,
            120,
            "both workers",
        )
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            codes = [
                client.post("/v1/predict", json={"texts": ["my invoice"]}).status_code
                for _ in range(6)
            ]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert codes == [200] * 6 and code == 0
    assert "all 2 workers stopped (exit codes [0, 0])" in "".join(output.lines)
