"""A local MLflow tracking server for tests and benchmarks: 127.0.0.1, a SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelyard.tracking.errors import TrackingError


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(uri: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TrackingError(f"the MLflow server exited at start; see {log}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TrackingError(f"the MLflow server did not answer within {seconds:.0f} s; see {log}")


@contextmanager
def local_mlflow_server(folder: Path, start_seconds: float = 300.0) -> Iterator[str]:
    """Run `mlflow server` on a free port of 127.0.0.1 with its store and artifacts in
    `folder`; yield its URI, and stop it (its own process group) on the way out.

    Raises TrackingError when it does not start answering within `start_seconds`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"http://127.0.0.1:{free_port()}"
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1"]
    command += ["--port", uri.rsplit(":", 1)[1], "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait(uri, proc, log, start_seconds)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers, nothing else
        proc.wait(timeout=60)
