"""`manifest.json`: every artifact file's SHA-256 and size, the parent and the code version.

The manifest is written last, so a directory without one is not a finished artifact;
loading re-hashes every listed file and refuses any change.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError
from modelyard.fsutil import atomic_write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_SKIP_DIRS = {"checkpoints"}


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_files(root: Path) -> list[Path]:
    """Return the files of an artifact directory (relative), leaving out checkpoints and temp files."""
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in _SKIP_DIRS or rel.name.startswith(".") or rel.name == MANIFEST:
            continue
        if path.is_file():
            files.append(rel)
    return files


def write_manifest(
    root: Path,
    kind: str = "classifier",
    parent: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hash every artifact file under `root`, write `manifest.json` atomically, and return it."""
    from modelyard import __version__

    files = {
        rel.as_posix(): {"sha256": sha256_file(root / rel), "size": (root / rel).stat().st_size}
        for rel in artifact_files(root)
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "modelyard_version": __version__,
        "parent": parent,
        "files": files,
        **(extra or {}),
    }
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """Return the parsed manifest of `root`; raise ArtifactError when missing or malformed."""
    path = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(
            f"{root} is not a directory; give a run directory written by `modelyard train`"
        )
    if not path.is_file():
        raise ArtifactError(
            f"{root} has no {MANIFEST}: it is not a finished modelyard artifact "
            "(an interrupted run can be continued with `modelyard train RECIPE --resume`)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{path} is corrupt: no 'files' table")
    return manifest


def _safe_member(root: Path, name: str) -> Path:
    real_root = root.resolve()
    candidate = (root / name).resolve()
    if os.path.isabs(name) or not candidate.is_relative_to(real_root):
        raise ArtifactError(f"{root / MANIFEST} lists '{name}', which points outside the artifact")
    return candidate


def verify_manifest(root: Path) -> dict[str, Any]:
    """Re-hash every file listed in the manifest; return the manifest if all match.

    Raises ArtifactError naming every missing, resized or changed file.
    """
    manifest = read_manifest(root)
    problems = []
    for name, entry in manifest["files"].items():
        path = _safe_member(root, name)
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif path.stat().st_size != entry.get("size"):
            problems.append(
                f"changed size: {name} ({path.stat().st_size} bytes, manifest says {entry.get('size')})"
            )
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(f"changed content: {name} (SHA-256 differs from the manifest)")
    if problems:
        raise ArtifactError(
            f"{root} does not match its manifest, refusing to load:\n  - " + "\n  - ".join(problems)
        )
    return manifest
