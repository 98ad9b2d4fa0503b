"""The registry of attribution methods.

A method takes a subject, a text cut into words, the class index to explain and the explain
options, and returns word scores (plus word-piece scores where it has them). To add one:
write it beside its siblings, decorate it with `@method("name", needs_gradients=...)`, and
it joins the tests in tests/explainability/test_methods.py and the contract sweep
(`modelyard.testing.check_explainer`) in tests/testing/test_explainers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from modelyard.errors import ModelyardError
from modelyard.explainability.subject import Subject
from modelyard.explainability.words import Words
from modelyard.plugins import Registry
from modelyard.recipe import ExplainConfig


class ExplainError(ModelyardError):
    """An explanation was asked of a model or with options that cannot give it."""


@dataclass
class Attribution:
    """Raw output of a method: one score per word, and per word piece when it has them."""

    word_scores: np.ndarray
    pieces: list[str] = field(default_factory=list)
    piece_scores: np.ndarray | None = None
    owners: list[int | None] = field(default_factory=list)
    delta: float | None = None
    steps: int | None = None


MethodFn = Callable[[Subject, Words, int, ExplainConfig], Attribution]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function, whether it needs gradients, and a one-line summary."""

    name: str
    fn: MethodFn
    needs_gradients: bool
    summary: str


# float32 probabilities reach exactly 0 or 1; clipping keeps log-odds finite (|x| <= 16.1)
_EPS = 1e-7


def logit_score(logits: torch.Tensor, target: int, score: str) -> torch.Tensor:
    """Return, per row of logits, what is explained: the target's log-odds or its probability.

    Log-odds are computed from logits as z_t - logsumexp(z_others): exact, not clipped.
    """
    if score == "probability":
        return torch.softmax(logits, dim=-1)[:, target]
    others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=-1)
    return logits[:, target] - torch.logsumexp(others, dim=-1)


def proba_score(probs: np.ndarray, target: int, score: str) -> np.ndarray:
    """Return, per row of class probabilities, the target's log-odds (clipped) or probability."""
    p = np.asarray(probs, dtype=np.float64)[:, target]
    if score == "probability":
        return p
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


EXPLAINERS: Registry[MethodSpec] = Registry("explanation method")


def method(name: str, needs_gradients: bool, summary: str) -> Callable[[MethodFn], MethodFn]:
    """Return a decorator that registers an attribution function under `name`."""

    def decorator(fn: MethodFn) -> MethodFn:
        EXPLAINERS.add(name, MethodSpec(name, fn, needs_gradients, summary))
        return fn

    return decorator


def get_method(name: str, subject: Subject) -> MethodSpec:
    """Return the method called `name`, checked against what the subject can do.

    Raises UnknownPluginError for an unknown name (listing the known ones) and ExplainError
    when the method needs gradients and the subject has no PyTorch model.
    """
    spec = EXPLAINERS.get(name)
    if spec.needs_gradients and subject.run is None:
        usable = ", ".join(n for n in EXPLAINERS.names() if not EXPLAINERS.get(n).needs_gradients)
        raise ExplainError(
            f"method '{name}' needs gradients from a floating-point PyTorch model, but this "
            f"artifact (backend '{subject.kind}') offers only its forward pass; use one of: {usable}"
        )
    return spec


def methods_for(subject: Subject) -> list[str]:
    """Return the names of every registered method the subject supports."""
    return [n for n in EXPLAINERS.names() if subject.run is not None or not _needs_grad(n)]


def _needs_grad(name: str) -> bool:
    return EXPLAINERS.get(name).needs_gradients
