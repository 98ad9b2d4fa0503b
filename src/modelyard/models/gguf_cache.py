"""Backbones shipped as GGUF files: dequantise once into a safetensors folder, then reuse it.

A GGUF-loaded transformers model refuses `save_pretrained`, so the cache is made by
rebuilding the architecture from the GGUF's config (without its quantization config),
loading the dequantised weights into it and saving that. The cache folder holds a
`cache.json` naming the source file (name, size) and the SHA-256 of every file; it is
verified before each reuse and rebuilt when the source changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

from modelyard.errors import BackboneError
from modelyard.fsutil import atomic_write_json, replace_dir
from modelyard.home import modelyard_home

CACHE_RECORD = "cache.json"


def package_folder(package: str, install_hint: str) -> Path:
    """Return the folder of an installed package without importing it.

    Raises BackboneError with `install_hint` when the package is not installed.
    """
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise BackboneError(install_hint)
    return Path(locations[0])


def cache_root() -> Path:
    """Return where dequantised backbones are cached: <modelyard home>/backbones."""
    return modelyard_home() / "backbones"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / CACHE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _cache_is_valid(folder: Path, source: Path) -> bool:
    record = _record(folder)
    if record is None or record.get("source") != source.name:
        return False
    if record.get("source_size") != source.stat().st_size:
        return False
    files = record.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        return False
    return all(
        (folder / name).is_file() and _sha256(folder / name) == digest
        for name, digest in files.items()
    )


def dequantised_folder(name: str, source: Path) -> Path:
    """Return the cached safetensors folder of the GGUF file `source`, building it if needed.

    Raises BackboneError when the GGUF cannot be read (or the `gguf` package is missing).
    """
    folder = cache_root() / name
    if folder.is_dir() and _cache_is_valid(folder, source):
        return folder
    tmp = folder.with_name(f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _build(source, tmp)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        atomic_write_json(
            tmp / CACHE_RECORD,
            {"source": source.name, "source_size": source.stat().st_size, "files": files},
        )
        folder.parent.mkdir(parents=True, exist_ok=True)
        return replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(source: Path, out: Path) -> None:
    from modelyard.plugins import require

    require("gguf", extra="llm")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from modelyard.models.build import quiet_transformers

    folder, gguf = str(source.parent), source.name
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
            config = AutoConfig.from_pretrained(folder, gguf_file=gguf)
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(f"cannot read the GGUF file {source}: {exc}") from None
    # the GGUF-loaded model refuses save_pretrained: rebuild it plainly and copy the weights in
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True)
    with quiet_transformers():
        model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
