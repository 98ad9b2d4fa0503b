"""Export a language-model run: a standalone Hugging Face folder (adapters merged), or a GGUF
file that llama.cpp loads (f16, or q8_0 weights).

Both are new artifacts whose manifest names the run they came from (`parent`, and the
SHA-256 of its manifest). GGUF export covers Llama-architecture decoders (SmolLM2 among
them) with byte-level BPE tokenizers; it follows llama.cpp's layout: its tensor names,
rotary query/key rows interleaved per head, norms in f32.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ArtifactError
from modelyard.fsutil import replace_dir
from modelyard.generation.artifacts import CAUSAL, MASKED, LoadedLM, load_lm_run
from modelyard.models.build import quiet_transformers
from modelyard.plugins import require
from modelyard.registry.manifest import MANIFEST, relative_parent, sha256_file, write_manifest

FORMATS = ("hf", "gguf")
QUANTS = ("f16", "q8_0")
_RECORDS = ("recipe.yaml", "metrics.json", "report.md", "MODEL_CARD.md")


def _parent_extra(run: Path, loaded: LoadedLM, fmt: str) -> dict[str, Any]:
    return {
        "backbone": loaded.manifest.get("backbone"),
        "exported_as": fmt,
        "exported_from_kind": loaded.kind,
        "parent_manifest_sha256": sha256_file(run / MANIFEST),
    }


def _target(run: Path, output: Path | None, suffix: str, overwrite: bool) -> Path:
    out = output or run.with_name(f"{run.name}-{suffix}")
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out} already exists; pass --overwrite or choose --output")
    return out


def export_hf(run: Path, output: Path | None = None, overwrite: bool = False) -> Path:
    """Save the run's model with its adapters merged as a standalone run folder; return its path."""
    loaded = load_lm_run(run)
    out = _target(run, output, "merged", overwrite)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with quiet_transformers():
        loaded.model.save_pretrained(str(tmp), safe_serialization=True)
    loaded.tokenizer.save_pretrained(str(tmp))
    for name in _RECORDS:  # merged and unmerged predict the same, so the records still apply
        if (run / name).is_file():
            shutil.copyfile(run / name, tmp / name)
    kind = CAUSAL if loaded.is_causal else MASKED
    write_manifest(
        tmp, kind=kind, parent=relative_parent(run, out), extra=_parent_extra(run, loaded, "hf")
    )
    return replace_dir(tmp, out)


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder a rotary projection's rows from transformers' half-split layout to llama.cpp's interleaved one."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _tensor_payload(gguf: Any, name: str, data: np.ndarray, quant: str) -> tuple[np.ndarray, Any]:
    """Return the array to write and its GGML type: norms stay f32, matrices f16 or q8_0."""
    if data.ndim == 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and data.shape[-1] % 32 == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data.astype(np.float32), qtype), qtype
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def _add_hparams(writer: Any, config: Any, quant: str, gguf: Any) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    ftype = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(ftype)


def _add_tokenizer(
    writer: Any, folder: Path, tokenizer: Any, vocab_size: int, pre: str, gguf: Any
) -> None:
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_ids)
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(str(folder), load_merges=True, n_vocab=vocab_size).add_to_gguf(writer)


def _check_exportable(run: Path, loaded: LoadedLM) -> Any:
    config = loaded.model.config
    if not loaded.is_causal or config.model_type != "llama":
        raise ArtifactError(
            f"{run}: GGUF export covers Llama-architecture causal LMs (such as smollm2-135m); this run "
            f"holds a '{config.model_type}' {'causal' if loaded.is_causal else 'masked'} LM. Export it "
            "with --format hf instead"
        )
    if not (run / "tokenizer.json").is_file():
        raise ArtifactError(
            f"{run}: GGUF export needs a fast tokenizer (tokenizer.json) in the run"
        )
    return config


def write_gguf(loaded: LoadedLM, folder: Path, path: Path, quant: str) -> None:
    """Write the (merged) model and tokenizer of `loaded` as one GGUF file at `path`."""
    gguf: Any = require("gguf", extra="llm")
    config = _check_exportable(folder, loaded)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(folder.name)
    _add_hparams(writer, config, quant, gguf)
    pre = "smollm" if loaded.manifest.get("backbone") == "smollm2-135m" else "default"
    _add_tokenizer(writer, folder, loaded.tokenizer, config.vocab_size, pre, gguf)
    for name, tensor in loaded.model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses the token embeddings as the output layer
        data = tensor.detach().float().cpu().numpy()
        if name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ArtifactError(f"GGUF export: no llama.cpp name for tensor {name}")
        payload, qtype = _tensor_payload(gguf, target, data, quant)
        writer.add_tensor(target, payload, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def export_gguf(
    run: Path, quant: str = "f16", output: Path | None = None, overwrite: bool = False
) -> Path:
    """Export the run (adapters merged) as `model-<quant>.gguf` in a new artifact folder; return the folder."""
    if quant not in QUANTS:
        raise ArtifactError(f"unknown GGUF type '{quant}'; available: {', '.join(QUANTS)}")
    loaded = load_lm_run(run)
    _check_exportable(run, loaded)
    out = _target(run, output, f"gguf-{quant}", overwrite)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_gguf(loaded, run, tmp / f"model-{quant}.gguf", quant)
    for name in ("recipe.yaml", "MODEL_CARD.md"):
        if (run / name).is_file():
            shutil.copyfile(run / name, tmp / name)
    extra = {**_parent_extra(run, loaded, "gguf"), "gguf_type": quant}
    write_manifest(tmp, kind="gguf", parent=relative_parent(run, out), extra=extra)
    return replace_dir(tmp, out)


def export_run(
    run: Path, fmt: str, quant: str = "f16", output: Path | None = None, overwrite: bool = False
) -> Path:
    """Export `run` as `fmt` (hf or gguf); return the new artifact's folder.

    Raises ArtifactError for an unknown format or type, or a run that cannot be exported so.
    """
    if fmt == "hf":
        return export_hf(run, output, overwrite)
    if fmt == "gguf":
        return export_gguf(run, quant, output, overwrite)
    raise ArtifactError(f"unknown export format '{fmt}'; available: {', '.join(FORMATS)}")
