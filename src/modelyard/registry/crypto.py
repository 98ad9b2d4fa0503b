"""AES-256-GCM encryption of artifacts at rest; loading decrypts in memory, never to disk.

`encrypt_artifact` writes a copy in which every file of the manifest is replaced by
`MAGIC · nonce · ciphertext+tag`, authenticated together with its own name (so files cannot
be swapped), plus the original manifest encrypted the same way. The new manifest lists the
encrypted files' hashes (so it verifies, and can be signed, without the key) and an
`encryption` record naming the algorithm and the key's id, never the key. `decrypt_artifact`
restores the original byte for byte. Keys are 32 random bytes, base64 in a key file or in
`MODELYARD_ENCRYPTION_KEY`; `MODELYARD_ENCRYPTION_KEY_FILE` may name the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError
from modelyard.fsutil import atomic_write_json, replace_dir
from modelyard.registry.keyfiles import (
    fingerprint,
    read_key_file,
    require_cryptography,
    write_secret,
)
from modelyard.registry.manifest import FORMAT_VERSION, MANIFEST, sha256_file, verify_manifest
from modelyard.registry.safety import ENCRYPTED_MAGIC, check_bytes, open_regular

KEY_ENV = "MODELYARD_ENCRYPTION_KEY"
KEY_FILE_ENV = "MODELYARD_ENCRYPTION_KEY_FILE"
ALGORITHM = "AES-256-GCM"
ORIGINAL_MANIFEST = "manifest.original.enc"
_NONCE = 12
_AAD = b"modelyard-aes-256-gcm-v1\x00"


@dataclass(frozen=True)
class EncryptionKey:
    """A 256-bit key and its id; its repr and str show the id only."""

    key_id: str
    _material: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"encryption key {self.key_id}"


def _key_from_text(data: bytes, source: str) -> EncryptionKey:
    try:
        material = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        material = b""
    if len(material) != 32:
        raise ArtifactError(
            f"{source} does not hold an AES-256 key (expected 32 bytes as base64, 44 characters); "
            "create one with `modelyard encryption-keys create FILE`"
        )
    return EncryptionKey(fingerprint(b"aes-256-gcm", material), material)


def generate_key_file(path: str | Path, overwrite: bool = False) -> EncryptionKey:
    """Write a new random key (base64, mode 0600) to `path` and return it.

    Raises ArtifactError when `path` exists and `overwrite` is false.
    """
    material = os.urandom(32)
    write_secret(Path(path), base64.b64encode(material) + b"\n", overwrite)
    return EncryptionKey(fingerprint(b"aes-256-gcm", material), material)


def read_key(key_file: str | Path | None = None) -> EncryptionKey:
    """Return the key from `key_file`, else `MODELYARD_ENCRYPTION_KEY_FILE`, else `MODELYARD_ENCRYPTION_KEY`.

    Raises ArtifactError when none is set or the source does not hold a 32-byte base64 key;
    messages name the source, never its content.
    """
    if key_file is None and os.environ.get(KEY_FILE_ENV):
        key_file = os.environ[KEY_FILE_ENV]
    if key_file is not None:
        return _key_from_text(
            read_key_file(Path(key_file), "encryption key"), f"key file {key_file}"
        )
    if os.environ.get(KEY_ENV):
        return _key_from_text(os.environ[KEY_ENV].encode("utf-8"), f"${KEY_ENV}")
    raise ArtifactError(
        f"no encryption key: pass --key-file FILE or set {KEY_FILE_ENV} or {KEY_ENV}"
    )


def is_encrypted(manifest: dict[str, Any]) -> bool:
    """Return True when a manifest describes an encrypted artifact."""
    return isinstance(manifest.get("encryption"), dict)


def _aead(key: EncryptionKey) -> Any:
    require_cryptography()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key._material)


def seal(key: EncryptionKey, name: str, data: bytes) -> bytes:
    """Return `data` encrypted and authenticated together with its artifact-relative `name`."""
    nonce = os.urandom(_NONCE)
    return ENCRYPTED_MAGIC + nonce + _aead(key).encrypt(nonce, data, _AAD + name.encode("utf-8"))


def open_sealed(key: EncryptionKey, name: str, blob: bytes, root: Path, expected_id: str) -> bytes:
    """Return the plaintext of a sealed file; raise ArtifactError when the key or data is wrong."""
    aead = _aead(key)
    from cryptography.exceptions import InvalidTag

    if not blob.startswith(ENCRYPTED_MAGIC) or len(blob) < len(ENCRYPTED_MAGIC) + _NONCE + 16:
        raise ArtifactError(f"{root}: '{name}' is not an encrypted modelyard file")
    start = len(ENCRYPTED_MAGIC)
    nonce, body = blob[start : start + _NONCE], blob[start + _NONCE :]
    try:
        return bytes(aead.decrypt(nonce, body, _AAD + name.encode("utf-8")))
    except InvalidTag:
        hint = (
            ""
            if key.key_id == expected_id
            else f" (it was encrypted with key {expected_id}, not {key.key_id})"
        )
        raise ArtifactError(
            f"{root}: '{name}' cannot be decrypted: wrong key{hint}, or the file was altered"
        ) from None


def _read(root: Path, name: str) -> bytes:
    with open_regular(root, root / name) as handle:
        return handle.read()


def encrypt_artifact(
    source: str | Path, output: str | Path | None = None, key: EncryptionKey | None = None
) -> Path:
    """Write an encrypted copy of a verified artifact to `output` (default `<source>-encrypted`).

    Returns the output directory. Raises ArtifactError when the source fails verification,
    is already encrypted, or the output exists.
    """
    src = Path(source)
    dst = Path(output) if output else src.with_name(f"{src.name}-encrypted")
    key = key or read_key()
    manifest = verify_manifest(src)
    if is_encrypted(manifest):
        raise ArtifactError(f"{src} is already encrypted")
    if ORIGINAL_MANIFEST in manifest["files"]:
        raise ArtifactError(
            f"{src} holds a file named {ORIGINAL_MANIFEST}, a name encryption needs"
        )
    if dst.exists():
        raise ArtifactError(f"{dst} already exists; choose another --output or remove it")
    with _staging(dst) as tmp:
        for name in manifest["files"]:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(seal(key, name, _read(src, name)))
        (tmp / ORIGINAL_MANIFEST).write_bytes(seal(key, ORIGINAL_MANIFEST, _read(src, MANIFEST)))
        atomic_write_json(tmp / MANIFEST, _outer_manifest(tmp, manifest, key))
    return dst


def _outer_manifest(tmp: Path, inner: dict[str, Any], key: EncryptionKey) -> dict[str, Any]:
    from modelyard._version import __version__

    names = [*inner["files"], ORIGINAL_MANIFEST]
    return {
        "format_version": FORMAT_VERSION,
        "kind": inner.get("kind", "classifier"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "modelyard_version": __version__,
        "parent": inner.get("parent"),
        "encryption": {"algorithm": ALGORITHM, "key_id": key.key_id, "manifest": ORIGINAL_MANIFEST},
        "files": {
            n: {"sha256": sha256_file(tmp / n), "size": (tmp / n).stat().st_size} for n in names
        },
    }


class _staging:
    """A hidden temporary folder beside `final` that becomes `final` only if the body succeeds."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")

    def __enter__(self) -> Path:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            replace_dir(self.tmp, self.final)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass(frozen=True)
