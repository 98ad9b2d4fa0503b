"""The explainer sweep, and the explainer check failing on deliberately broken methods."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from modelyard.explainability import as_subject
from modelyard.explainability.methods import Attribution, MethodSpec
from modelyard.explainability.subject import Subject
from modelyard.recipe import ExplainConfig
from modelyard.registry import LoadedRun, load_run
from modelyard.testing import BoundCheck, check_explainer, parametrize_with_checks

# few integration steps and Shapley samples: the contract does not depend on their number
FAST = ExplainConfig(steps=8, samples=3)


@pytest.fixture()
def fresh_run(classifier_run: LoadedRun) -> LoadedRun:
    """A fresh load of the tiny classifier run, which a broken explainer may spoil."""
    return load_run(classifier_run.path)


@parametrize_with_checks("explainer")
def test_explainer_keeps_its_contract(
    entry: str, check: BoundCheck, classifier_run: LoadedRun
) -> None:
    check(classifier_run, cfg=FAST)


def _per_piece(subject: Any, words: Any, target: int, cfg: Any) -> Attribution:
    return Attribution(np.zeros(len(words) + 2))  # [CLS] and [SEP] counted as words


def _not_a_number(subject: Any, words: Any, target: int, cfg: Any) -> Attribution:
    scores = np.ones(len(words))
    scores[0] = np.nan
    return Attribution(scores)


def _unseeded(subject: Any, words: Any, target: int, cfg: Any) -> Attribution:
    return Attribution(np.random.default_rng().normal(size=len(words)))


def _edits_the_model(subject: Any, words: Any, target: int, cfg: Any) -> Attribution:
    with torch.no_grad():
        subject.run.model.get_input_embeddings().weight[0] += 1.0
    return Attribution(np.zeros(len(words)))


def _leaves_gradients(subject: Any, words: Any, target: int, cfg: Any) -> Attribution:
    model = subject.run.model
    ids = subject.run.tokenizer(words.text, return_tensors="pt")
    model(**ids).logits[0, target].backward()  # .grad is left on every parameter
    return Attribution(np.zeros(len(words)))


def _stray_owner(subject: Any, words: Any, target: int, cfg: Any) -> Attribution:
    n = len(words)
    return Attribution(np.zeros(n), ["a", "b"], np.zeros(2), [0, n])


@pytest.mark.parametrize(
    ("fn", "gradients", "clause"),
    [
        (_per_piece, False, "one score per word"),
        (_not_a_number, False, "word scores are finite"),
        (_unseeded, False, "is deterministic"),
        (_edits_the_model, True, "leaves the model's weights alone"),
        (_leaves_gradients, True, "leaves no gradients on the model's parameters"),
        (_stray_owner, False, "a word piece's owner is None or a word index"),
    ],
)
def test_a_broken_explainer_fails_naming_the_clause(
    fn: Any, gradients: bool, clause: str, fresh_run: LoadedRun
) -> None:
    spec = MethodSpec(fn.__name__, fn, gradients, "broken")
    with pytest.raises(AssertionError, match=f"explainer '{fn.__name__}' breaks .*{clause}"):
        check_explainer(spec, fresh_run)


def test_a_gradient_method_needs_a_pytorch_run(classifier_run: LoadedRun) -> None:
    forward_only = Subject(as_subject(classifier_run).backend, None)
    with pytest.raises(ValueError, match="'ig' needs gradients"):
        check_explainer("ig", forward_only)
