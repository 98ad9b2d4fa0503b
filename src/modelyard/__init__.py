"""modelyard: from data to a deployed, cheap, explainable and private transformer model.

The Python API mirrors the CLI one to one::

    import modelyard
    result = modelyard.train("recipe.yaml", overrides=["train.epochs=2"])
    modelyard.evaluate(result.run_dir, "test.csv")
    modelyard.predict(result.run_dir, ["where is my parcel?"])
"""

from __future__ import annotations

import importlib
from typing import Any

from modelyard._version import __version__
from modelyard.errors import ModelyardError

_API: tuple[str, ...] = (
    "evaluate",
    "evaluate_explanations",
    "explain",
    "explain_file",
    "init_project",
    "predict",
    "predict_file",
    "quickstart",
    "train",
    "tune",
)

__all__ = ["ModelyardError", "__version__", *_API]


def __getattr__(name: str) -> Any:
    # torch and transformers load only when an API function is first used, so the CLI starts fast
    if name in _API:
        return getattr(importlib.import_module("modelyard.api"), name)
    raise AttributeError(f"module 'modelyard' has no attribute '{name}'")