class Decrypted:
    """An encrypted artifact opened in memory: its original manifest and files."""

    manifest: dict[str, Any]
    manifest_bytes: bytes
    files: dict[str, bytes]


def decrypt_members(root: Path, manifest: dict[str, Any], key: EncryptionKey) -> Decrypted:
    """Decrypt a verified encrypted artifact in memory and return its original manifest and files.

    Every plaintext is checked against the original manifest's hashes and for hostile content
    (pickles, bad safetensors headers). Raises ArtifactError.
    """
    expected = str(manifest["encryption"].get("key_id"))
    inner_blob = open_sealed(key, ORIGINAL_MANIFEST, _read(root, ORIGINAL_MANIFEST), root, expected)
    try:
        inner = json.loads(inner_blob.decode("utf-8"))
        names = list(inner["files"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise ArtifactError(f"{root}: its encrypted original manifest is corrupt") from None
    if set(names) | {ORIGINAL_MANIFEST} != set(manifest["files"]):
        raise ArtifactError(f"{root}: its encrypted files do not match its original manifest")
    files = {name: open_sealed(key, name, _read(root, name), root, expected) for name in names}
    for name, data in files.items():
        _check_plain(root, name, data, inner["files"][name])
    return Decrypted(inner, inner_blob, files)


def _check_plain(root: Path, name: str, data: bytes, entry: Any) -> None:
    if not isinstance(entry, dict) or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ArtifactError(f"{root}: decrypted '{name}' does not match its original manifest")
    check_bytes(root, name, data)


def decrypt_artifact(
    source: str | Path, output: str | Path | None = None, key: EncryptionKey | None = None
) -> Path:
    """Write the decrypted original of an encrypted artifact to `output` (default `<source>-decrypted`).

    The original manifest (and its signatures) come back byte for byte. Returns the output
    directory. Raises ArtifactError for a wrong key, an altered file, a plain artifact or an
    existing output.
    """
    src = Path(source)
    dst = Path(output) if output else src.with_name(f"{src.name}-decrypted")
    key = key or read_key()
    manifest = verify_manifest(src)
    if not is_encrypted(manifest):
        raise ArtifactError(f"{src} is not encrypted")
    if dst.exists():
        raise ArtifactError(f"{dst} already exists; choose another --output or remove it")
    opened = decrypt_members(src, manifest, key)
    with _staging(dst) as tmp:
        for name, data in sorted(opened.files.items()):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        (tmp / MANIFEST).write_bytes(opened.manifest_bytes)
        verify_manifest(tmp)
    return dst
