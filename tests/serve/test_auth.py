"""API keys: stored only as salted hashes, verified, scoped, revocable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from modelyard.serve.auth import ApiKeyError, Authenticator, KeyStore, split_key


def test_a_created_key_verifies_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    info, key = store.create("predict", "ci")
    assert store.verify(key) == info and info.scope == "predict" and info.name == "ci"
    text = (tmp_path / "keys.json").read_text()
    secret = split_key(key)[1]  # type: ignore[index]
    assert secret not in text and key not in text
    record = json.loads(text)["keys"][0]
    assert record["kdf"]["name"] == "scrypt" and len(bytes.fromhex(record["salt"])) == 16
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600


def test_same_secret_shape_different_salts(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    store.create("predict")
    store.create("predict")
    records = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert records[0]["salt"] != records[1]["salt"] and records[0]["hash"] != records[1]["hash"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k + "x",
        lambda k: "",
        lambda k: "myd_.",
        lambda k: k.replace("myd_", "xyz_"),
    ],
)
def test_wrong_keys_do_not_verify(tmp_path: Path, mangle) -> None:  # type: ignore[no-untyped-def]
    store = KeyStore(tmp_path / "keys.json")
    _, key = store.create("admin")
    assert store.verify(mangle(key)) is None


def test_scopes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    predict, _ = store.create("predict")
    admin, _ = store.create("admin")
    assert predict.allows("predict") and not predict.allows("admin")
    assert admin.allows("predict") and admin.allows("admin")
    with pytest.raises(ApiKeyError, match="unknown scope 'root'; use one of: predict, admin"):
        store.create("root")


def test_revoked_key_stops_working_even_when_cached(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    info, key = store.create("predict")
    auth = Authenticator(store)
    assert auth.verify(key) == info and auth.cached(key) == info
    store.revoke(info.id)
    assert auth.cached(key) is None and auth.verify(key) is None
    assert store.list() == []


def test_revoking_an_unknown_id_lists_the_ids(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    info, _ = store.create("predict")
    with pytest.raises(ApiKeyError, match=f"no key with id 'nope'; ids: {info.id}"):
        store.revoke("nope")


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ApiKeyError, match="is corrupt.*create new keys"):
        KeyStore(tmp_path / "keys.json").list()


def test_default_key_file_follows_modelyard_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path))
    assert KeyStore().path == tmp_path / "keys.json"
