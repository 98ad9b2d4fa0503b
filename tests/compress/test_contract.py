"""One contract over every registered compression method, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.backends import load_backend
from modelyard.compress import METHODS, CompressContext
from modelyard.compress.base import MethodSpec, parse_methods, save_variant
from tests.compress.conftest import snapshot, texts

# the argument each method gets here; the tiny model has 2 layers of 2 heads
ARGS = {"distill": "1", "prune-heads": "0.5", "prune-ffn": "0.3", "prune": "0.5"}
# half precision rounds the probabilities a little; everything else reloads exactly
TOLERANCE = {"fp16": 1e-2, "bf16": 1e-2}


def test_every_method_is_covered() -> None:
    methods = set(METHODS.names())
    assert methods >= {"onnx", "int8-dynamic", "int8-static", "torch-int8", "fp16", "bf16"}
    assert methods >= {"prune", "prune-heads", "prune-ffn", "distill"}


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name: str, ctx: CompressContext, tmp_path: Path) -> None:
    before = snapshot(ctx.run.model)
    [spec] = parse_methods([MethodSpec(name, ARGS.get(name)).label])
    sample = texts()
    variant = METHODS.get(name)(ctx, spec.arg)

    after = snapshot(ctx.run.model)
    assert after["config"] == before["config"], "the parent's config was changed"
    for key, value in before["weights"].items():
        assert torch.equal(after["weights"][key], value), f"the parent's {key} was changed"

    probs, cut = variant.predict_proba(sample)
    assert probs.shape == (len(sample), len(ctx.run.labels)) and len(cut) == len(sample)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3)

    path = save_variant(variant, ctx, spec, tmp_path / spec.slug)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["kind"] == variant.kind and manifest["parent"] == str(ctx.run.path.resolve())
    reloaded = load_backend(path)
    again, _ = reloaded.predict_proba(sample)
    assert reloaded.labels == ctx.run.labels
    assert np.allclose(again, probs, atol=TOLERANCE.get(name, 1e-5)), name
    info = json.loads((path / "compression.json").read_text())
    assert info["method"] == spec.label
