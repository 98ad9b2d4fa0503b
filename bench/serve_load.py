"""Load generation for bench/serve.py: server processes under test and bounded clients.

Closed loop: `concurrency` clients, each sending its next request when the last one is
answered, for a fixed time and at most `cap` requests. Open loop: requests sent on a fixed
schedule whatever the answers, for a fixed time, while the server's memory is sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

CLIENT_ERROR = -1


def pin(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of process `pid` to `cpus` (sched_setaffinity on a pid moves one
    thread only, so each task of /proc/<pid>/task is moved)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):  # thread ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process under test, with the URL and body shape it answers."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        port: int,
        log: Path,
        cpus: set[int] | None = None,
    ) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.ours = name != "baseline"
        self.path = "/v1/predict" if self.ours else "/predict"
        self.health = "/v2/health/ready" if self.ours else "/health"
        self.log = open(log, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        pinned = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)
        self.proc = subprocess.Popen(
            args, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=pinned
        )

    def wait_ready(self, timeout_s: float = 300) -> None:
        """Return once the health route answers 200; raise RuntimeError if the process dies or times out."""
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log.name}"
                )
            try:
                with urllib.request.urlopen(self.url + self.health, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"{self.name} did not become ready in {timeout_s} s; see {self.log.name}"
        )

    def rss_mb(self) -> float:
        """Return the server process's resident memory in MB."""
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        """SIGTERM the server and wait for it (bounded), then close its log."""
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


async def _post(session: aiohttp.ClientSession, server: Server, text: str) -> tuple[float, int]:
    began = time.perf_counter()
    try:
        async with session.post(server.url + server.path, json={"texts": [text]}) as answer:
            await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError):
        status = CLIENT_ERROR
    return time.perf_counter() - began, status


async def closed_loop(
    server: Server,
    headers: dict[str, str],
    texts: list[str],
    concurrency: int,
    seconds: float,
    cap: int,
) -> tuple[list[tuple[float, int]], float]:
    """Run `concurrency` clients that each send one request after another; return (results, elapsed)."""
    results: list[tuple[float, int]] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        began = time.perf_counter()
        stop_at = began + seconds

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < stop_at and len(results) < cap:
                results.append(await _post(session, server, texts[i % len(texts)]))
                i += concurrency

        await asyncio.gather(*(client(k) for k in range(concurrency)))
        return results, time.perf_counter() - began


async def open_loop(
    server: Server, headers: dict[str, str], texts: list[str], rate: float, seconds: float
) -> tuple[list[tuple[float, int]], list[float], float]:
    """Send requests at `rate` per second regardless of answers; return (results, RSS MB, send time)."""
    results: list[tuple[float, int]] = []
    rss: list[float] = []
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        began = time.perf_counter()

        async def sample() -> None:
            while time.perf_counter() - began < seconds:
                rss.append(server.rss_mb())
                await asyncio.sleep(1.0)

        async def one(i: int) -> None:
            results.append(await _post(session, server, texts[i % len(texts)]))

        sampler = asyncio.create_task(sample())
        tasks = []
        for i in range(int(rate * seconds)):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        sent_s = time.perf_counter() - began  # above `seconds` when the generator lags
        await asyncio.gather(*tasks)
        await sampler
    return results, rss, sent_s


def summarise(results: list[tuple[float, int]], elapsed: float) -> dict[str, Any]:
    """Return requests/s (answered 200), p50/p99 latency in ms, and the count of non-200 answers."""
    ok = np.array([t for t, s in results if s == 200]) * 1000
    return {
        "requests": len(results),
        "requests_per_s": round(len(ok) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ok, 50)), 2) if len(ok) else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 2) if len(ok) else None,
        "errors": sum(1 for _, s in results if s != 200),
    }
