"""API keys: created once, stored only as salted scrypt hashes, compared in constant time.

A key looks like `myd_<id>.<secret>`. The id (not secret) finds the stored record; the
secret is hashed with that record's salt and compared with `hmac.compare_digest`. The
key file holds no secret, and the plain key is shown only when it is created.

scrypt is slow on purpose, so a server remembers keys it has already verified, under a
keyed hash that lives only in its memory, and forgets them when the key file changes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from modelyard.errors import ModelyardError
from modelyard.fsutil import atomic_write_json
from modelyard.home import modelyard_home

Scope = Literal["predict", "admin"]
SCOPES: tuple[Scope, ...] = ("predict", "admin")
PREFIX = "myd_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_FORMAT_VERSION = 1
_CACHE_LIMIT = 4096


class ApiKeyError(ModelyardError):
    """The key file is unreadable, or a key id or scope is unknown."""


def default_keys_path() -> Path:
    """Return the key file used when none is given: <modelyard home>/keys.json."""
    return modelyard_home() / "keys.json"


@dataclass(frozen=True)
class KeyInfo:
    """What is known about a key without its secret: id, scope, name and creation time."""

    id: str
    scope: Scope
    name: str
    created: str

    def allows(self, needed: Scope) -> bool:
        """Return True when this key's scope covers `needed` (admin covers predict)."""
        return self.scope == "admin" or needed == "predict"


def _hash(secret: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, dklen=32, maxmem=64 << 20, **params)


def split_key(key: str) -> tuple[str, str] | None:
    """Return (id, secret) of a well-formed key, or None."""
    if not key.startswith(PREFIX) or "." not in key:
        return None
    key_id, _, secret = key[len(PREFIX) :].partition(".")
    if not key_id or not secret or len(key) > 256:
        return None
    return key_id, secret


class KeyStore:
    """The key file at `path` (default: $MODELYARD_HOME/keys.json or ~/.modelyard/keys.json)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_keys_path()

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = data["keys"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ApiKeyError(
                f"the key file {self.path} is corrupt ({exc}); restore it or delete it and create new keys"
            ) from None
        return [r for r in records if isinstance(r, dict)]

    def _write(self, records: list[dict[str, Any]]) -> None:
        atomic_write_json(self.path, {"format_version": _FORMAT_VERSION, "keys": records})
        os.chmod(self.path, 0o600)

    def create(self, scope: str, name: str = "") -> tuple[KeyInfo, str]:
        """Create a key with `scope`; return its info and the plain key (shown only now).

        Raises ApiKeyError for an unknown scope.
        """
        if scope not in SCOPES:
            raise ApiKeyError(f"unknown scope '{scope}'; use one of: {', '.join(SCOPES)}")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), os.urandom(16)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        info = KeyInfo(key_id, cast(Scope, scope), name, created)
        record = {**asdict(info), "salt": salt.hex(), "hash": _hash(secret, salt, _SCRYPT).hex()}
        record["kdf"] = {"name": "scrypt", **_SCRYPT}
        self._write([*self._read(), record])
        return info, f"{PREFIX}{key_id}.{secret}"

    def records(self) -> list[dict[str, Any]]:
        """Return the stored key records (id, scope, name, salt, hash; never a secret)."""
        return self._read()

    def list(self) -> list[KeyInfo]:
        """Return the info of every stored key, oldest first."""
        return [_info(r) for r in self._read()]

    def revoke(self, key_id: str) -> KeyInfo:
        """Delete the key `key_id` and return its info; raise ApiKeyError if there is none."""
        records = self._read()
        keep = [r for r in records if r.get("id") != key_id]
        if len(keep) == len(records):
            known = ", ".join(str(r.get("id")) for r in records) or "(none)"
            raise ApiKeyError(f"no key with id '{key_id}'; ids: {known}")
        self._write(keep)
        return next(_info(r) for r in records if r.get("id") == key_id)

    def verify(self, key: str) -> KeyInfo | None:
        """Return the info of `key` if it is a stored key, else None (constant-time comparison)."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        for record in self._read():
            if hmac.compare_digest(str(record.get("id", "")), key_id):
                return _check_record(record, secret)
        return None


def _info(record: dict[str, Any]) -> KeyInfo:
    return KeyInfo(
        str(record["id"]), record["scope"], str(record.get("name", "")), str(record["created"])
    )


def _check_record(record: dict[str, Any], secret: str) -> KeyInfo | None:
    kdf = record.get("kdf", {})
    params = {k: int(kdf.get(k, _SCRYPT[k])) for k in ("n", "r", "p")}
    expected = bytes.fromhex(record["hash"])
    actual = _hash(secret, bytes.fromhex(record["salt"]), params)
    return _info(record) if hmac.compare_digest(actual, expected) else None


class Authenticator:
    """Verifies keys for a server, caching successes until the key file changes."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._pepper = secrets.token_bytes(32)
        self._cache: dict[bytes, KeyInfo] = {}
        self._stamp: tuple[float, int] | None = self._file_stamp()
        self._records: dict[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.store.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def has_keys(self) -> bool:
        """Return True when the key file holds at least one key."""
        return bool(self.store.list())

    def _refresh(self) -> None:
        # called with the lock held: a changed key file drops cached keys and records
        stamp = self._file_stamp()
        if stamp != self._stamp or self._records is None:
            self._cache.clear()
            self._stamp = stamp
            self._records = {str(r.get("id", "")): r for r in self.store.records()}

    def known_id(self, key: str) -> str | None:
        """Return the id of `key` when it is well formed and names a stored key, else None.

        Costs no hashing: a key whose id is unknown can be refused at once. Key ids are not
        secret (they are listed and logged); only the secret is compared in constant time.
        """
        parts = split_key(key)
        if parts is None:
            return None
        with self._lock:
            self._refresh()
            assert self._records is not None
            return parts[0] if parts[0] in self._records else None

    def _digest(self, key: str) -> bytes:
        return hmac.new(self._pepper, key.encode("utf-8", "replace"), hashlib.sha256).digest()

    def cached(self, key: str) -> KeyInfo | None:
        """Return the info of `key` if it was verified since the key file last changed, else None."""
        with self._lock:
            self._refresh()
            return self._cache.get(self._digest(key))

    def _check(self, key: str) -> KeyInfo | None:
        parts = split_key(key)
        if parts is None:
            return None
        with self._lock:
            self._refresh()
            assert self._records is not None
            record = self._records.get(parts[0])
        return _check_record(record, parts[1]) if record is not None else None

    def verify(self, key: str) -> KeyInfo | None:
        """Return the info of `key` if it is valid now (a revoked key stops working), else None."""
        info = self.cached(key) or self._check(key)
        if info is not None:
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[self._digest(key)] = info
        return info
