"""Export: a merged Hugging Face folder and GGUF files (f16, q8_0) checked with gguf's reader
and loaded back by transformers' GGUF loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import modelyard.api as api
from modelyard.errors import ArtifactError
from modelyard.generation import load_lm_run
from modelyard.recipe import build_recipe
from modelyard.registry.manifest import parent_of


@pytest.fixture()
def lora_run(sft_recipe: dict) -> Path:
    sft_recipe["train"]["lora"] = {"target_modules": ["q_proj", "k_proj", "v_proj"], "rank": 4}
    sft_recipe["generation"]["eval_before"] = False
    return api.train(build_recipe(sft_recipe), progress=False).run_dir


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_folder_predicts_like_the_adapter_run(lora_run: Path) -> None:
    out = api.export(lora_run, "hf")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "causal-lm" and parent_of(out, manifest) == lora_run.resolve()
    assert manifest["parent_manifest_sha256"] and "model.safetensors" in manifest["files"]
    ids = torch.tensor([[5, 9, 30, 41, 7]])
    assert torch.allclose(
        _logits(load_lm_run(lora_run).model, ids), _logits(load_lm_run(out).model, ids), atol=1e-5
    )
    with pytest.raises(ArtifactError, match="already exists"):
        api.export(lora_run, "hf")


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_gguf_export_reads_back(lora_run: Path, quant: str) -> None:
    gguf = pytest.importorskip("gguf")
    out = api.export(lora_run, "gguf", quant)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "gguf" and parent_of(out, manifest) == lora_run.resolve()
    path = out / f"model-{quant}.gguf"
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    model = load_lm_run(lora_run).model
    assert len(tensors) == len(model.state_dict()) - 1  # the tied output layer is not stored
    expected = gguf.GGMLQuantizationType.Q8_0 if quant == "q8_0" else gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.ffn_up.weight"].tensor_type == expected
    assert tensors["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    up = tensors["blk.0.ffn_up.weight"]
    original = model.state_dict()["model.layers.0.mlp.up_proj.weight"].numpy()
    restored = gguf.quants.dequantize(up.data, up.tensor_type).reshape(original.shape)
    tolerance = 0.02 * np.abs(original).max() if quant == "q8_0" else 1e-3
    assert np.abs(restored - original).max() < tolerance
    assert str(reader.fields["general.architecture"].contents()) == "llama"


def test_gguf_loads_in_transformers_with_the_same_predictions(lora_run: Path) -> None:
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM

    out = api.export(lora_run, "gguf", "f16")
    loaded = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="model-f16.gguf")
    ids = torch.tensor([[5, 9, 30, 41, 7, 12, 3]])
    reference = _logits(load_lm_run(lora_run).model, ids)
    # the query/key rows were permuted for llama.cpp and back by the loader: predictions must agree
    assert torch.allclose(_logits(loaded, ids), reference, atol=2e-2)


def test_masked_lm_runs_cannot_become_gguf(tmp_path: Path, tiny_backbone: Path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("\n\n".join(f"invoice {i} card" for i in range(20)), encoding="utf-8")
    recipe = build_recipe(
        {
            "task": "language-modeling",
            "run": {"name": "m", "output_dir": str(tmp_path / "runs")},
            "data": {"path": str(texts)},
            "model": {"backbone": str(tiny_backbone), "max_length": 16},
            "train": {"method": "full", "max_steps": 2, "precision": "fp32", "num_threads": 1},
        }
    )
    run = api.train(recipe, progress=False).run_dir
    with pytest.raises(ArtifactError, match="GGUF export covers Llama-architecture causal LMs"):
        api.export(run, "gguf")
    with pytest.raises(ArtifactError, match="unknown export format 'onnx'"):
        api.export(run, "onnx")
