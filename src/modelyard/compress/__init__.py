"""Compression: ONNX export, int8 quantization, pruning and distillation, with a report.

    from modelyard.compress import compress
    result = compress("runs/my-run", methods=["onnx", "int8-dynamic", "distill:3"])
    result.report["variants"]   # accuracy, size, latency, throughput, memory, cost, Pareto

Methods live in a registry (`METHODS`); each turns the parent run into a variant that is
saved as an artifact whose manifest names its parent. Names load on first use, so the
command line starts without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "METHODS": "modelyard.compress.base",
    "CompressContext": "modelyard.compress.base",
    "describe_methods": "modelyard.compress.base",
    "register_method": "modelyard.compress.base",
    "CompressResult": "modelyard.compress.pipeline",
    "compress": "modelyard.compress.pipeline",
    "compress_config": "modelyard.compress.pipeline",
}
# importing these registers the built-in methods
_PLUGINS = ("quantize", "prune", "distill")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'modelyard.compress' has no attribute '{name}'")
    for plugin in _PLUGINS:
        importlib.import_module(f"modelyard.compress.{plugin}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
