"""`compress` on an embedding-classifier run (`model.pooling: mean`): ONNX export, int8 and
pruning work; the methods that need a Hugging Face classifier say so and the rest go on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.backends import load_backend
from modelyard.compress import compress
from modelyard.inference import predict_proba
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.run import load_run
from tests.compress.conftest import FAST, texts, train_tiny_run


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("embedding-run"), tiny_backbone, "mean")


COMPRESSION_METHODS = [
    "onnx",
    "int8-dynamic",
    "torch-int8",
    "prune-heads:0.5",
    "prune:0.5",
    "bf16",
    "distill:1",
]


@pytest.fixture(scope="module")
def result(embedding_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("embedding-compressed") / "out"
    return compress(embedding_run, methods=COMPRESSION_METHODS, output=out, overrides=FAST)


def test_the_parent_is_an_embedding_classifier(embedding_run: Path) -> None:
    manifest = json.loads((embedding_run / "manifest.json").read_text())
    assert manifest["kind"] == "embedding-classifier"


def test_onnx_int8_and_pruned_variants_are_made_and_load(result: Any, embedding_run: Path) -> None:
    assert set(result.variants) == {
        "onnx",
        "int8-dynamic",
        "torch-int8",
        "prune-heads:0.5",
        "prune:0.5",
    }
    kinds = {name: verify_manifest(path)["kind"] for name, path in result.variants.items()}
    assert kinds["onnx"] == kinds["int8-dynamic"] == "onnx-classifier"
    assert kinds["torch-int8"] == kinds["prune-heads:0.5"] == "torch-compressed-classifier"
    assert kinds["prune:0.5"] == "embedding-classifier"
    parent = predict_proba(load_run(embedding_run), texts()).probs
    for name, path in result.variants.items():
        probs = load_backend(path).predict_proba(texts())[0]
        assert probs.shape == parent.shape and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
        if name == "onnx":  # the exported graph computes the same model
            assert np.abs(probs - parent).max() < 1e-3
    pruned = json.loads((result.variants["prune-heads:0.5"] / "compression.json").read_text())
    assert pruned["heads_after"] < pruned["heads_before"]


def test_methods_that_need_a_hf_classifier_fail_clearly_and_alone(result: Any) -> None:
    failed = result.report["failed"]
    assert set(failed) == {"bf16", "distill:1"}
    for message in failed.values():
        assert "embedding-classifier" in message and "onnx" in message
