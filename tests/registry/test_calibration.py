"""The calibration record: parsed strictly, read only when the manifest lists it, decrypted
in memory for an encrypted run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import ArtifactError
from modelyard.inference import predict_proba
from modelyard.registry.calibration import (
    CALIBRATION,
    MAX_CALIBRATION_BYTES,
    parse_temperature,
    read_temperature,
    write_calibration,
)
from modelyard.registry.run import load_run
from tests.trainer.test_calibrate import rewrite_manifest

TEXTS = ["refund my invoice please", "where is my parcel", "reset my password"]


def test_parse_temperature() -> None:
    assert parse_temperature(b'{"temperature": 1.75, "method": "temperature"}', "x") == 1.75
    with pytest.raises(ArtifactError, match="too large"):
        parse_temperature(b" " * (MAX_CALIBRATION_BYTES + 1), "x")
    with pytest.raises(ArtifactError, match="x: a temperature lies in"):
        parse_temperature(b'{"temperature": 0.001}', "x")


def test_a_record_the_manifest_does_not_list_is_not_read(tmp_path: Path) -> None:
    assert read_temperature(tmp_path, {"files": {}}) == 1.0
    assert read_temperature(tmp_path, {}) == 1.0


def test_write_calibration_refuses_a_bad_temperature(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_calibration(tmp_path, {"temperature": float("nan")})
    assert not (tmp_path / CALIBRATION).exists()
    write_calibration(tmp_path, {"temperature": 2.0})
    assert json.loads((tmp_path / CALIBRATION).read_text()) == {"temperature": 2.0}


def test_encrypted_run_keeps_its_temperature(run_copy: Path, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from modelyard.registry.crypto import encrypt_artifact, generate_key_file

    plain = predict_proba(load_run(run_copy), TEXTS).probs
    write_calibration(run_copy, {"temperature": 2.5})
    rewrite_manifest(run_copy)
    key = generate_key_file(tmp_path / "keys" / "k.key")
    run = load_run(encrypt_artifact(run_copy, key=key), key=key)
    assert run.temperature == 2.5
    logits = np.log(plain)  # the plain softmax's log is the logits up to a per-row shift
    expected = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(1, keepdims=True)
    assert np.allclose(predict_proba(run, TEXTS).probs, expected, atol=1e-5)
