"""The real bundled backbone: ONNX Runtime fuses its attention, and int8 keeps its predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.compress import COMPRESSION_METHODS, CompressContext, compress_config
from modelyard.models import build_classifier, load_tokenizer, resolve_backbone
from modelyard.registry.run import LoadedRun
from tests.compress.conftest import FAST, texts
from tests.conftest import make_rows, write_csv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_ctx(tmp_path_factory: pytest.TempPathFactory) -> CompressContext:
    tmp = tmp_path_factory.mktemp("real")
    folder = resolve_backbone("minilm-l6")
    labels = ["account", "billing", "shipping"]
    data = write_csv(tmp / "data.csv", make_rows(60))
    recipe = {"run": {"seed": 1}, "data": {"path": str(data)}, "model": {"max_length": 64}}
    torch.manual_seed(0)  # the new head is random: fix it so the test is repeatable
    model = build_classifier(folder, labels).eval()
    run = LoadedRun(tmp, model, load_tokenizer(folder), labels, 64, {}, recipe)
    return CompressContext(run, compress_config({}, FAST), tmp / "work", seed=1, threads=2)


def test_real_model_exports_with_fused_attention(real_ctx: CompressContext) -> None:
    variant = COMPRESSION_METHODS.get("onnx")(real_ctx, None)
    assert variant.details["fused_ops"]["Attention"] == 6
    assert variant.details["parity_max_abs_diff"] < 1e-4


def test_real_model_int8_stays_close_to_fp32(real_ctx: CompressContext) -> None:
    sample = texts(48, seed=9)
    reference, _ = COMPRESSION_METHODS.get("onnx")(real_ctx, None).predict_proba(sample)
    int8, _ = COMPRESSION_METHODS.get("int8-dynamic")(real_ctx, None).predict_proba(sample)
    # the head is untrained, so classes are near ties: compare probabilities, not labels
    gap = np.abs(int8 - reference).max()
    assert 0 < gap < 0.05
    assert Path(real_ctx.cache["fused_graph"][0]).is_file()
