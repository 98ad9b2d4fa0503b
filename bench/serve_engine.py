"""The engine's own throughput for bench/serve.py: no HTTP, the same model and batching.

`clients` threads each submit one SST-2 sentence to an in-process Predictor (the object the
server wraps), wait for its answer and send the next, for a fixed time. The ratio of the
server's requests/s at the same concurrency to this figure is what the HTTP path costs.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any


def engine_throughput(
    run: Path,
    settings: dict[str, Any],
    texts: list[str],
    clients: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Return answered requests/s, the texts per forward pass and the torch threads used."""
    import torch

    from modelyard.backends import load_backend
    from modelyard.serve.engine import BatchStats, Predictor

    threads = max(1, len(os.sched_getaffinity(0)))  # what `modelyard serve` sets with 1 worker
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    batches: list[int] = []

    def on_batch(stats: BatchStats) -> None:
        batches.append(stats.size)

    backend = load_backend(run)
    for _ in range(
        2
    ):  # first passes pay one-time costs (allocator, kernels), as the server's warm-up
        backend.predict_proba(texts[: settings["max_batch_size"]])
    predictor = Predictor(
        backend,
        max_batch_size=settings["max_batch_size"],
        max_wait_ms=settings["max_wait_ms"],
        max_queue=settings["max_queue"],
        on_batch=on_batch,
    )
    try:
        _closed_loop(predictor, texts, clients, warmup)
        batches.clear()
        answered, elapsed = _closed_loop(predictor, texts, clients, seconds)
    finally:
        predictor.close()
        torch.set_num_threads(before)
    return {
        "requests_per_s": round(answered / elapsed, 2),
        "requests": answered,
        "mean_batch": round(sum(batches) / len(batches), 1) if batches else None,
        "torch_threads": threads,
    }


def _closed_loop(
    predictor: Any, texts: list[str], clients: int, seconds: float
) -> tuple[int, float]:
    counts = [0] * clients
    stop_at = time.perf_counter() + seconds
    began = time.perf_counter()

    def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            predictor.submit([texts[i % len(texts)]], timeout_s=30).result()
            counts[k] += 1
            i += clients

    workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts), time.perf_counter() - began
