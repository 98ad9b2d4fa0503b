"""Each variant's memory is its own: measured in a fresh process, against a baseline with the
same imports, and never the size of the process that measures it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from modelyard.compress.measure import baseline_memory, isolated_memory, weights_size_mb
from modelyard.registry.manifest import write_manifest
from tests.compress.conftest import texts


@pytest.fixture(scope="module")
def big_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's tokenizer, labels and recipe with a ~75 MB fp32 model in its place (its
    weights in the layers, which every text touches, not in a big embedding table of which a
    memory-mapped load keeps only the rows used)."""
    root = tmp_path_factory.mktemp("big") / "run"
    shutil.copytree(trained_run, root, ignore=shutil.ignore_patterns("model.safetensors"))
    small = BertConfig.from_pretrained(str(trained_run))
    config = BertConfig(
        vocab_size=small.vocab_size,
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=2048,
        max_position_embeddings=128,
        num_labels=small.num_labels,
        id2label=small.id2label,
        label2id=small.label2id,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(root), safe_serialization=True)
    write_manifest(root)
    return root


@pytest.mark.slow  # three fresh processes that import torch, transformers and onnxruntime
def test_each_variant_reports_its_own_memory(trained_run: Path, big_run: Path) -> None:
    baseline = baseline_memory(1)
    assert baseline is not None
    small = isolated_memory(trained_run, 1, texts(16), baseline)["memory_mb"]
    big = isolated_memory(big_run, 1, texts(16), baseline)["memory_mb"]
    weights = weights_size_mb(big_run)
    assert weights > 60
    assert small is not None and big is not None
    # both pay the same runtime (PyTorch's first-use allocations); the big one pays its
    # weights on top, once or twice while they load, and nothing of the measuring process
    assert 0 < small < big
    assert 0.8 * weights < big - small < 4 * weights


@pytest.mark.slow  # two fresh processes
def test_the_measuring_process_size_does_not_leak_in() -> None:
    before = baseline_memory(1)
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: 400 MiB resident
    after = baseline_memory(1)
    del ballast
    assert before is not None and after is not None
    assert abs(after - before) < 60
