"""Compressed variants carry their parent's temperature: ONNX, int8 and PyTorch int8 alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.backends import TorchBackend, load_backend
from modelyard.compress import METHODS, CompressContext, compress_config
from modelyard.compress.base import MethodSpec, save_variant
from modelyard.compress.onnx_backend import OnnxBackend
from modelyard.evaluation.calibration import scaled_probabilities
from modelyard.registry.calibration import CALIBRATION
from modelyard.registry.run import load_run
from tests.compress.conftest import FAST, texts
from tests.trainer.test_calibrate import with_temperature

T = 2.5
# int8 rounding moves logits a little; the fp32 graph matches PyTorch to float noise
TOLERANCE = {"onnx": 1e-4, "int8-dynamic": 0.05, "torch-int8": 0.05}


@pytest.fixture(scope="module")
def hot_parent(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_temperature(trained_run, tmp_path_factory.mktemp("hot") / "run", T)


@pytest.fixture(scope="module")
def variants(hot_parent: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    run = load_run(hot_parent)
    work = tmp_path_factory.mktemp("hot-work")
    ctx = CompressContext(run, compress_config(run.recipe, FAST), work, seed=7, threads=1)
    return {
        name: save_variant(METHODS.get(name)(ctx, None), ctx, MethodSpec(name, None), work / name)
        for name in TOLERANCE
    }


@pytest.mark.parametrize("name", list(TOLERANCE))
def test_variant_predicts_with_the_parents_temperature(
    name: str, hot_parent: Path, variants: dict[str, Path]
) -> None:
    variant = variants[name]
    assert json.loads((variant / CALIBRATION).read_text())["temperature"] == T
    sample = texts(20, seed=4)
    reference, _ = TorchBackend(hot_parent).predict_proba(sample)
    probs, _ = load_backend(variant).predict_proba(sample)
    assert np.abs(probs - reference).max() < TOLERANCE[name]
    assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.9


def test_onnx_probabilities_are_the_scaled_softmax_of_its_logits(
    variants: dict[str, Path],
) -> None:
    backend = OnnxBackend(variants["int8-dynamic"], threads=1)
    sample = texts(10, seed=6)
    logits, _ = backend.classifier.predict_logits(sample)
    probs, _ = backend.predict_proba(sample)
    assert np.allclose(probs, scaled_probabilities(logits, T), atol=1e-6)
    assert not np.allclose(probs, scaled_probabilities(logits), atol=1e-3)
