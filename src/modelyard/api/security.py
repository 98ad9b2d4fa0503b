"""Keys and protected artifacts: API keys of the HTTP server, Ed25519 signing keys and
signatures, AES-256-GCM encryption at rest. Nothing here returns key material except the
new API key that `create_api_key` shows once."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def create_api_key(
    scope: str = "predict", name: str = "", keys_file: str | Path | None = None
) -> tuple[Any, str]:
    """Create an API key for the HTTP server; return (its stored info, the key itself).

    Only the key's salted hash is stored: the key is returned once. Raises ModelyardError for
    an unknown scope.
    """
    from modelyard.serve.auth import KeyStore

    info, key = KeyStore(_path(keys_file)).create(scope, name)
    return info, key


def list_api_keys(keys_file: str | Path | None = None) -> list[Any]:
    """Return the stored API keys' ids, scopes, names and creation times (never the keys)."""
    from modelyard.serve.auth import KeyStore

    return list(KeyStore(_path(keys_file)).list())


def revoke_api_key(key_id: str, keys_file: str | Path | None = None) -> Any:
    """Delete an API key; return its info. Raises ModelyardError for an unknown id."""
    from modelyard.serve.auth import KeyStore

    return KeyStore(_path(keys_file)).revoke(key_id)


def create_signing_key(private_key: str | Path, overwrite: bool = False) -> dict[str, str]:
    """Write an Ed25519 private key (mode 0600) and its public half (<name>.pub); return the
    two paths and the key id. Raises ArtifactError when the file exists and not `overwrite`."""
    from modelyard.registry.signing import generate_signing_key

    private, public, key_id = generate_signing_key(private_key, overwrite)
    return {"private_key": str(private), "public_key": str(public), "key_id": key_id}


def create_encryption_key(key_file: str | Path, overwrite: bool = False) -> dict[str, str]:
    """Write an AES-256 key file (mode 0600); return its path and key id."""
    from modelyard.registry.crypto import generate_key_file

    key = generate_key_file(key_file, overwrite)
    return {"key_file": str(key_file), "key_id": key.key_id}


def sign(run: str | Path, key: str | Path) -> dict[str, Any]:
    """Verify an artifact and sign its manifest with the private `key`; return the signature
    record (key id, algorithm, time)."""
    from modelyard.registry.signing import sign_artifact

    return sign_artifact(run, key)


def verify(run: str | Path, trusted_key: list[Path] | None = None) -> dict[str, Any]:
    """Check every file's hash and a signature by a trusted key (files or folders of .pub;
    default: $MODELYARD_TRUSTED_KEYS); return what matched. Raises SignatureError."""
    from modelyard.registry.signing import SignatureError, trusted_keys_from_env, verify_artifact

    keys = trusted_key or trusted_keys_from_env()
    if not keys:
        raise SignatureError(
            "give --trusted-key FILE (or set MODELYARD_TRUSTED_KEYS) to verify against"
        )
    return verify_artifact(run, keys)


def encrypt(
    run: str | Path, output: str | Path | None = None, key_file: str | Path | None = None
) -> tuple[Path, str]:
    """Write an AES-256-GCM encrypted copy of an artifact (default: RUN-encrypted); return its
    path and the key id. The key comes from `key_file`, else the environment."""
    from modelyard.registry.crypto import encrypt_artifact, read_key

    key = read_key(_path(key_file))
    return encrypt_artifact(run, output, key), key.key_id


def decrypt(
    run: str | Path, output: str | Path | None = None, key_file: str | Path | None = None
) -> Path:
    """Write the decrypted original of an encrypted artifact (default: RUN-decrypted)."""
    from modelyard.registry.crypto import decrypt_artifact, read_key

    return decrypt_artifact(run, output, read_key(_path(key_file)))


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
