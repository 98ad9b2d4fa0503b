"""Explanations: word attributions, their faithfulness, a global view, terminal and HTML output.

The package is `explainability`, not `explain`, because `modelyard.explain` is the API
function and a subpackage of the same name would shadow it once imported::

    import modelyard
    [exp] = modelyard.explain("runs/tiny", "I was charged twice", method="ig", steps=20)
    exp.top_words(3), exp.delta, exp.probabilities
"""

from __future__ import annotations

import importlib
from typing import Any

# names load on first use so that `modelyard --help` does not import torch and captum
_EXPORTS = {
    "ExplainedFile": "api",
    "evaluate_explanations": "api",
    "explain": "api",
    "explain_file": "api",
    "read_texts": "api",
    "FaithfulnessReport": "faithfulness",
    "MethodFaithfulness": "faithfulness",
    "evaluate_faithfulness": "faithfulness",
    "GlobalView": "overview",
    "WordStat": "overview",
    "global_view": "overview",
    "EXPLAINERS": "methods",
    "ExplainError": "methods",
    "method": "methods",
    "Explanation": "results",
    "TokenScore": "results",
    "WordScore": "results",
    "Subject": "subject",
    "as_subject": "subject",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
