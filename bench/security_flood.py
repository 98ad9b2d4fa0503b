"""The wrong-key flood of the security benchmark: legitimate latency while 64 addresses send
wrong keys, measured twice.

- shared: the flood generator, the legitimate client and the server share both cores, as in
  the original probe (the generator's own CPU then competes with the server);
- isolated: the server's threads on core 0, the generator and the legitimate client on
  core 1, as an attacker's machine is not the server's.

A control flood sends no key at all (the cheapest refusal there is) in the isolated layout, so
the cost of checking keys can be told apart from the cost of answering that many requests.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import time
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import psutil

LEGIT = "my invoice was charged twice, please refund the second payment"
ADDRESSES = 64


async def _latencies(url: str, key: str, n: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(n):
            began = time.perf_counter()
            await client.post("/v1/predict", json={"texts": [LEGIT]}, headers={"X-API-Key": key})
            times.append(time.perf_counter() - began)
    return times


async def _flood(url: str, key_id: str | None, stop: Any, sent: Any) -> None:
    async def one(address: int) -> None:
        source = f"127.0.{address // 250}.{address % 250 + 2}"
        transport = httpx.AsyncHTTPTransport(local_address=source)
        async with httpx.AsyncClient(base_url=url, timeout=60, transport=transport) as client:
            i = 0
            while not stop.is_set():
                headers = (
                    {} if key_id is None else {"X-API-Key": f"myd_{key_id}.wrong-{address}-{i}"}
                )
                await client.get("/v1/models", headers=headers)
                with sent.get_lock():
                    sent.value += 1
                i += 1

    await asyncio.gather(*(one(a) for a in range(ADDRESSES)))


def _flood_process(
    url: str, key_id: str | None, cpus: set[int] | None, stop: Any, sent: Any
) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    asyncio.run(_flood(url, key_id, stop, sent))


def _pin(pid: int, cpus: set[int]) -> dict[int, set[int]]:
    """Pin every thread of `pid` to `cpus`; return each thread's affinity before."""
    before = {}
    for thread in psutil.Process(pid).threads():
        before[thread.id] = os.sched_getaffinity(thread.id)
        os.sched_setaffinity(thread.id, cpus)
    return before


@contextmanager
def _layout(server_pid: int, isolated: bool) -> Any:
    if not isolated:
        yield None
        return
    server_before = _pin(server_pid, {0})
    own_before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        yield {1}
    finally:
        os.sched_setaffinity(0, own_before)
        for tid, cpus in server_before.items():
            with suppress(OSError):  # the thread ended meanwhile
                os.sched_setaffinity(tid, cpus)


def _one(
    url: str, key: str, key_id: str | None, server_pid: int, isolated: bool, samples: int
) -> dict[str, Any]:
    with _layout(server_pid, isolated) as cpus:
        before = asyncio.run(_latencies(url, key, samples))
        stop, sent = mp.Event(), mp.Value("l", 0)
        flood = mp.Process(target=_flood_process, args=(url, key_id, cpus, stop, sent))
        flood.start()
        time.sleep(3.0)  # the flood is under way
        during = asyncio.run(_latencies(url, key, samples))
        stop.set()
        flood.join(60)
    p50_before, p50_during = statistics.median(before), statistics.median(during)
    return {
        "ratio": round(p50_during / p50_before, 2),
        "p50_ms_before": round(p50_before * 1000, 1),
        "p50_ms_during": round(p50_during * 1000, 1),
        "flood_requests_sent": int(sent.value),
    }


def flood_probe(url: str, key: str, server_pid: int, samples: int = 40) -> dict[str, Any]:
    """Return the wrong-key flood figures: isolated (the goal's), shared, and the no-key control."""
    from modelyard.serve.auth import split_key

    parts = split_key(key)
    assert parts is not None, "the benchmark's own key is well formed"
    key_id = parts[0]
    isolated = _one(url, key, key_id, server_pid, True, samples)
    shared = _one(url, key, key_id, server_pid, False, samples)
    control = _one(url, key, None, server_pid, True, samples)
    return {
        "wrong_key_flood_p50_ratio": isolated["ratio"],
        "legit_p50_ms_before": isolated["p50_ms_before"],
        "legit_p50_ms_during_flood": isolated["p50_ms_during"],
        "flood_requests_sent": isolated["flood_requests_sent"],
        "wrong_key_flood_p50_ratio_shared": shared["ratio"],
        "wrong_key_flood_shared": shared,
        "no_key_flood_p50_ratio_isolated": control["ratio"],
        "no_key_flood_isolated": control,
    }
