from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.errors import ArtifactError
from modelyard.registry.manifest import (
    parent_of,
    relative_parent,
    verify_manifest,
    write_manifest,
)


def make_artifact(root: Path) -> Path:
    root.mkdir()
    (root / "model.safetensors").write_bytes(b"weights" * 10)
    (root / "labels.json").write_text('["a", "b"]', encoding="utf-8")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "x").write_text("ignored", encoding="utf-8")
    write_manifest(root, parent="abc")
    return root


def test_manifest_lists_files_with_hash_and_size(tmp_path: Path) -> None:
    root = make_artifact(tmp_path / "run")
    manifest = json.loads((root / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.safetensors", "labels.json"}
    assert manifest["files"]["model.safetensors"]["size"] == 70
    assert len(manifest["files"]["labels.json"]["sha256"]) == 64
    assert manifest["parent"] == "abc" and manifest["modelyard_version"]
    assert verify_manifest(root)["kind"] == "classifier"


def test_changed_content_is_refused(tmp_path: Path) -> None:
    root = make_artifact(tmp_path / "run")
    (root / "labels.json").write_text('["a", "c"]', encoding="utf-8")  # same size, other bytes
    with pytest.raises(ArtifactError, match="changed content: labels.json"):
        verify_manifest(root)


def test_changed_size_and_missing_file_are_all_named(tmp_path: Path) -> None:
    root = make_artifact(tmp_path / "run")
    (root / "model.safetensors").write_bytes(b"x")
    (root / "labels.json").unlink()
    with pytest.raises(ArtifactError) as info:
        verify_manifest(root)
    assert "changed size: model.safetensors" in str(info.value)
    assert "missing: labels.json" in str(info.value)


def test_no_manifest_or_corrupt_manifest(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(ArtifactError, match="not a finished modelyard artifact"):
        verify_manifest(tmp_path / "run")
    (tmp_path / "run" / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="corrupt"):
        verify_manifest(tmp_path / "run")
    with pytest.raises(ArtifactError, match="not a directory"):
        verify_manifest(tmp_path / "nothing")


def test_manifest_entry_escaping_the_root_is_refused(tmp_path: Path) -> None:
    root = make_artifact(tmp_path / "run")
    (tmp_path / "secret").write_text("s", encoding="utf-8")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["../secret"] = {"sha256": "0" * 64, "size": 1}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match="outside the artifact"):
        verify_manifest(root)


def test_a_parent_is_recorded_relative_and_read_back_wherever_the_folders_move(
    tmp_path: Path,
) -> None:
    parent = tmp_path / "runs" / "base"
    child = tmp_path / "runs" / "base-compressed" / "int8"
    parent.mkdir(parents=True)
    child.mkdir(parents=True)
    recorded = relative_parent(parent, child)
    assert recorded == "../../base"
    moved = tmp_path / "elsewhere"
    (tmp_path / "runs").rename(moved)
    assert (
        parent_of(moved / "base-compressed" / "int8", {"parent": recorded})
        == (moved / "base").resolve()
    )


def test_an_old_absolute_parent_and_a_missing_one_still_read(tmp_path: Path) -> None:
    assert parent_of(tmp_path, {"parent": str(tmp_path / "p")}) == (tmp_path / "p").resolve()
    assert parent_of(tmp_path, {"parent": None}) is None and parent_of(tmp_path, {}) is None
