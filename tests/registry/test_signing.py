"""Ed25519 signatures over the manifest: who may load what, and every way it can fail."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from modelyard.backends import load_backend
from modelyard.errors import ArtifactError
from modelyard.registry.manifest import write_manifest
from modelyard.registry.run import load_run
from modelyard.registry.signing import (
    TRUSTED_KEYS_ENV,
    SignatureError,
    generate_signing_key,
    sign_artifact,
    verify_artifact,
)

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, str]]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: generate_signing_key(folder / f"{name}.key") for name in ("alice", "mallory")}


def test_key_files_are_pem_and_the_private_one_is_owner_only(keys: dict, tmp_path: Path) -> None:
    private, public, key_id = keys["alice"]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----") and public.suffix == ".pub"
    assert len(key_id) == 16 and key_id != keys["mallory"][2]
    with pytest.raises(ArtifactError, match="already exists; pass --overwrite"):
        generate_signing_key(private)


def test_signed_run_loads_with_the_trusted_key(run_copy: Path, keys: dict) -> None:
    private, public, key_id = keys["alice"]
    record = sign_artifact(run_copy, private)
    assert record["key_id"] == key_id and record["algorithm"] == "ed25519"
    assert verify_artifact(run_copy, [public])["key_id"] == key_id
    assert load_run(run_copy, trusted_keys=[public]).labels
    assert load_run(run_copy, trusted_keys=[public.parent]).labels  # a folder of .pub files
    assert load_backend(run_copy, trusted_keys=[public]).labels


def test_signatures_survive_a_registry_push(run_copy: Path, keys: dict, tmp_path: Path) -> None:
    from modelyard.registry.store import ModelStore

    sign_artifact(run_copy, keys["alice"][0])
    stored = ModelStore(tmp_path / "registry").push(run_copy, "support")
    assert verify_artifact(stored.path, [keys["alice"][1]])["key_id"] == keys["alice"][2]


def test_a_changed_file_is_refused_even_with_a_resigned_hash(run_copy: Path, keys: dict) -> None:
    private, public, _ = keys["alice"]
    sign_artifact(run_copy, private)
    (run_copy / "labels.json").write_text('["x", "y", "z"]\n', encoding="utf-8")
    with pytest.raises(ArtifactError, match="changed"):
        load_run(run_copy, trusted_keys=[public])
    # the attacker fixes the hash in the manifest but cannot re-sign it
    manifest = json.loads((run_copy / "manifest.json").read_text())
    fresh = write_manifest(run_copy)
    manifest["files"] = fresh["files"]
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        SignatureError, match="does not match the manifest .*changed after it was signed"
    ):
        load_run(run_copy, trusted_keys=[public])


def test_unsigned_and_untrusted_are_refused(run_copy: Path, keys: dict) -> None:
    with pytest.raises(SignatureError, match="is not signed.*modelyard registry sign"):
        load_run(run_copy, trusted_keys=[keys["alice"][1]])
    sign_artifact(run_copy, keys["mallory"][0])
    with pytest.raises(SignatureError, match=f"not trusted here \\({keys['mallory'][2]}\\)"):
        load_backend(run_copy, trusted_keys=[keys["alice"][1]])


def test_two_signers_and_resigning(run_copy: Path, keys: dict) -> None:
    sign_artifact(run_copy, keys["alice"][0])
    sign_artifact(run_copy, keys["mallory"][0])
    sign_artifact(run_copy, keys["alice"][0])  # renews, does not duplicate
    sigs = json.loads((run_copy / "manifest.json").read_text())["signatures"]
    assert sorted(s["key_id"] for s in sigs) == sorted([keys["alice"][2], keys["mallory"][2]])
    for name in ("alice", "mallory"):
        assert verify_artifact(run_copy, [keys[name][1]])["key_id"] == keys[name][2]


def test_requirement_from_the_environment(
    run_copy: Path, keys: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(keys["alice"][1]))
    with pytest.raises(SignatureError, match="is not signed"):
        load_run(run_copy)
    sign_artifact(run_copy, keys["alice"][0])
    assert load_run(run_copy).labels


def test_require_signature_without_keys_says_how(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRUSTED_KEYS_ENV, raising=False)
    with pytest.raises(SignatureError, match=f"no trusted keys are given.*{TRUSTED_KEYS_ENV}"):
        load_run(run_copy, require_signature=True)


def test_tampered_artifact_is_never_signed(run_copy: Path, keys: dict) -> None:
    (run_copy / "labels.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ArtifactError, match="changed"):
        sign_artifact(run_copy, keys["alice"][0])
    assert "signatures" not in json.loads((run_copy / "manifest.json").read_text())


def test_bad_key_files_name_the_path_not_the_content(tmp_path: Path, run_copy: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("TOPSECRET-not-a-key-1234", encoding="utf-8")
    with pytest.raises(SignatureError) as info:
        sign_artifact(run_copy, bad)
    assert str(bad) in str(info.value) and "TOPSECRET" not in str(info.value)
    pub = tmp_path / "bad.pub"
    pub.write_text("TOPSECRET-not-a-key-1234", encoding="utf-8")
    with pytest.raises(SignatureError, match="not an Ed25519 public key") as info:
        verify_artifact(run_copy, [pub])
    assert "TOPSECRET" not in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SignatureError, match="holds no \\*.pub files"):
        verify_artifact(run_copy, [tmp_path / "empty"])
    with pytest.raises(SignatureError, match="trusted key not found"):
        verify_artifact(run_copy, [tmp_path / "nope.pub"])
