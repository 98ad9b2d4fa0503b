"""Ed25519 signatures over an artifact's manifest, through the `cryptography` library.

The manifest lists every file's SHA-256 and size, so a signature over it covers the whole
artifact. Signatures live inside `manifest.json` under `signatures`, so every copy of the
manifest (a registry push, an encrypted copy) carries them; the signed message is a domain
tag plus the canonical JSON of the manifest without that key. Trusted public keys are PEM
files (`*.pub`), given explicitly or through `MODELYARD_TRUSTED_KEYS`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError
from modelyard.fsutil import atomic_write_json
from modelyard.registry.keyfiles import (
    fingerprint,
    read_key_file,
    require_cryptography,
    write_secret,
)
from modelyard.registry.manifest import MANIFEST, verify_manifest

SIGNATURES = "signatures"
TRUSTED_KEYS_ENV = "MODELYARD_TRUSTED_KEYS"
ALGORITHM = "ed25519"
_DOMAIN = b"modelyard-manifest-signature-v1\x00"


class SignatureError(ArtifactError):
    """An artifact lacks a valid signature by a trusted key, or a key file is unusable."""


def canonical_message(manifest: Mapping[str, Any]) -> bytes:
    """Return the bytes a signature covers: the domain tag and the manifest's canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURES}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return _DOMAIN + text.encode("utf-8")


def public_key_id(public_key: Any) -> str:
    """Return the 16-hex-digit id of an Ed25519 public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return fingerprint(b"ed25519-public", raw)


def public_key_path(private_path: Path) -> Path:
    """Return where the public half of a private key file goes: the same name with `.pub`."""
    return private_path.with_suffix(".pub")


def generate_signing_key(
    private_path: str | Path, overwrite: bool = False
) -> tuple[Path, Path, str]:
    """Create an Ed25519 key pair: `private_path` (PEM, mode 0600) and its `.pub` file.

    Returns (private path, public path, key id). Raises ArtifactError when a file exists and
    `overwrite` is false, MissingExtraError without the `cryptography` package.
    """
    require_cryptography()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(private_path)
    public_path = public_key_path(private_path)
    if public_path == private_path:
        raise ArtifactError(f"name the private key file something other than {private_path.name}")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if public_path.exists() and not overwrite:
        raise ArtifactError(f"{public_path} already exists; pass --overwrite to replace that key")
    write_secret(private_path, pem, overwrite)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_secret(public_path, public, overwrite=True)
    os.chmod(public_path, 0o644)
    return private_path, public_path, public_key_id(key.public_key())


def load_private_key(path: str | Path) -> Any:
    """Return the Ed25519 private key in a PEM file; raise SignatureError if it is not one."""
    require_cryptography()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = read_key_file(Path(path), "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(
            f"{path} is not an unencrypted Ed25519 private key in PEM form "
            "(create one with `modelyard signing-keys create FILE`)"
        )
    return key


def _load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(read_key_file(path, "public key"))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path} is not an Ed25519 public key in PEM form (a .pub file)")
    return key


def load_trusted_keys(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Return {key id: public key} from `.pub` files and folders of them.

    Raises SignatureError for a missing path, an unusable key file or a folder with no keys.
    """
    require_cryptography()
    keys: dict[str, Any] = {}
    for item in map(Path, paths):
        if item.is_dir():
            files = sorted(item.glob("*.pub"))
            if not files:
                raise SignatureError(f"trusted-key folder {item} holds no *.pub files")
        elif item.is_file():
            files = [item]
        else:
            raise SignatureError(f"trusted key not found: {item}")
        for file in files:
            key = _load_public_key(file)
            keys[public_key_id(key)] = key
    return keys


