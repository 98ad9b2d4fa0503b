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
from modelyard.registry.safety import (
    MAX_MANIFEST_BYTES,
    check_member_name,
    open_regular,
    real_root,
    scan_tree,
)

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
    from modelyard._version import __version__

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


def relative_parent(parent: Path, root: Path) -> str:
    """Return `parent` as a path relative to the artifact folder `root` (POSIX separators).

    Recorded so, an artifact names its parent wherever the two folders move together, and
    the manifest does not leak the absolute path of the machine that wrote it.
    """
    return Path(os.path.relpath(parent.resolve(), root.resolve())).as_posix()


def parent_of(root: Path, manifest: dict[str, Any]) -> Path | None:
    """Return the folder of the parent run that `manifest` (of the artifact at `root`) names.

    Relative parents resolve against `root`; artifacts written before parents were relative
    hold an absolute path, returned as it is. None when the manifest names no parent.
    """
    parent = manifest.get("parent")
    if not isinstance(parent, str) or not parent:
        return None
    return (Path(root) / parent).resolve()


def read_manifest(root: Path) -> dict[str, Any]:
    """Return the parsed manifest of `root`; raise ArtifactError when missing or malformed."""
    path = real_root(root) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{root} has no {MANIFEST}: it is not a finished modelyard artifact "
            "(an interrupted run can be continued with `modelyard train RECIPE --resume`)"
        )
    with open_regular(root, path) as handle:
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ArtifactError(
            f"{path} is larger than {MAX_MANIFEST_BYTES} bytes; refusing to parse it"
        )
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is corrupt: {exc}") from None
    except RecursionError:
        raise ArtifactError(
            f"{path} is nested too deeply to be a manifest; refusing to load this artifact"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{path} is corrupt: no 'files' table")
    return manifest


def _entry_problem(name: str, entry: Any) -> str | None:
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("sha256"), str)
        or not isinstance(entry.get("size"), int)
    ):
        return f"corrupt entry: {name} (needs a sha256 string and a size integer)"
    return None


def verify_manifest(root: Path) -> dict[str, Any]:
    """Re-hash every file listed in the manifest; return the manifest if all match.

    Before hashing, the artifact is checked for hostile content (`modelyard.registry.safety`):
    names or links leading outside it, special files, unlisted files beside the model files,
    pickled data under any name, malformed safetensors headers.
    Raises ArtifactError naming every missing, resized or changed file, or the hostile one.
    """
    manifest = read_manifest(root)
    paths = {name: check_member_name(root, name) for name in manifest["files"]}
    scan_tree(root, set(paths), {MANIFEST})
    problems = []
    for name, entry in manifest["files"].items():
        path = paths[name]
        if (bad := _entry_problem(name, entry)) is not None:
            problems.append(bad)
        elif not path.is_file():
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
