"""Key files on disk: written owner-only and atomically; read without ever echoing a byte.

Error messages about a key name its source (a path or an environment variable) and what
was expected, never its content, so a key cannot leak into logs or reports.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from modelyard.errors import ArtifactError
from modelyard.fsutil import fsync_dir
from modelyard.plugins import require

EXTRA = "security"
MAX_KEY_FILE_BYTES = 64 * 1024


def require_cryptography() -> None:
    """Raise MissingExtraError with the install hint when `cryptography` is not installed."""
    require("cryptography", extra=EXTRA)


def fingerprint(label: bytes, material: bytes) -> str:
    """Return a 16-hex-digit id of key material (a domain-separated SHA-256 prefix)."""
    return hashlib.sha256(label + b"\x00" + material).hexdigest()[:16]


def write_secret(path: Path, data: bytes, overwrite: bool = False) -> Path:
    """Write `data` to `path` with mode 0600 via a temporary file and rename; return `path`.

    Raises ArtifactError when `path` exists and `overwrite` is false.
    """
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path} already exists; pass --overwrite to replace that key")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def read_key_file(path: Path, what: str) -> bytes:
    """Return the bytes of a key file; raise ArtifactError (naming only the path) if unreadable."""
    if not path.is_file():
        raise ArtifactError(f"{what} file not found: {path}")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise ArtifactError(f"{path} is too large to be a {what} file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {what} file {path}: {exc.strerror}") from None
