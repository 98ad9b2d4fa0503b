"""Serving: a batching inference engine and a secured HTTP API over registry models.

    from modelyard.serve import ServeSettings, create_app, run_server
    run_server(ServeSettings(models=["support:production"]))   # what `modelyard serve` does

Heavy modules (FastAPI, torch) load only when these names are first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "modelyard.serve.engine",
    "ServeSettings": "modelyard.serve.settings",
    "create_app": "modelyard.serve.app",
    "run_server": "modelyard.serve.server",
    "run_ray": "modelyard.serve.ray_backend",
    "KeyStore": "modelyard.serve.auth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'modelyard.serve' has no attribute '{name}'")
