"""Explanations of a calibrated run report, and explain, its temperature-scaled probabilities."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.explainability import explain
from modelyard.explainability.gradient import encode, explained_output
from modelyard.explainability.subject import as_subject
from modelyard.explainability.words import split_words
from modelyard.inference import predict_proba
from modelyard.registry import LoadedRun, load_run
from tests.trainer.test_calibrate import with_temperature

T = 3.0
TEXT = "please refund my card today"


@pytest.fixture(scope="module")
def hot_run(key_run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedRun:
    return load_run(with_temperature(key_run_dir, tmp_path_factory.mktemp("hot") / "run", T))


@pytest.mark.parametrize("method", ["occlusion", "ig"])
def test_reported_probabilities_are_calibrated(hot_run: LoadedRun, method: str) -> None:
    exp = explain(hot_run, TEXT, method=method, steps=8)[0]
    expected = predict_proba(hot_run, [TEXT]).probs[0]
    plain = predict_proba(replace(hot_run, temperature=1.0), [TEXT]).probs[0]
    shown = np.array([exp.probabilities[label] for label in hot_run.labels])
    assert np.allclose(shown, expected, atol=1e-5)
    assert not np.allclose(shown, plain, atol=1e-3)


def test_gradient_methods_explain_the_scaled_probability(hot_run: LoadedRun) -> None:
    subject = as_subject(hot_run)
    enc = encode(subject, split_words(TEXT))
    with torch.no_grad():
        scaled = explained_output(hot_run.model, 1, "probability", T)(enc.input_ids, *enc.extra)
    assert float(scaled[0]) == pytest.approx(predict_proba(hot_run, [TEXT]).probs[0, 1], abs=1e-5)
