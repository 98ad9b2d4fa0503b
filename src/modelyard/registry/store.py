"""A file-based model registry: `name:version` and aliases such as `name:production`.

Layout under the registry root::

    <root>/<name>/versions/<n>/      a verified copy of an artifact (never changed again)
    <root>/<name>/aliases/<alias>    a one-line file holding a version number

A push copies the artifact into a temporary folder, verifies the copy against its
manifest and renames it to the next free version number; an alias is moved by writing a
new file and renaming it over the old one. Both renames are atomic, so a reader sees the
old state or the new one, never a half-written entry.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import ModelyardError
from modelyard.fsutil import atomic_write_text, fsync_dir
from modelyard.home import modelyard_home
from modelyard.registry.manifest import read_manifest, verify_manifest

LATEST = "latest"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_PUSH_ATTEMPTS = 100
# ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() then refuses
_NUMBER = re.compile(r"[0-9]{1,18}")


class RegistryError(ModelyardError):
    """A registry name, version or alias is malformed or does not exist."""


def default_registry_root() -> Path:
    """Return the registry root used when none is given: <modelyard home>/registry."""
    return modelyard_home() / "registry"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a model name and a tag (a version number, an alias or `latest`)."""

    name: str
    tag: str = LATEST

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class ResolvedModel:
    """A reference resolved to one stored version and the folder holding it."""

    name: str
    version: int
    path: Path

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def is_number(text: str) -> bool:
    """Return True when `text` is a plain count: 1 to 18 ASCII digits, nothing else."""
    return _NUMBER.fullmatch(text) is not None


def check_name(name: str, what: str = "model name") -> str:
    """Return `name` if it is a valid model or alias name; raise RegistryError otherwise."""
    if not _NAME.match(name):
        raise RegistryError(
            f"invalid {what} '{name}': use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_ref(ref: str) -> ModelRef:
    """Return the ModelRef of `name`, `name:<version>`, `name:<alias>` or `name:latest`.

    Raises RegistryError when the name or tag is malformed.
    """
    name, _, tag = ref.partition(":")
    check_name(name)
    if not tag:
        return ModelRef(name)
    if is_number(tag):
        if int(tag) < 1:
            raise RegistryError(f"'{ref}': versions start at 1")
        return ModelRef(name, str(int(tag)))
    return ModelRef(name, check_name(tag, "alias"))


class ModelStore:
    """The registry at `root` (default: $MODELYARD_HOME/registry or ~/.modelyard/registry)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()

    def _model_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def names(self) -> list[str]:
        """Return the names of the models that hold at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if _NAME.match(p.name) and self.versions(p.name)
        )

    def versions(self, name: str) -> list[int]:
        """Return the stored versions of `name`, ascending (empty if the model is unknown)."""
        folder = self._model_dir(name) / "versions"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if is_number(p.name))

    def aliases(self, name: str) -> dict[str, int]:
        """Return the aliases of `name` and the versions they point to."""
        folder = self._model_dir(name) / "aliases"
        if not folder.is_dir():
            return {}
        found = {}
        for path in sorted(folder.iterdir()):
            if _NAME.match(path.name):
                found[path.name] = self._read_alias(path)
        return found

    def _read_alias(self, path: Path) -> int:
        text = path.read_text(encoding="utf-8").strip()
        if not is_number(text):
            raise RegistryError(f"alias file {path} is corrupt: expected a version number")
        return int(text)

    def resolve(self, ref: str | ModelRef) -> ResolvedModel:
        """Return the stored version `ref` names.

        Raises RegistryError for an unknown model, version or alias, listing what exists.
        """
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        versions = self.versions(parsed.name)
        if not versions:
            known = ", ".join(self.names()) or "(none)"
            raise RegistryError(
                f"no model '{parsed.name}' in the registry {self.root}; models: {known}. "
                f"Add one with `modelyard registry push RUN_DIR --name {parsed.name}`"
            )
        version = self._tag_version(parsed, versions)
        return ResolvedModel(parsed.name, version, self._version_dir(parsed.name, version))

    def _tag_version(self, ref: ModelRef, versions: list[int]) -> int:
        if ref.tag == LATEST:
            return versions[-1]
        if is_number(ref.tag):
            if int(ref.tag) not in versions:
                raise RegistryError(
                    f"'{ref}': no such version; {ref.name} has versions {_listing(versions)}"
                )
            return int(ref.tag)
        alias_file = self._model_dir(ref.name) / "aliases" / ref.tag
        if not alias_file.is_file():
            known = ", ".join(self.aliases(ref.name)) or "(none)"
            raise RegistryError(
                f"'{ref}': no such alias; {ref.name} has aliases: {known}. "
                f"Set one with `modelyard registry alias {ref.name}:VERSION {ref.tag}`"
            )
        return self._read_alias(alias_file)

    def _version_dir(self, name: str, version: int) -> Path:
        return self._model_dir(name) / "versions" / str(version)

    def push(self, run_dir: str | Path, name: str) -> ResolvedModel:
        """Copy the verified artifact at `run_dir` in as the next version of `name`; return it.

        Raises ArtifactError when the artifact (or the copy) fails verification and
        RegistryError for a bad name.
        """
        source = Path(run_dir)
        verify_manifest(source)
        versions_dir = self._model_dir(name) / "versions"
        versions_dir.mkdir(parents=True, exist_ok=True)
        staging = self._model_dir(name) / f".push-{uuid.uuid4().hex}"
        try:
            self._copy_artifact(source, staging)
            version = self._claim_version(staging, versions_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ResolvedModel(name, version, versions_dir / str(version))

    def _copy_artifact(self, source: Path, staging: Path) -> None:
        manifest = read_manifest(source)
        staging.mkdir(parents=True)
        for rel in [*manifest["files"], "manifest.json"]:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, target)
        # the copy is checked too: a disk or a concurrent writer could have changed a file
        verify_manifest(staging)
        for path in staging.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())

    def _claim_version(self, staging: Path, versions_dir: Path) -> int:
        for _ in range(_MAX_PUSH_ATTEMPTS):
            taken = [int(p.name) for p in versions_dir.iterdir() if is_number(p.name)]
            version = max(taken, default=0) + 1
            try:
                # a rename onto an existing non-empty folder fails, so two pushers never share a number
                os.rename(staging, versions_dir / str(version))
            except OSError:
                continue
            fsync_dir(versions_dir)
            return version
        raise RegistryError(f"could not claim a version number in {versions_dir}; try again")

    def set_alias(self, ref: str, alias: str) -> ResolvedModel:
        """Point `alias` of the model `ref` names at that version (an atomic rename); return it.

        Raises RegistryError for an unknown model or version, or an alias that is a number
        or `latest`.
        """
        check_name(alias, "alias")
        if is_number(alias) or alias == LATEST:
            raise RegistryError(
                f"alias '{alias}' is reserved: numbers and 'latest' are tags already"
            )
        target = self.resolve(ref)
        atomic_write_text(self._model_dir(target.name) / "aliases" / alias, f"{target.version}\n")
        return target

    def remove_alias(self, name: str, alias: str) -> None:
        """Delete `alias` of `name`; raise RegistryError if it does not exist."""
        path = self._model_dir(name) / "aliases" / check_name(alias, "alias")
        if not path.is_file():
            raise RegistryError(f"'{name}:{alias}': no such alias")
        path.unlink()


def _listing(versions: list[int]) -> str:
    return ", ".join(str(v) for v in versions) if versions else "(none)"
