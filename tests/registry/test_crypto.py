"""AES-256-GCM at rest: encrypted copies reveal nothing, load in memory, and keys never leak."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from modelyard.backends import load_backend
from modelyard.errors import ArtifactError
from modelyard.inference import predict_proba
from modelyard.registry.crypto import (
    KEY_ENV,
    KEY_FILE_ENV,
    ORIGINAL_MANIFEST,
    decrypt_artifact,
    encrypt_artifact,
    generate_key_file,
    read_key,
    seal,
)
from modelyard.registry.manifest import sha256_file
from modelyard.registry.run import load_run
from modelyard.registry.safety import ENCRYPTED_MAGIC
from modelyard.registry.signing import generate_signing_key, sign_artifact
from tests.registry.conftest import OpenRecorder

pytest.importorskip("cryptography")
TEXTS = ["refund my invoice please", "where is my parcel", "reset my password"]


@pytest.fixture()
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "model.key"
    generate_key_file(path)
    return path


def _secrets(key_file: Path) -> list[bytes]:
    text = key_file.read_bytes().strip()
    return [text, base64.b64decode(text)]


def test_key_file_is_owner_only_base64(key_file: Path) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_bytes().strip())) == 32
    key = read_key(key_file)
    assert len(key.key_id) == 16 and key.key_id in repr(key) and key.key_id in str(key)
    assert key_file.read_text().strip() not in repr(key)
    with pytest.raises(ArtifactError, match="already exists"):
        generate_key_file(key_file)


def test_encrypted_copy_reveals_neither_content_nor_key(run_copy: Path, key_file: Path) -> None:
    out = encrypt_artifact(run_copy, key=read_key(key_file))
    assert out == run_copy.with_name("run-encrypted")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"
    assert set(manifest["files"]) == {
        *json.loads((run_copy / "manifest.json").read_text())["files"],
        ORIGINAL_MANIFEST,
    }
    for path in out.rglob("*"):
        blob = path.read_bytes()
        assert path.name == "manifest.json" or blob.startswith(ENCRYPTED_MAGIC), path.name
        assert b"billing" not in blob and b"[CLS]" not in blob, path.name
        assert not any(secret in blob for secret in _secrets(key_file)), path.name


def test_encrypted_run_loads_in_memory_and_predicts_the_same(
    run_copy: Path, key_file: Path, opened: OpenRecorder
) -> None:
    out = encrypt_artifact(run_copy, key=read_key(key_file))
    plain = predict_proba(load_run(run_copy), TEXTS)
    before = sorted(str(p) for p in out.parent.rglob("*"))
    with opened.watch():
        loaded = load_run(out, key=key_file)
    assert opened.writes == [], "decryption wrote to disk"
    assert sorted(str(p) for p in out.parent.rglob("*")) == before
    assert loaded.labels == ["account", "billing", "shipping"] and loaded.max_length == 32
    again = predict_proba(loaded, TEXTS)
    np.testing.assert_allclose(again.probs, plain.probs, rtol=1e-5, atol=1e-6)
    assert again.truncated == plain.truncated


def test_serving_path_takes_the_key_from_the_environment(
    run_copy: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = encrypt_artifact(run_copy, key=read_key(key_file))
    with pytest.raises(ArtifactError, match=f"no encryption key.*{KEY_FILE_ENV}"):
        load_backend(out)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    assert load_backend(out).predict_proba(TEXTS)[0].shape == (3, 3)
    monkeypatch.delenv(KEY_FILE_ENV)
    monkeypatch.setenv(KEY_ENV, key_file.read_text().strip())
    assert load_run(out).labels


def test_decrypt_restores_the_original_byte_for_byte_with_its_signature(
    run_copy: Path, key_file: Path, tmp_path: Path
) -> None:
    private, public, _ = generate_signing_key(tmp_path / "sign.key")
    sign_artifact(run_copy, private)
    out = encrypt_artifact(run_copy, key=read_key(key_file))
    sign_artifact(out, private)  # the encrypted copy can be signed without the key
    assert load_run(out, key=key_file, trusted_keys=[public]).labels
    back = decrypt_artifact(out, tmp_path / "back", read_key(key_file))
    originals = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*") if p.is_file())
    assert sorted(p.relative_to(back) for p in back.rglob("*") if p.is_file()) == originals
    for rel in originals:
        assert (back / rel).read_bytes() == (run_copy / rel).read_bytes(), rel
    assert load_run(back, trusted_keys=[public]).labels


def test_wrong_key_names_both_ids_and_no_key(
    run_copy: Path, key_file: Path, tmp_path: Path
) -> None:
    out = encrypt_artifact(run_copy, key=read_key(key_file))
    other = tmp_path / "other.key"
    generate_key_file(other)
    with pytest.raises(ArtifactError, match="wrong key \\(it was encrypted with key") as info:
        load_run(out, key=other)
    message = str(info.value)
    assert read_key(key_file).key_id in message and read_key(other).key_id in message
    assert not any(s.decode("latin-1") in message for s in _secrets(key_file) + _secrets(other))


def _rehash(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = {
            "sha256": sha256_file(out / name),
            "size": (out / name).stat().st_size,
        }
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_altered_or_swapped_ciphertext_is_refused(run_copy: Path, key_file: Path) -> None:
    out = encrypt_artifact(run_copy, key=read_key(key_file))
    blob = bytearray((out / "labels.json").read_bytes())
    blob[-1] ^= 1
    (out / "labels.json").write_bytes(bytes(blob))
    _rehash(out)
    with pytest.raises(
        ArtifactError, match="'labels.json' cannot be decrypted: wrong key, or the file was altered"
    ):
        load_run(out, key=key_file)
    # a file moved under another name fails too: each file is bound to its name
    (out / "labels.json").write_bytes((out / "config.json").read_bytes())
    _rehash(out)
    with pytest.raises(ArtifactError, match="'labels.json' cannot be decrypted"):
        load_run(out, key=key_file)


def test_hostile_plaintext_inside_is_refused_after_decryption(
    run_copy: Path, key_file: Path
) -> None:
    # an attacker holding the key seals a pickle as the weights and forges both manifests
    key = read_key(key_file)
    out = encrypt_artifact(run_copy, key=key)
    payload = pickle.dumps({"weights": 1}, protocol=4)
    (out / "model.safetensors").write_bytes(seal(key, "model.safetensors", payload))
    inner = json.loads((run_copy / "manifest.json").read_text())
    inner["files"]["model.safetensors"] = {
        "sha256": __import__("hashlib").sha256(payload).hexdigest(),
        "size": len(payload),
    }
    (out / ORIGINAL_MANIFEST).write_bytes(seal(key, ORIGINAL_MANIFEST, json.dumps(inner).encode()))
    _rehash(out)
    with pytest.raises(ArtifactError, match="'model.safetensors' is a pickle \\(protocol 4\\)"):
        load_run(out, key=key_file)


def test_refusals_and_key_sources(
    run_copy: Path, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = read_key(key_file)
    out = encrypt_artifact(run_copy, tmp_path / "enc", key)
    with pytest.raises(ArtifactError, match="already encrypted"):
        encrypt_artifact(out, tmp_path / "enc2", key)
    with pytest.raises(ArtifactError, match="already exists"):
        encrypt_artifact(run_copy, tmp_path / "enc", key)
    with pytest.raises(ArtifactError, match="is not encrypted"):
        decrypt_artifact(run_copy, tmp_path / "dec", key)
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(ArtifactError, match="no encryption key: pass --key-file"):
        read_key()
    monkeypatch.setenv(KEY_ENV, "c2hvcnQ=")
    with pytest.raises(ArtifactError, match=f"\\${KEY_ENV} does not hold an AES-256 key") as info:
        read_key()
    assert "c2hvcnQ" not in str(info.value)
    bad = tmp_path / "bad.key"
    bad.write_text("TOPSECRET-material-that-is-not-base64!", encoding="utf-8")
    with pytest.raises(ArtifactError, match="does not hold an AES-256 key") as info:
        read_key(bad)
    assert "TOPSECRET" not in str(info.value)


def test_key_never_reaches_logs(
    run_copy: Path, key_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = read_key(key_file)
    out = encrypt_artifact(run_copy, key=key)
    load_run(out, key=key_file)
    decrypt_artifact(out, tmp_path / "dec", key)
    with pytest.raises(ArtifactError):
        load_run(out, key=tmp_path / "missing.key")
    logged = caplog.text.encode()
    assert not any(secret in logged for secret in _secrets(key_file))
