"""The file-based registry: versions, aliases, atomic pushes, clear errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modelyard.errors import ArtifactError
from modelyard.registry.manifest import verify_manifest, write_manifest
from modelyard.registry.store import (
    ModelRef,
    ModelStore,
    RegistryError,
    default_registry_root,
    is_number,
    parse_ref,
)


def make_artifact(root: Path, payload: bytes = b"weights") -> Path:
    root.mkdir(parents=True)
    (root / "model.safetensors").write_bytes(payload * 10)
    (root / "labels.json").write_text('["a", "b"]', encoding="utf-8")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "step").write_text("not part of the artifact", encoding="utf-8")
    write_manifest(root)
    return root


@pytest.fixture()
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "registry")


def test_push_copies_a_verified_artifact_as_numbered_versions(
    tmp_path: Path, store: ModelStore
) -> None:
    first = store.push(make_artifact(tmp_path / "a", b"one"), "support")
    second = store.push(make_artifact(tmp_path / "b", b"two"), "support")
    assert (first.version, second.version) == (1, 2)
    assert verify_manifest(second.path)["files"].keys() == {"model.safetensors", "labels.json"}
    assert not (second.path / "checkpoints").exists()
    assert (first.path / "model.safetensors").read_bytes() == b"one" * 10
    assert store.versions("support") == [1, 2] and store.names() == ["support"]
    assert not [p for p in (store.root / "support").iterdir() if p.name.startswith(".")]


def test_refs_resolve_to_versions_aliases_and_latest(tmp_path: Path, store: ModelStore) -> None:
    for i in range(3):
        store.push(make_artifact(tmp_path / str(i), str(i).encode()), "m")
    store.set_alias("m:2", "production")
    assert store.resolve("m").version == 3
    assert store.resolve("m:latest").version == 3
    assert store.resolve("m:1").version == 1
    assert store.resolve("m:production").version == 2
    store.set_alias("m:3", "production")  # promotion: the alias moves by an atomic rename
    assert store.resolve("m:production").version == 3
    assert store.aliases("m") == {"production": 3}
    assert not [p for p in (store.root / "m" / "aliases").iterdir() if p.name != "production"]


def test_parse_ref_normalises_and_rejects_bad_names() -> None:
    assert parse_ref("m:007") == ModelRef("m", "7")
    assert parse_ref("m") == ModelRef("m", "latest")
    for bad in ("", "Upper", "a/b", "m:0", "m:bad/alias", "../x"):
        with pytest.raises(RegistryError):
            parse_ref(bad)


def test_unknown_model_version_and_alias_say_what_exists(tmp_path: Path, store: ModelStore) -> None:
    store.push(make_artifact(tmp_path / "a"), "m")
    with pytest.raises(RegistryError, match=r"no model 'other'.*models: m.*registry push"):
        store.resolve("other")
    with pytest.raises(RegistryError, match="no such version; m has versions 1"):
        store.resolve("m:9")
    with pytest.raises(RegistryError, match=r"no such alias.*registry alias m:VERSION staging"):
        store.resolve("m:staging")
    with pytest.raises(RegistryError, match="no such version"):
        store.set_alias("m:4", "production")


def test_reserved_alias_names_are_refused(tmp_path: Path, store: ModelStore) -> None:
    store.push(make_artifact(tmp_path / "a"), "m")
    for alias in ("latest", "12"):
        with pytest.raises(RegistryError, match="reserved"):
            store.set_alias("m:1", alias)


def test_push_refuses_a_changed_artifact_and_leaves_nothing(
    tmp_path: Path, store: ModelStore
) -> None:
    run = make_artifact(tmp_path / "a")
    (run / "labels.json").write_text('["x"]', encoding="utf-8")
    with pytest.raises(ArtifactError, match="changed"):
        store.push(run, "m")
    assert store.versions("m") == [] and not (store.root / "m").exists()


def test_push_of_an_unfinished_run_is_refused(tmp_path: Path, store: ModelStore) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(ArtifactError, match="not a finished modelyard artifact"):
        store.push(tmp_path / "run", "m")


def test_concurrent_pushes_get_distinct_versions(tmp_path: Path, store: ModelStore) -> None:
    runs = [make_artifact(tmp_path / str(i), str(i).encode()) for i in range(4)]
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda r=r: results.append(store.push(r, "m").version))
        for r in runs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [1, 2, 3, 4]
    contents = {(store.resolve(f"m:{v}").path / "model.safetensors").read_bytes() for v in results}
    assert len(contents) == 4


def test_default_root_follows_modelyard_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    assert default_registry_root() == tmp_path / "home" / "registry"
    assert ModelStore().root == tmp_path / "home" / "registry"
    monkeypatch.delenv("MODELYARD_HOME")
    assert default_registry_root() == Path.home() / ".modelyard" / "registry"


@pytest.mark.parametrize("text", ["²", "٣", "１", "-1", " 7", "1e3", "", "9" * 19])
def test_only_plain_ascii_digits_are_version_numbers(text: str) -> None:
    assert not is_number(text)


@pytest.mark.parametrize("tag", ["²", "٣", "１", "-1", " 7"])
def test_unicode_digits_in_a_tag_are_a_registry_error_not_a_crash(tag: str) -> None:
    with pytest.raises(RegistryError):
        parse_ref(f"model:{tag}")


def test_plain_numbers_are_versions() -> None:
    assert is_number("12") and parse_ref("model:007").tag == "7"
