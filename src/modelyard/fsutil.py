"""Atomic file writes: a crash never leaves a half-written file under its final name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk so a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush the contents of an existing file to disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file, fsync and rename; return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; return `path`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically; return `path`."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def replace_dir(tmp: Path, final: Path) -> Path:
    """Move the finished directory `tmp` to `final`, replacing an older one; return `final`."""
    for child in tmp.rglob("*"):
        if child.is_file():
            fsync_file(child)
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)
    return final
