"""Measure loaded classifiers side by side: quality, size on disk, memory, speed and cost.

Speed is measured in rounds that interleave the variants (A B C A B C ...) and the
median of each figure over the rounds is kept, so a noisy neighbour slows every variant
alike instead of one of them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import statistics
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.backends import evaluate_file
from modelyard.data import Split
from modelyard.evaluation import (
    cost_per_million,
    evaluate_classifier,
    measure_speed,
    peak_rss_mb,
)
from modelyard.recipe import EvaluateConfig
from modelyard.registry.records import read_recipe

WEIGHT_SUFFIXES = (".onnx", ".safetensors", ".bin", ".data")
_MB = 2**20


def weights_bytes(path: Path) -> int:
    """Return the size in bytes of the model weight files (.onnx, .safetensors) of an artifact."""
    files = [p for p in Path(path).rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    return sum(p.stat().st_size for p in files if "checkpoints" not in p.relative_to(path).parts)


def weights_size_mb(path: Path) -> float:
    """Return the size in MiB of the model weight files of an artifact (2 decimals)."""
    return round(weights_bytes(path) / _MB, 2)


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux `clear_refs`); return False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def current_rss_mb() -> float:
    """Return this process's resident set size now, in MiB."""
    import psutil

    return round(psutil.Process().memory_info().rss / _MB, 1)


def load_measured(loader: Callable[[], Any], probe: list[str]) -> tuple[Any, float | None]:
    """Call `loader`, predict `probe` once, and return (what it loaded, MiB of peak RSS it added).

    An in-process estimate: memory freed meanwhile hides some of the growth. The figure
    is None where the peak mark cannot be reset (it would include everything before).
    """
    gc.collect()
    resettable = reset_peak_rss()
    before = current_rss_mb()
    backend = loader()
    backend.predict_proba(probe)
    if not resettable:
        return backend, None
    return backend, round(max(0.0, peak_rss_mb() - before), 1)


_PROBE = (
    "import json, sys; from modelyard.compress.measure import probe_memory; "
    "print(json.dumps(probe_memory(sys.argv[1], int(sys.argv[2]), json.load(sys.stdin))))"
)
# what serving any variant imports: a baseline process imports the same, loads nothing
_RUNTIMES = ("torch", "transformers", "onnxruntime")


def probe_memory(path: str, threads: int, texts: list[str]) -> dict[str, float]:
    """In this fresh process, import every runtime a variant may need, then (when `path` is
    not empty) load the artifact at `path` and predict `texts` in batches of 32 and the first
    few one at a time; return this process's own peak RSS (`peak_rss_mb`, VmHWM) in MiB.

    With an empty `path` it is the baseline: the same imports and nothing loaded.
    """
    import importlib

    import modelyard.compress.onnx_backend
    import modelyard.compress.torch_variant  # noqa: F401  (imports counted in the baseline)
    from modelyard.backends import load_backend

    for name in _RUNTIMES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    torch = importlib.import_module("torch")
    torch.set_num_threads(threads)
    if path:
        backend = load_backend(path)
        for start in range(0, len(texts), 32):
            backend.predict_proba(texts[start : start + 32])
        for text in texts[:8]:
            backend.predict_proba([text])
    return {"peak_rss_mb": peak_rss_mb()}


def _probe(path: str, threads: int, texts: list[str]) -> float | None:
    # a child process of its own: its peak is the variant's, not this process's
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, path, str(threads)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        return None
    peak: float = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    return peak


def baseline_memory(threads: int) -> float | None:
    """Return the peak RSS in MiB of a fresh process that imports what `probe_memory` imports
    and loads nothing (None when the probe fails)."""
    return _probe("", threads, [])


def isolated_memory(
    path: Path, threads: int, texts: list[str], baseline: float | None = None
) -> dict[str, float | None]:
    """Return the memory the artifact at `path` needs of its own: `peak_rss_mb`, the peak RSS
    of a fresh process that loads it and predicts `texts`, and `memory_mb`, that peak minus
    `baseline` (the peak of a process with the same imports and nothing loaded; measured
    when not given): the variant's weights, runtime arenas and activations.

    Both are None when a probe process fails (the error is not the variant's fault).
    """
    peak = _probe(str(path), threads, texts)
    if baseline is None:
        baseline = baseline_memory(threads)
    if peak is None or baseline is None:
        return {"memory_mb": None, "peak_rss_mb": None}
    return {"memory_mb": round(max(0.0, peak - baseline), 1), "peak_rss_mb": peak}


def quality(backend: Any, split: Split, ece_bins: int = 15) -> dict[str, Any]:
    """Return classification metrics of `backend` on `split` (labels follow backend.labels);
    speed is measured apart, in interleaved rounds (`SpeedRounds`)."""
    cfg = EvaluateConfig(ece_bins=ece_bins, speed=False)
    return evaluate_classifier(backend, split, cfg)


@dataclass
class SpeedRounds:
    """Interleaved timing rounds over several named prediction functions."""

    texts: list[str]
    latency_runs: int = 50
    rounds: int = 3
    samples: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def run(self, backends: dict[str, Any]) -> dict[str, dict[str, float]]:
        """Time every backend once per round, interleaved; return per-name medians."""
        for _ in range(self.rounds):
            for name, backend in backends.items():
                figures = measure_speed(
                    backend.predict_proba,
                    self.texts,
                    batch_size=32,
                    latency_runs=self.latency_runs,
                )
                self.samples.setdefault(name, []).append(figures)
        return {name: self.summary(name) for name in backends}

    def summary(self, name: str) -> dict[str, float]:
        """Return the median of each figure of `name` over the rounds, and the spread of throughput."""
        rows = self.samples[name]
        keys = ("latency_p50_ms", "latency_p95_ms", "throughput_b32_per_s")
        result = {k: round(statistics.median(r[k] for r in rows), 3) for k in keys}
        through = [r["throughput_b32_per_s"] for r in rows]
        result["throughput_spread"] = round(
            (max(through) - min(through)) / max(np.median(through), 1e-9), 3
        )
        return result


def cost(throughput: float, price_per_cpu_hour: float, cpus: int) -> float:
    """Return the dollars per million predictions at `throughput` texts/s on `cpus` CPUs."""
    # significant digits: costs span fractions of a cent to dollars
    return float(f"{cost_per_million(throughput, price_per_cpu_hour, cpus):.4g}")


def evaluate_artifact(
    backend: Any,
    data: Path,
    text_column: str | None,
    label_column: str | None,
    output: str | Path | None,
) -> dict[str, Any]:
    """Deprecated: `modelyard.evaluate(path, data)` evaluates every artifact kind (through
    `modelyard.backends.evaluate_file`); this calls the same code."""
    warnings.warn(
        "modelyard.compress.measure.evaluate_artifact is deprecated; use modelyard.evaluate",
        DeprecationWarning,
        stacklevel=2,
    )
    out = Path(output) if output else None
    recipe = read_recipe(backend.path)
    return evaluate_file(backend, recipe, Path(data), text_column, label_column, out)
