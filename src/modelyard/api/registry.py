"""The registry stage: push runs in as versions, move aliases, list what is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _store(registry: str | Path | None) -> Any:
    from modelyard.registry.store import ModelStore

    return ModelStore(registry)


def push(run: str | Path, name: str, registry: str | Path | None = None) -> Any:
    """Verify a run and copy it in atomically as the next version of `name`; return the
    stored model (name, version, path). Raises ArtifactError for a run that does not verify
    or does not load."""
    from modelyard.backends import load_backend
    from modelyard.registry.crypto import is_encrypted
    from modelyard.registry.manifest import read_manifest
    from modelyard.seqtasks import head_kind, load_head_run
    from modelyard.tagging import is_tagger, load_tagger

    if not is_encrypted(read_manifest(Path(run))):  # an encrypted run loads only with its key
        # the checks `predict` and `serve` run: what cannot load is not pushed
        if is_tagger(run):
            load_tagger(run)
        elif head_kind(run) is not None:
            load_head_run(run)
        else:
            load_backend(run)
    return _store(registry).push(run, name)


def set_alias(ref: str, alias_name: str, registry: str | Path | None = None) -> Any:
    """Point `alias_name` at the version `ref` (NAME:VERSION or NAME:ALIAS) names; return it."""
    return _store(registry).set_alias(ref, alias_name)


def list_models(
    name: str | None = None, registry: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """Return model name -> {"versions": [...], "aliases": {alias: version}}, for every
    model or only `name`."""
    store = _store(registry)
    names = [name] if name else store.names()
    return {n: {"versions": store.versions(n), "aliases": store.aliases(n)} for n in names}
