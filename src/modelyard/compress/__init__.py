"""Compression: ONNX export, int8 quantization, pruning and distillation, with a report.

    from modelyard.compress import compress
    result = compress("runs/my-run", methods=["onnx", "int8-dynamic", "distill:3"])
    result.report["variants"]   # accuracy, size, latency, throughput, memory, cost, Pareto

Methods live in a registry (`COMPRESSION_METHODS`); each turns the parent run into a variant that is
saved as an artifact whose manifest names its parent. Names load on first use, so the
command line starts without importing torch.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_EXPORTS = {
    "COMPRESSION_METHODS": "modelyard.compress.base",
    "CompressContext": "modelyard.compress.base",
    "describe_methods": "modelyard.compress.base",
    "register_compression_method": "modelyard.compress.base",
    "CompressResult": "modelyard.compress.sweep",
    "compress": "modelyard.compress.sweep",
    "compress_config": "modelyard.compress.sweep",
}
# old names (one name, one meaning: `METHODS` and `register_method` are also the training ones)
_RENAMED = {"METHODS": "COMPRESSION_METHODS", "register_method": "register_compression_method"}
# importing these registers the built-in methods
_PLUGINS = ("quantize", "prune", "distill")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        warnings.warn(
            f"modelyard.compress.{name} is deprecated; use modelyard.compress.{_RENAMED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        name = _RENAMED[name]
    if name not in _EXPORTS:
        raise AttributeError(f"module 'modelyard.compress' has no attribute '{name}'")
    for plugin in _PLUGINS:
        importlib.import_module(f"modelyard.compress.{plugin}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
