"""Inference speed, memory and cost of a prediction function."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_SIGNIFICANT_DIGITS = 4
_SECONDS_PER_HOUR = 3600.0
_MIN_TIMED_BATCHES = 2


def measure_speed(
    predict_fn: Callable[[list[str]], Any],
    texts: list[str],
    batch_size: int = 32,
    latency_runs: int = 50,
    warmup: int = 3,
) -> dict[str, float]:
    """Time ``predict_fn`` at batch size 1 (latency) and at ``batch_size`` (throughput).

    Latency calls ``predict_fn([text])`` ``latency_runs`` times, cycling through ``texts``.
    Throughput calls it on full batches of ``batch_size`` texts covering every text at
    least once and at least two batches, repeating ``texts`` cyclically to fill them.
    Each phase first makes ``warmup`` untimed calls at its batch size.
    Returns ``latency_p50_ms``, ``latency_p95_ms``, ``throughput_b{batch_size}_per_s``
    (texts per second) and ``batch_size``, rounded to 4 significant digits.
    Raises ValueError if ``texts`` is empty, ``batch_size`` or ``latency_runs`` is below 1,
    or ``warmup`` is negative; any exception from ``predict_fn`` propagates.
    """
    _check_speed_args(texts, batch_size, latency_runs, warmup)
    singles = [[texts[i % len(texts)]] for i in range(latency_runs)]
    n_batches = max(_MIN_TIMED_BATCHES, math.ceil(len(texts) / batch_size))
    batches = [_cyclic_slice(texts, i * batch_size, batch_size) for i in range(n_batches)]
    _warm_up(predict_fn, singles[0], warmup)
    latencies_ms = [_time_call(predict_fn, single) * 1000.0 for single in singles]
    _warm_up(predict_fn, batches[0], warmup)
    elapsed = sum(_time_call(predict_fn, batch) for batch in batches)
    return {
        "latency_p50_ms": _round_sig(float(np.percentile(latencies_ms, 50))),
        "latency_p95_ms": _round_sig(float(np.percentile(latencies_ms, 95))),
        f"throughput_b{batch_size}_per_s": _round_sig(n_batches * batch_size / elapsed),
        "batch_size": batch_size,
    }


def _check_speed_args(texts: list[str], batch_size: int, latency_runs: int, warmup: int) -> None:
    if not texts:
        raise ValueError("measure_speed needs at least one text; got an empty list")
    if batch_size < 1 or latency_runs < 1:
        raise ValueError(
            f"batch_size and latency_runs must be >= 1; got {batch_size} and {latency_runs}"
        )
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0; got {warmup}")


def _cyclic_slice(texts: list[str], start: int, size: int) -> list[str]:
    return [texts[(start + i) % len(texts)] for i in range(size)]


def _warm_up(predict_fn: Callable[[list[str]], Any], batch: list[str], calls: int) -> None:
    for _ in range(calls):
        predict_fn(batch)


def _time_call(predict_fn: Callable[[list[str]], Any], batch: list[str]) -> float:
    start = time.perf_counter()
    predict_fn(batch)
    # A trivially fast function can read 0 on a coarse clock; keep rates finite.
    return max(time.perf_counter() - start, 1e-9)


def _round_sig(value: float, digits: int = _SIGNIFICANT_DIGITS) -> float:
    # Significant digits rather than fixed decimals: speeds span microseconds to seconds.
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def peak_rss_mb() -> float:
    """Return the peak resident set size of this process so far, in MiB (1 decimal).

    Reads the peak of the process's own memory (VmHWM in /proc/self/status) on Linux: unlike
    ``getrusage``'s ru_maxrss, it does not start from the parent's size when the process was
    spawned by a large one. Elsewhere ``resource.getrusage`` (bytes on macOS), else psutil
    (peak working set on Windows, else current RSS). Raises nothing of its own; psutil errors
    propagate if every source fails.
    """
    own = _vm_hwm_mb()
    if own is not None:
        return own
    try:
        import resource
    except ImportError:
        return _psutil_peak_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if peak <= 0:
        return _psutil_peak_mb()
    bytes_per_unit = 1 if sys.platform == "darwin" else 1024
    return round(peak * bytes_per_unit / 2**20, 1)


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _psutil_peak_mb() -> float:
    import psutil

    info = psutil.Process().memory_info()
    # Only Windows reports a true peak; elsewhere current RSS is the best lower bound.
    peak = getattr(info, "peak_wset", None) or info.rss
    return round(peak / 2**20, 1)


def cost_per_million(throughput_per_s: float, price_per_cpu_hour: float, cpus: int) -> float:
    """Return the dollars needed for 1,000,000 predictions at ``throughput_per_s``.

    The machine is ``cpus`` CPUs each priced at ``price_per_cpu_hour`` dollars per hour.
    Raises ValueError if ``throughput_per_s`` is not positive, the price is negative, or
    ``cpus`` is below 1.
    """
    if not throughput_per_s > 0:
        raise ValueError(f"throughput_per_s must be positive; got {throughput_per_s}")
    if price_per_cpu_hour < 0 or cpus < 1:
        raise ValueError(
            f"price_per_cpu_hour must be >= 0 and cpus >= 1; got {price_per_cpu_hour} and {cpus}"
        )
    hours = 1e6 / throughput_per_s / _SECONDS_PER_HOUR
    return hours * cpus * price_per_cpu_hour