def sign_artifact(root: str | Path, private_key: str | Path) -> dict[str, Any]:
    """Verify the artifact, then add (or renew) this key's signature in its manifest.

    Returns the signature record (key id, algorithm, signature, time). Raises ArtifactError
    when the artifact fails verification (a changed artifact is never signed) and
    SignatureError for an unusable key file.
    """
    root = Path(root)
    key = load_private_key(private_key)
    manifest = verify_manifest(root)
    record = {
        "key_id": public_key_id(key.public_key()),
        "algorithm": ALGORITHM,
        "signature": base64.b64encode(key.sign(canonical_message(manifest))).decode("ascii"),
        "signed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    others = [s for s in _signatures(manifest) if s.get("key_id") != record["key_id"]]
    atomic_write_json(root / MANIFEST, {**manifest, SIGNATURES: [*others, record]})
    return record


def _signatures(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    sigs = manifest.get(SIGNATURES, [])
    return [s for s in sigs if isinstance(s, dict)] if isinstance(sigs, list) else []


def _valid(public_key: Any, record: Mapping[str, Any], message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        signature = base64.b64decode(str(record.get("signature", "")), validate=True)
        public_key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def check_signature(root: Path, manifest: Mapping[str, Any], trusted: Mapping[str, Any]) -> str:
    """Return the id of a trusted key whose signature over `manifest` is valid.

    Raises SignatureError saying whether the artifact is unsigned, signed only by untrusted
    keys, or carries a trusted key's signature that no longer matches (changed after signing).
    """
    sigs = [s for s in _signatures(manifest) if s.get("algorithm") == ALGORITHM]
    message = canonical_message(manifest)
    known = [s for s in sigs if s.get("key_id") in trusted]
    for record in known:
        if _valid(trusted[record["key_id"]], record, message):
            return str(record["key_id"])
    if known:
        raise SignatureError(
            f"{root}: the signature by trusted key {known[0]['key_id']} does not match the manifest "
            "(the artifact changed after it was signed); refusing to load"
        )
    if not sigs:
        raise SignatureError(
            f"{root} is not signed, and a signature by a trusted key is required; sign it with "
            "`modelyard registry sign RUN --key FILE`"
        )
    ids = ", ".join(str(s.get("key_id")) for s in sigs)
    raise SignatureError(
        f"{root} is signed only by keys that are not trusted here ({ids}); trusted: "
        f"{', '.join(sorted(trusted)) or 'none'}. Add the signer's .pub file to the trusted keys."
    )


def verify_artifact(root: str | Path, trusted_keys: Sequence[str | Path]) -> dict[str, Any]:
    """Verify every hash and a signature by one of `trusted_keys`; return what was checked.

    Returns {"path", "key_id", "files"}. Raises ArtifactError or SignatureError.
    """
    root = Path(root)
    keys = load_trusted_keys(trusted_keys)
    manifest = verify_manifest(root)
    return {
        "path": str(root),
        "key_id": check_signature(root, manifest, keys),
        "files": len(manifest["files"]),
    }


def trusted_keys_from_env() -> list[Path]:
    """Return the trusted-key paths in `MODELYARD_TRUSTED_KEYS` (os.pathsep-separated)."""
    raw = os.environ.get(TRUSTED_KEYS_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def enforce_trust(
    root: Path,
    manifest: Mapping[str, Any],
    trusted_keys: Sequence[str | Path] | None,
    require_signature: bool,
) -> str | None:
    """Check the signature a load asks for; return the signing key id, or None when not asked.

    A signature is required when `trusted_keys` are given, `require_signature` is set, or
    `MODELYARD_TRUSTED_KEYS` names keys. Raises SignatureError when it is required but there
    are no trusted keys, or no valid signature by one of them.
    """
    paths = list(trusted_keys) if trusted_keys else trusted_keys_from_env()
    if not paths and not require_signature:
        return None
    if not paths:
        raise SignatureError(
            f"a signature is required to load {root}, but no trusted keys are given: pass "
            f"trusted_keys (--trusted-key FILE) or set {TRUSTED_KEYS_ENV}"
        )
    return check_signature(root, manifest, load_trusted_keys(paths))
