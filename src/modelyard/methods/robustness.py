"""Deprecated: robustness evaluation is `modelyard.evaluation.robustness`.

The noises and `robustness_markdown` are the same objects; `robustness_metrics` and
`add_robustness` also take a loaded PyTorch run, as they did.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from modelyard.backends import TorchBackend
from modelyard.evaluation.classifier import Classifier
from modelyard.evaluation.robustness import (
    NOISES,
    Noise,
    case,
    perturb,
    punctuation,
    robustness_markdown,
    typos,
    word_deletion,
    word_swap,
)
from modelyard.evaluation.robustness import robustness_metrics as _robustness_metrics
from modelyard.fsutil import atomic_write_text
from modelyard.models.encoding import LabelledTexts
from modelyard.registry.run import LoadedRun

__all__ = [
    "NOISES",
    "Noise",
    "add_robustness",
    "case",
    "perturb",
    "punctuation",
    "robustness_markdown",
    "robustness_metrics",
    "typos",
    "word_deletion",
    "word_swap",
]


def robustness_metrics(
    run: LoadedRun | Classifier, split: LabelledTexts, seed: int = 0, rate: float = 0.1
) -> dict[str, Any]:
    """Deprecated: `modelyard.evaluation.robustness_metrics` (a loaded run is served by PyTorch)."""
    warnings.warn(
        "modelyard.methods.robustness is deprecated; use modelyard.evaluation.robustness_metrics",
        DeprecationWarning,
        stacklevel=2,
    )
    classifier = TorchBackend.from_run(run) if isinstance(run, LoadedRun) else run
    return _robustness_metrics(classifier, split, seed, rate)


def add_robustness(
    metrics: dict[str, Any], run: LoadedRun, split: LabelledTexts, out: Path
) -> None:
    """Deprecated: `modelyard.evaluation.evaluate_classifier(..., robustness=True)`."""
    report = robustness_metrics(run, split)
    metrics["robustness"] = report
    atomic_write_text(out / "robustness.md", robustness_markdown(report, run.path.name))
